"""The ingest decision for one raw message: accepted (a canonical, masked event) or rejected
(a machine-readable reason and the payload with personal data masked).

Steps: size -> JSON object -> field standardization and coercion (``schemas.mapping``) ->
validation -> missing values and outliers (``processors.quality``) -> PII masking and tokens
(``processors.masking``) -> event id (``processors.identity``: own id, business key, or for a
keyless live record the log position) -> canonical event. Errors are data: :func:`ingest`
never raises, whatever the bytes. ``now`` is the caller's wall-clock time (aware), used only
for the future-skew rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from custpulse.processors.excerpt import describe, field_label, pii_kind_by_name, shape_text
from custpulse.processors.identity import event_identity
from custpulse.processors.masking import (
    FREE_TEXT_FIELDS,
    PII_FIELDS,
    mask_field,
    pii_token,
    scrub_text,
)
from custpulse.processors.pii_detect import find_spans
from custpulse.processors.quality import QualityTracker
from custpulse.schemas.events import EVENT_TIME_FIELDS, CanonicalEvent
from custpulse.schemas.mapping import FieldMapping, standardize
from custpulse.schemas.times import to_iso

MAX_PAYLOAD_BYTES = 1_000_000
MAX_DEADLETTER_TEXT = 4096
TOKEN_KINDS = ("phone", "email", "id_number")
"""PII kinds that also get a keyed token (joins on the value stay possible)."""

NON_NEGATIVE: dict[str, str] = {
    "amount": "negative_amount",
    "duration": "negative_duration",
    "handling_minutes": "negative_duration",
}
SATISFACTION_RANGE = (1, 5)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message was read: topic, partition, offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """What ingest needs besides the message. ``secret`` keys the PII tokens."""

    mappings: dict[str, FieldMapping]
    zone: tzinfo
    secret: bytes
    max_future_skew: timedelta = timedelta(minutes=5)
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


@dataclass(frozen=True, slots=True)
class Accepted:
    event: CanonicalEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be used. ``code`` is machine-readable; ``message`` is for people
    and never contains the payload's values; ``payload`` is the record with PII masked."""

    code: str
    field: str | None
    message: str
    payload: Any = field(default=None, compare=False)


Outcome = Accepted | Rejected


def ingest(
    raw: bytes | None,
    source: str,
    position: Position,
    config: IngestConfig,
    now: datetime,
    quality: QualityTracker | None = None,
) -> Outcome:
    """Decide what one raw message of ``source`` becomes."""
    try:
        return _ingest(raw, source, position, config, now, quality)
    except Exception as exc:  # noqa: BLE001 - errors are data; a record never kills the agent
        return Rejected(
            "internal_error", None, f"unexpected {type(exc).__name__}",
            _safe_payload(raw, source, config),
        )


def _ingest(
    raw: bytes | None,
    source: str,
    position: Position,
    config: IngestConfig,
    now: datetime,
    quality: QualityTracker | None,
) -> Outcome:
    if raw is None or len(raw) == 0:
        return Rejected("empty", None, "message has no value")
    if len(raw) > config.max_payload_bytes:
        return Rejected(
            "oversized", None, f"payload over {config.max_payload_bytes} bytes",
            {"bytes": len(raw)},
        )
    try:
        record: Any = json.loads(raw)
    except ValueError:
        return Rejected("not_json", None, "payload is not valid UTF-8 JSON", excerpt_raw(raw))
    if not isinstance(record, dict):
        return Rejected("not_object", None, f"payload is a JSON {type(record).__name__}",
                        describe(record))
    mapping = config.mappings[source]
    fields, problems = standardize(record, mapping, config.zone)
    standardized = fields  # as read, before any quality fill: the event id depends on these only
    rejected = _validate(source, fields, problems, config, now)
    if rejected is not None:
        return Rejected(rejected.code, rejected.field, rejected.message,
                        mask_record(record, mapping))
    time_field = _time_field(source, fields)
    moment: datetime = fields[time_field]
    flags: dict[str, Any] = {}
    if quality is not None:
        # Fills are analysis-only: they ride in the flags, ``fields`` keeps the observed values
        assessment = quality.assess(source, fields)
        flags = assessment.flags()
    unmapped = sorted({field_label(k) for k in (fields.get("extra") or {})})
    if unmapped:
        flags["unmapped_fields"] = unmapped
    # Identity (processors/identity.py): own event_id or importer id, else the mapping's
    # business key, else (a keyless live record) the log position.
    event_id = event_identity(source, record, standardized, mapping,
                              position=(position.topic, position.partition, position.offset))
    user_id = canonical_user_id(str(fields["user_id"]).strip(), config.secret)
    data = protect(fields, config.secret)
    data["user_id"] = user_id
    return Accepted(CanonicalEvent(event_id, source, user_id, moment, data, flags))


def _time_field(source: str, fields: dict[str, Any]) -> str:
    for name in EVENT_TIME_FIELDS[source]:
        if fields.get(name) is not None:
            return name
    return EVENT_TIME_FIELDS[source][-1]


def _validate(
    source: str,
    fields: dict[str, Any],
    problems: list[Any],
    config: IngestConfig,
    now: datetime,
) -> Rejected | None:
    """The first rule a record breaks, or None. Order: key, event time, types, ranges.

    A time field holding a bare number its mapping declares no format for is rejected as
    ``ambiguous_time`` (event time or not); other unreadable times as ``bad_event_time`` /
    ``bad_time``."""
    by_field = {p.field: p for p in problems if p.code != "duplicate_field"}
    user_id = fields.get("user_id")
    if "user_id" in by_field:
        return Rejected("wrong_type", "user_id", "user_id is not a scalar value")
    if user_id is None or not str(user_id).strip():
        return Rejected("missing_user_id", "user_id", "user_id is missing or empty")
    time_fields = EVENT_TIME_FIELDS[source]
    for name in time_fields:
        if name in by_field:
            if by_field[name].code == "ambiguous_time":
                return Rejected("ambiguous_time", name, by_field[name].message)
            return Rejected("bad_event_time", name, f"{name} cannot be read as a time")
        if fields.get(name) is not None:
            break
    else:
        return Rejected("missing_event_time", time_fields[-1],
                        f"none of {', '.join(time_fields)} is set")
    moment: datetime = fields[_time_field(source, fields)]
    if moment > now + config.max_future_skew:
        return Rejected("future_event_time", _time_field(source, fields),
                        f"event time more than {config.max_future_skew} after processing time")
    for problem in problems:
        if problem.code == "duplicate_field":
            continue
        code = problem.code if problem.code in ("bad_time", "ambiguous_time") else "wrong_type"
        return Rejected(code, problem.field, problem.message)
    for name, code in NON_NEGATIVE.items():
        value = fields.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            return Rejected(code, name, f"{name} is negative")
    satisfaction = fields.get("satisfaction")
    low, high = SATISFACTION_RANGE
    if satisfaction is not None and not low <= satisfaction <= high:
        return Rejected("satisfaction_out_of_range", "satisfaction",
                        f"satisfaction outside {low}..{high}")
    opened, closed = fields.get("opened_at"), fields.get("closed_at")
    if isinstance(opened, datetime) and isinstance(closed, datetime) and closed < opened:
        return Rejected("closed_before_opened", "closed_at", "closed_at is before opened_at")
    return None


def canonical_user_id(raw: str, secret: bytes) -> str:
    """The user id that travels past ingest: the source's own id, unless that id *is* personal
    data (a phone, e-mail or resident id number, as the whole value): then its keyed token
    (``tok_`` + HMAC, the same as ``phone_token`` etc.), so joins on it still work and nothing
    raw travels. An operator who holds the raw input maps a token back by recomputing it.

    >>> key = b"k" * 32
    >>> canonical_user_id("U1001", key)
    'U1001'
    >>> canonical_user_id("138 0013 8000", key) == pii_token("13800138000", key, "phone")
    True
    """
    spans = find_spans(raw)
    if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(raw):
        kind = spans[0][2]
        if kind in ("phone", "email", "id_number"):
            return pii_token(raw, secret, kind)
    return raw


def protect(fields: dict[str, Any], secret: bytes) -> dict[str, Any]:
    """JSON-ready canonical fields with PII masked for display, tokens for joins, and free
    text scrubbed. Unknown source fields (``extra``) are not carried past ingest."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "extra" or value is None:
            continue
        if name in PII_FIELDS:
            out[name] = mask_field(name, value, fields)
            if PII_FIELDS[name] in TOKEN_KINDS:
                out[f"{name}_token"] = pii_token(str(value), secret, PII_FIELDS[name])
        elif name in FREE_TEXT_FIELDS and isinstance(value, str):
            out[name] = scrub_text(value)
        else:
            out[name] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {field_label(k): _nested(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _nested(key: str, value: Any) -> Any:
    """A value inside a nested object: display-masked when its key names personal data
    (``收货人``, ``收货地址``, ``联系电话``), else as any other value."""
    kind = pii_kind_by_name(key)
    if kind and isinstance(value, str | int) and not isinstance(value, bool):
        return mask_field(kind, str(value), None)
    return _jsonable(value)


def mask_text(text: str) -> str:
    """Free text for a dead letter: PII patterns masked, length bounded."""
    return scrub_text(text[:MAX_DEADLETTER_TEXT])


def mask_value(value: Any) -> Any:
    """Any JSON value with every string scrubbed (recursively)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value


def mask_record(record: dict[str, Any], mapping: FieldMapping) -> dict[str, Any]:
    """A raw record for a dead letter, as a structured excerpt: fields the mapping declares
    keep their name; PII fields are display-masked, other scalars scrubbed for personal data,
    nested values described by type only. Undeclared fields keep only their type, under their
    name if it reads as a field name, else a hash (:func:`~custpulse.processors.excerpt.
    field_label`)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        canonical = mapping.canonical_name(str(key))
        if canonical is None:
            kind = pii_kind_by_name(str(key))
            out[field_label(key)] = (mask_field(kind, str(value), None)
                                     if kind and isinstance(value, str | int) else describe(value))
        elif canonical in PII_FIELDS and value is not None:
            out[field_label(key)] = mask_field(canonical, str(value), None)
        elif isinstance(value, dict | list):
            out[field_label(key)] = describe(value)
        else:
            out[field_label(key)] = mask_value(value)
    return out


def excerpt_raw(raw: bytes | str) -> dict[str, Any]:
    """What a dead letter keeps of a raw line: its size and either the types of its JSON or,
    when it is not JSON, its shape (punctuation kept, letters ``a``, digits ``9``)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        return {"bytes": len(text.encode()), "types": describe(json.loads(text))}
    except ValueError:
        return {"bytes": len(text.encode()), "shape": shape_text(text)}


def _safe_payload(raw: bytes | None, source: str, config: IngestConfig) -> Any:
    try:
        if raw is None:
            return None
        record = json.loads(raw)
        if isinstance(record, dict) and source in config.mappings:
            return mask_record(record, config.mappings[source])
        return describe(record)
    except Exception:  # noqa: BLE001
        return None
