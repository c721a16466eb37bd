"""Identity of an event: the id under which the fold counts a record once. Pure (no I/O).

An id names *what happened*, not *where the bytes were*: a redelivery (the same order sent
again by its order system, a file re-exported with a row appended, a CSV re-saved by Excel so
that ``1299.00`` became ``1299``) gets the id it had the first time, and the fold counts it
once. Ids are scoped by source and never carry raw values (which might be personal): the
variable part is a hash.

Form: ``"<source>:<rule>:<h>"`` where ``h`` is the first 24 hex digits (96 bits) of SHA-256
over the UTF-8 bytes of a canonical JSON text (keys sorted, no spaces, non-ASCII kept, times
as ISO 8601 UTC with milliseconds). Rules, the first that applies:

1. **own id** (``k``): the record's own ``event_id`` (text or whole number, stripped):
   ``h({"event_id": "<text>"})``. An id already of the form ``<this source>:<k|c|o>:<24 hex>``
   (written by ``custpulse import`` by these rules) is kept as it is.
2. **business key** (``k``): the mapping's ``identity`` key fields (all present after
   standardization) plus its state fields (null is a value): ``h({field: value, ...})``.
   Orders: ``order_id`` + ``status``; tickets: ``ticket_id`` + ``closed_at``; customers:
   ``user_id`` + ``updated_at`` (the record's version).
3. **content** (``c``, imports only): the record's canonical content, i.e. the standardized
   canonical fields that are not null (after coercion and value maps: ``"1299.00"`` and
   ``1299`` are both ``1299.0``, a re-saved Excel date is the same moment; fields no alias
   knows and import bookkeeping such as ``event_id`` left out), and its occurrence number
   among the identical canonical records of its file (1, 2, ... in file order):
   ``h({"content": {...}, "occurrence": n})``.
4. **log position** (``o``, live producers only): a record with no own id, no business key and
   no importer id is named by where it was read: ``h({"offset": o, "partition": p,
   "topic": t})``. A redelivery of the same message is recognised; the same content sent
   again by its producer (a new message) is a new event, because nothing tells it from a
   genuine repeat.

>>> from custpulse.schemas.mapping import load_mapping, standardize
>>> from datetime import UTC
>>> orders = load_mapping("orders")
>>> fields, _ = standardize({"user_id": "U1", "订单编号": "1001", "order_time": "2024-03-15",
...                          "amount": "1299.00", "status": "已支付"}, orders, UTC)
>>> key = event_identity("orders", {}, fields, orders, position=("cp.orders", 0, 7))
>>> key == event_identity("orders", {}, fields, orders, position=("cp.orders", 3, 99))
True
>>> key.startswith("orders:k:") and len(key) == len("orders:k:") + 24
True
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from custpulse.schemas.mapping import EXTRA, SOURCES, FieldMapping
from custpulse.schemas.times import to_iso

HASH_HEX = 24
"""Hex digits of SHA-256 kept in an id (96 bits)."""

RULES = ("k", "c", "o")
"""Rule letters: ``k`` own id or business key, ``c`` import content, ``o`` log position."""

OWN_ID_FIELD = "event_id"
"""The raw field that carries a record's own id (and the importer's content id)."""

_CUSTPULSE_ID = re.compile(
    rf"(?P<source>{'|'.join(SOURCES)}):[{''.join(RULES)}]:[0-9a-f]{{{HASH_HEX}}}"
)


def canonical_json(value: Any) -> str:
    """The canonical JSON text ids are hashed over: keys sorted, compact, non-ASCII kept,
    aware datetimes as ISO 8601 UTC with milliseconds.

    >>> from datetime import UTC
    >>> canonical_json({"b": 1.0, "a": datetime(2024, 3, 15, 2, 30, tzinfo=UTC), "c": "客户"})
    '{"a":"2024-03-15T02:30:00.000+00:00","b":1.0,"c":"客户"}'
    """
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_jsonable
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not part of a canonical record")


def scoped_id(source: str, rule: str, payload: Any) -> str:
    """``"<source>:<rule>:" + sha256(canonical_json(payload))[:24]``.

    >>> scoped_id("orders", "k", {"order_id": "1001"}) != scoped_id("tickets", "k",
    ...                                                           {"order_id": "1001"})
    True
    """
    if source not in SOURCES or rule not in RULES:
        raise ValueError(f"no id rule {rule!r} for source {source!r}")
    digest = hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{source}:{rule}:{digest[:HASH_HEX]}"


def is_custpulse_id(source: str, value: str) -> bool:
    """Whether ``value`` is already an id of ``source`` by these rules.

    >>> is_custpulse_id("orders", "orders:c:" + "0" * 24), is_custpulse_id("tickets",
    ...                                                                     "orders:c:" + "0" * 24)
    (True, False)
    """
    match = _CUSTPULSE_ID.fullmatch(value)
    return match is not None and match["source"] == source


def own_id_text(record: Mapping[Any, Any], fields: Mapping[str, Any]) -> str | None:
    """The record's own ``event_id`` as stripped text (a canonical field of that name, if a
    user mapping declares one, wins over the raw field), or None if it brings none."""
    for value in (fields.get(OWN_ID_FIELD), record.get(OWN_ID_FIELD)):
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def own_event_id(source: str, record: Mapping[Any, Any], fields: Mapping[str, Any]) -> str | None:
    """Rule 1: the id from the record's own ``event_id``, or None.

    >>> own_event_id("orders", {"event_id": " E1 "}, {}) == own_event_id("orders",
    ...                                                                  {"event_id": "E1"}, {})
    True
    >>> own_event_id("orders", {"event_id": "1001"}, {}) != own_event_id("tickets",
    ...                                                                  {"event_id": "1001"}, {})
    True
    """
    text = own_id_text(record, fields)
    if text is None:
        return None
    if is_custpulse_id(source, text):
        return text
    return scoped_id(source, "k", {OWN_ID_FIELD: text})


def business_key_id(source: str, fields: Mapping[str, Any], mapping: FieldMapping) -> str | None:
    """Rule 2: the id from the mapping's identity key and state, or None when the mapping has
    no key or a key field is missing from the standardized ``fields``."""
    if not mapping.identity_key:
        return None
    key = {name: fields.get(name) for name in mapping.identity_key}
    if any(is_missing(value) for value in key.values()):
        return None
    state = {name: fields.get(name) for name in mapping.identity_state}
    return scoped_id(source, "k", {**state, **key})


def canonical_content(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The standardized canonical fields that carry a value: what two records must share to
    be the same record. ``extra`` (fields no alias knows) and ``event_id`` are left out."""
    return {
        name: value
        for name, value in fields.items()
        if name not in (EXTRA, OWN_ID_FIELD) and not is_missing(value)
    }


def content_fingerprint(fields: Mapping[str, Any]) -> str:
    """Canonical JSON of :func:`canonical_content`: equal for identical canonical records."""
    return canonical_json(canonical_content(fields))


def content_id(source: str, fields: Mapping[str, Any], occurrence: int) -> str:
    """Rule 3: the id of the ``occurrence``-th (1-based, file order) record of a file with
    this canonical content.

    >>> a = content_id("orders", {"user_id": "U1", "amount": 1299.0, "extra": {"x": 1}}, 1)
    >>> a == content_id("orders", {"user_id": "U1", "amount": 1299.0, "channel": None}, 1)
    True
    >>> a != content_id("orders", {"user_id": "U1", "amount": 1299.0}, 2)
    True
    """
    if occurrence < 1:
        raise ValueError("occurrence numbers start at 1")
    return scoped_id(source, "c", {"content": canonical_content(fields), "occurrence": occurrence})


def offset_id(source: str, topic: str, partition: int, offset: int) -> str:
    """Rule 4: the id of a keyless live record, from its position in the log."""
    return scoped_id(source, "o", {"offset": offset, "partition": partition, "topic": topic})


def keyed_event_id(
    source: str, record: Mapping[Any, Any], fields: Mapping[str, Any], mapping: FieldMapping
) -> str | None:
    """Rules 1 and 2: the id a record has by itself (own id or business key), or None."""
    return own_event_id(source, record, fields) or business_key_id(source, fields, mapping)


def has_keyed_id(record: Mapping[Any, Any], fields: Mapping[str, Any],
                 mapping: FieldMapping) -> bool:
    """Whether :func:`keyed_event_id` gives the record an id (rules 1 or 2), without hashing.
    Identity views keep missing values missing, so the standardized ``fields`` decide."""
    if own_id_text(record, fields) is not None:
        return True
    return bool(mapping.identity_key) and not any(
        is_missing(fields.get(name)) for name in mapping.identity_key)


def event_identity(
    source: str,
    record: Mapping[Any, Any],
    fields: Mapping[str, Any],
    mapping: FieldMapping,
    *,
    occurrence: int | None = None,
    position: tuple[str, int, int] | None = None,
) -> str:
    """The event id of one record (the rules in the module docstring, in order).

    ``record`` is the raw record (for its own ``event_id``), ``fields`` its standardized
    canonical fields (before any quality fill: fills depend on what a worker saw, ids must
    not). Give ``occurrence`` for an import row, ``position`` ``(topic, partition, offset)``
    for a live record.
    """
    keyed = keyed_event_id(source, record, fields, mapping)
    if keyed is not None:
        return keyed
    if occurrence is not None:
        return content_id(source, fields, occurrence)
    if position is not None:
        return offset_id(source, *position)
    raise ValueError("a record without its own id or business key needs an occurrence or position")


def is_missing(value: Any) -> bool:
    """A value an id cannot be made of: missing, or text that is only blanks."""
    return value is None or (isinstance(value, str) and not value.strip())
