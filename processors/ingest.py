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
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from custpulse.processors.excerpt import describe, field_label, pii_kind_by_name, shape_text
from custpulse.processors.identity import event_identity
from custpulse.processors.masking import mask_as, pii_token, scrub_text  # noqa: F401 (doctests)
from custpulse.processors.policy import (
    TOKEN_KINDS,
    carry,
    identity_view,
    is_personal_number,
    own_id_view,
    personal_kind,
    protect_identifier,
)
from custpulse.processors.quality import QualityTracker
from custpulse.schemas.events import EVENT_TIME_FIELDS, CanonicalEvent
from custpulse.schemas.mapping import FieldMapping, standardize

MAX_PAYLOAD_BYTES = 1_000_000
MAX_DEADLETTER_TEXT = 4096
__all__ = ["TOKEN_KINDS", "ingest", "canonical_user_id", "mask_record", "excerpt_raw"]

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
    """What ingest needs besides the message. ``secret`` keys the PII tokens; ``secret_version``
    is written into every token (``tok_v<version>_``)."""

    mappings: dict[str, FieldMapping]
    zone: tzinfo
    secret: bytes
    max_future_skew: timedelta = timedelta(minutes=5)
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    secret_version: int = 1


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
    except (ValueError, RecursionError):
        return Rejected("not_json", None, "payload is not valid UTF-8 JSON", excerpt_raw(raw))
    if _SURROGATE_ESCAPE.search(raw) and not _valid_unicode(record):
        return Rejected("not_json", None, "payload has text that is not valid Unicode "
                        "(a lone surrogate escape)", excerpt_raw(raw.decode("utf-8", "replace")))
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
    carried = carry(fields, mapping, config.secret, config.secret_version)
    if carried.problem is not None:
        code, name = carried.problem
        return Rejected(code, name, f"{name} holds a number that reads as personal data",
                        mask_record(record, mapping))
    data = carried.data
    time_field = _time_field(source, fields)
    moment: datetime = fields[time_field]
    flags: dict[str, Any] = {}
    if quality is not None:
        # Fills are analysis-only: they ride in the flags, ``data`` keeps the observed values.
        # Quality sees what leaves ingest (categories scrubbed), so its modes are never raw.
        assessment = quality.assess(source, data)
        flags = assessment.flags()
    unmapped = sorted({field_label(k) for k in (fields.get("extra") or {})} | set(carried.dropped))
    if unmapped:
        flags["unmapped_fields"] = unmapped
    # Identity (processors/identity.py): own event_id or importer id, else the mapping's
    # business key, else (a keyless live record) the log position; hashed over the identity
    # view, in which personal values are already keyed tokens.
    event_id = event_identity(
        source, own_id_view(record, config.secret, config.secret_version),
        identity_view(standardized, mapping, config.secret, config.secret_version, carried),
        mapping,
        position=(position.topic, position.partition, position.offset))
    return Accepted(CanonicalEvent(event_id, source, data["user_id"], moment, data, flags))


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _valid_unicode(record: Any) -> bool:
    """Whether every text of a parsed payload is valid Unicode (JSON escapes can spell lone
    surrogates, which no Kafka key, Redis key or UTF-8 file can hold)."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError, ValueError):
        return False
    return True


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


def canonical_user_id(raw: str, secret: bytes, version: int = 1) -> str:
    """The user id that travels past ingest: the source's own id, unless it holds personal
    data (:func:`~custpulse.processors.policy.protect_identifier`): then its keyed token (the
    token of the phone, e-mail or id number when it is one as a whole, so joins on it still
    work). An operator who holds the raw input maps a token back by recomputing it.

    >>> key = b"k" * 32
    >>> canonical_user_id("U1001", key)
    'U1001'
    >>> canonical_user_id("138 0013 8000", key) == pii_token("13800138000", key, "phone")
    True
    """
    return protect_identifier(raw, secret, version)


def mask_text(text: str) -> str:
    """Free text for a dead letter: PII patterns masked, length bounded."""
    return scrub_text(text[:MAX_DEADLETTER_TEXT])


def mask_record(record: dict[str, Any], mapping: FieldMapping) -> dict[str, Any]:
    """A raw record for a dead letter, as a structured excerpt by the mapping's classes: fields
    the mapping declares keep their name; personal ones are display-masked, identifiers,
    categories and free text scrubbed for personal data, numbers kept unless they read as
    personal data, nested values described by type only. Undeclared fields keep only their
    type (display-masked when their name says they are personal), under their name if it
    reads as a field name, else a hash (:func:`~custpulse.processors.excerpt.field_label`)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        label = field_label(key)
        canonical = mapping.canonical_name(str(key))
        if canonical is not None and label.startswith("field_"):
            label = canonical
        if canonical is not None and mapping.class_of(canonical) == "records":
            value = _parsed(value)
        if canonical is None:
            kind = pii_kind_by_name(str(key))
            out[label] = (mask_as(personal_kind(kind), value, None)
                          if kind and _scalar(value) else describe(value))
        elif value is None:
            out[label] = None
        elif mapping.class_of(canonical) == "personal":
            out[label] = (mask_as(personal_kind(canonical), value, None)
                          if _scalar(value) else describe(value))
        elif isinstance(value, dict | list):
            out[label] = describe(value)
        elif isinstance(value, str):
            out[label] = mask_text(value)
        elif is_personal_number(value):
            out[label] = "<number>"
        else:
            out[label] = value
    return out


def _parsed(value: Any) -> Any:
    """A records field given as JSON text, parsed (so the excerpt keeps only its types)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return describe(value)  # already types only
    return value


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def excerpt_raw(raw: bytes | str) -> dict[str, Any]:
    """What a dead letter keeps of a raw line: its size and either the types of its JSON or,
    when it is not JSON, its shape (punctuation kept, letters ``a``, digits ``9``)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    size = len(text.encode("utf-8", "surrogatepass"))
    try:
        return {"bytes": size, "types": describe(json.loads(text))}
    except (ValueError, RecursionError):
        return {"bytes": size, "shape": shape_text(text)}


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
