"""Canonical record types, one per source, version 1: what a standardized record is.

A record is built from :func:`custpulse.schemas.mapping.standardize` output with
:func:`from_standardized` and validates what it declares: required fields present, every field
``None`` or of its declared type, times aware. Ranges (negative amounts, satisfaction 7) are not
rejected here; the cleaning step flags them with a reason.

Units: ``amount`` in CNY, ``duration`` in seconds, ``handling_minutes`` in minutes,
``satisfaction`` a score 1-5. Times are aware datetimes (any zone; they compare in UTC) and go
on the wire as ISO 8601 UTC with milliseconds.

Customer records hold raw personal data (name, phone, id number, email, address) and ticket
descriptions may; those fields are left out of ``repr`` and must be masked before a record
leaves the ingest step.

>>> from datetime import UTC, datetime
>>> order = from_standardized("orders", {"user_id": "U1", "order_time": datetime(2024, 3, 15,
...     tzinfo=UTC), "amount": 12, "channel": "app", "extra": {"备注": "x"}, "coupon": "y"})
>>> order.amount, order.status
(12.0, None)
>>> to_wire(order)["order_time"], "extra" in to_wire(order)
('2024-03-15T00:00:00.000+00:00', False)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Union

from custpulse.schemas.times import parse_time, to_iso

SCHEMA_VERSION = 1


class _Record:
    """Shared behaviour: validation on construction, ``to_wire``."""

    SOURCE: ClassVar[str]

    def __post_init__(self) -> None:
        _validate(self)

    def to_wire(self) -> dict[str, Any]:
        return to_wire(self)


@dataclass(frozen=True)
class CustomerRecord(_Record):
    """A customer master (CRM) row. ``register_date`` is the event time when ``updated_at``
    is absent. PII fields (``user_name``, ``phone``, ``id_number``, ``email``, ``address``)
    are raw here and hidden from ``repr``."""

    SOURCE: ClassVar[str] = "customers"

    user_id: str
    register_date: datetime
    user_name: str | None = field(default=None, repr=False)
    phone: str | None = field(default=None, repr=False)
    id_number: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    updated_at: datetime | None = None
    region: str | None = None
    """As given, e.g. ``广东省深圳市``."""
    member_level: str | None = None
    """``regular``, ``silver``, ``gold``, ``platinum``, ``diamond`` (others kept as given)."""
    industry: str | None = None
    """One spelling per category: ``retail``, ``manufacturing``, ``internet``, ``finance``, ..."""
    customer_type: str | None = None
    """``individual`` or ``enterprise``."""
    company_size: str | None = None
    """``small``, ``medium`` or ``large``."""
    channel: str | None = None
    """Acquisition channel: ``app``, ``web``, ``mini_program``, ``offline`` or as given."""
    extra: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Source fields no alias matched; not on the wire."""


@dataclass(frozen=True)
class BehaviorRecord(_Record):
    """One app/web/mini-program/offline interaction."""

    SOURCE: ClassVar[str] = "behavior"

    user_id: str
    behavior_time: datetime
    behavior_type: str | None = None
    """``browse``, ``add_to_cart``, ``order``, ``login``, ``favorite``, ``search`` or as given."""
    product_id: str | None = None
    duration: int | None = None
    """Time spent, in seconds (expected >= 0)."""
    channel: str | None = None
    """``app``, ``web``, ``mini_program``, ``offline`` or as given."""
    extra: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Source fields no alias matched; not on the wire."""


@dataclass(frozen=True)
class OrderRecord(_Record):
    """One order row; a return or refund is a later row with the same ``order_id``."""

    SOURCE: ClassVar[str] = "orders"

    user_id: str
    order_time: datetime
    """Time of the order, or of the status change for returned/refunded rows."""
    order_id: str | None = None
    amount: float | None = None
    """Order total in CNY (expected >= 0)."""
    items: list[Any] | None = None
    """Line items, e.g. ``[{"product_id": "P1001", "category": "服装"}]``."""
    status: str | None = None
    """``paid``, ``returned``, ``refunded``, ``pending``, ``cancelled`` or as given."""
    channel: str | None = None
    """``app``, ``web``, ``mini_program``, ``offline`` or as given."""
    extra: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Source fields no alias matched; not on the wire."""


@dataclass(frozen=True)
class TicketRecord(_Record):
    """One customer-service ticket. ``description`` may contain personal data (hidden from
    ``repr``; scrub before it leaves ingest)."""

    SOURCE: ClassVar[str] = "tickets"

    user_id: str
    opened_at: datetime
    ticket_id: str | None = None
    closed_at: datetime | None = None
    """None while the ticket is open (expected after ``opened_at``)."""
    issue_type: str | None = None
    """``inquiry``, ``complaint``, ``after_sales``, ``logistics``, ``refund``, ``account``."""
    satisfaction: int | None = None
    """CSAT score 1-5; None when not rated."""
    is_complaint: bool | None = None
    handling_minutes: int | None = None
    """Handling time in minutes (expected >= 0)."""
    description: str | None = field(default=None, repr=False)
    extra: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """Source fields no alias matched; not on the wire."""


Record = CustomerRecord | BehaviorRecord | OrderRecord | TicketRecord

RECORD_TYPES: dict[str, type[Record]] = {
    "customers": CustomerRecord,
    "behavior": BehaviorRecord,
    "orders": OrderRecord,
    "tickets": TicketRecord,
}

_KIND_OF: dict[Any, str] = {
    str: "string",
    float: "decimal",
    int: "integer",
    bool: "boolean",
    datetime: "time",
    list: "list",
    dict: "json",
}


def _kind(hint: Any) -> str:
    """Mapping type name of a field's annotation (``X | None`` -> kind of X)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        (hint,) = [h for h in typing.get_args(hint) if h is not type(None)]
    return _KIND_OF[typing.get_origin(hint) or hint]


def _data_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.name != "extra"]


FIELD_TYPES: dict[str, dict[str, str]] = {
    source: {f.name: _kind(typing.get_type_hints(cls)[f.name]) for f in _data_fields(cls)}
    for source, cls in RECORD_TYPES.items()
}
"""Per source, each field's type in the names of the mapping files (``string``, ``time``, ...)."""

REQUIRED: dict[str, tuple[str, ...]] = {
    source: tuple(f.name for f in _data_fields(cls) if f.default is dataclasses.MISSING)
    for source, cls in RECORD_TYPES.items()
}
"""Per source, the fields a record cannot do without: ``user_id`` and the event time."""

OPTIONAL: dict[str, tuple[str, ...]] = {
    source: tuple(f.name for f in _data_fields(cls) if f.name not in REQUIRED[source])
    for source, cls in RECORD_TYPES.items()
}
"""Per source, the fields that may be ``None``."""


def _validate(record: _Record) -> None:
    source = record.SOURCE
    for name, kind in FIELD_TYPES[source].items():
        value = getattr(record, name)
        where = f"{type(record).__name__}.{name}"
        if value is None:
            if name in REQUIRED[source]:
                raise ValueError(f"{where} is required")
            continue
        if kind == "decimal" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
            object.__setattr__(record, name, value)
        if not _is_kind(value, kind):
            raise ValueError(f"{where} must be {kind}, not {type(value).__name__}")
        if kind == "string" and name in REQUIRED[source] and not value.strip():
            raise ValueError(f"{where} is required and must not be blank")
    if not isinstance(record.extra, dict):  # type: ignore[attr-defined]
        raise ValueError(f"{type(record).__name__}.extra must be a dict")


def _is_kind(value: object, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "decimal":
        return isinstance(value, float) and math.isfinite(value)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "time":
        return isinstance(value, datetime) and value.utcoffset() is not None
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, dict | list)  # json


def from_standardized(source: str, fields: Mapping[str, Any]) -> Record:
    """The record of ``source`` built from standardized fields.

    Keys the record does not have are ignored; missing optional fields are None. Raises
    ``ValueError`` (naming the field, never the value) for an unknown source, a missing required
    field or a value of the wrong type.
    """
    cls = RECORD_TYPES.get(source)
    if cls is None:
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(RECORD_TYPES)}")
    extra = fields.get("extra")
    kwargs = {name: fields.get(name) for name in FIELD_TYPES[source]}
    return cls(**kwargs, extra=dict(extra) if isinstance(extra, Mapping) else {})


def to_wire(record: Record) -> dict[str, Any]:
    """JSON-ready dict: ``v`` (schema version), ``source`` and every field except ``extra``;
    times as ISO 8601 UTC with milliseconds."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "source": record.SOURCE}
    for name in FIELD_TYPES[record.SOURCE]:
        out[name] = _jsonable(getattr(record, name))
    return out


def from_wire(data: Mapping[str, Any]) -> Record:
    """The record that :func:`to_wire` wrote (``ValueError`` if it is not one of version 1)."""
    if data.get("v") != SCHEMA_VERSION:
        raise ValueError(f"record schema version is not {SCHEMA_VERSION}")
    source = data.get("source")
    if source not in RECORD_TYPES:
        raise ValueError("record has no known source")
    fields = dict(data)
    for name, kind in FIELD_TYPES[source].items():
        value = fields.get(name)
        if kind == "time" and value is not None:
            moment = parse_time(value, UTC)
            if moment is None:
                raise ValueError(f"{name} is not a time")
            fields[name] = moment
    return from_standardized(source, fields)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
