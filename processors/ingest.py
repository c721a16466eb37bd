"""The ingest decision for one raw message: accepted (a canonical event) or rejected (why).

Errors are data: :func:`ingest` never raises, whatever the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from custpulse.schemas.events import (
    EVENT_TIME_FIELDS,
    CanonicalEvent,
    event_time_of,
    offset_event_id,
)

MAX_PAYLOAD_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message was read: topic, partition, offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Accepted:
    event: CanonicalEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be used. ``code`` is machine-readable; ``message`` is for people
    and never contains the payload's values."""

    code: str
    field: str | None
    message: str


Outcome = Accepted | Rejected


def ingest(raw: bytes | None, source: str, position: Position, zone: tzinfo) -> Outcome:
    """Decide what one raw message of ``source`` becomes. Naive times are read in ``zone``.

    >>> from zoneinfo import ZoneInfo
    >>> pos = Position("cp.orders", 0, 7)
    >>> ingest(b"{", "orders", pos, ZoneInfo("UTC")).code
    'not_json'
    >>> out = ingest(b'{"user_id": "U1", "order_time": "2024-01-01 08:00:00"}', "orders",
    ...              pos, ZoneInfo("Asia/Shanghai"))
    >>> out.event.user_id, out.event.event_time.isoformat()
    ('U1', '2024-01-01T08:00:00+08:00')
    """
    try:
        return _ingest(raw, source, position, zone)
    except Exception as exc:  # noqa: BLE001 - errors are data; a record never kills the agent
        return Rejected("internal_error", None, f"unexpected {type(exc).__name__}")


def _ingest(raw: bytes | None, source: str, position: Position, zone: tzinfo) -> Outcome:
    if raw is None or len(raw) == 0:
        return Rejected("empty", None, "message has no value")
    if len(raw) > MAX_PAYLOAD_BYTES:
        return Rejected("oversized", None, f"payload over {MAX_PAYLOAD_BYTES} bytes")
    try:
        record: Any = json.loads(raw)
    except ValueError:
        return Rejected("not_json", None, "payload is not valid UTF-8 JSON")
    if not isinstance(record, dict):
        return Rejected("not_object", None, f"payload is a JSON {type(record).__name__}")
    user_id = record.get("user_id")
    if user_id is None or isinstance(user_id, dict | list | bool) or not str(user_id).strip():
        return Rejected("missing_user_id", "user_id", "user_id is missing or empty")
    fields = EVENT_TIME_FIELDS[source]
    if all(record.get(f) in (None, "") for f in fields):
        return Rejected("missing_event_time", fields[-1], f"none of {', '.join(fields)} is set")
    moment = event_time_of(source, record, zone)
    if moment is None:
        return Rejected("bad_event_time", fields[-1], "event time cannot be read")
    event_id = record.get("event_id")
    if event_id is None or isinstance(event_id, dict | list) or not str(event_id).strip():
        event_id = offset_event_id(position.topic, position.partition, position.offset)
    return Accepted(CanonicalEvent(str(event_id), source, str(user_id).strip(), moment))
