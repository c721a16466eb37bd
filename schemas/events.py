"""The canonical event: what the ingest step emits on ``<prefix>events``, keyed by user_id.

Wire format (JSON object, UTF-8), version 1::

    {"v": 1, "event_id": "...", "source": "orders", "user_id": "U000001",
     "event_time": "2024-03-15T02:30:00.000+00:00"}

It carries no personal data. Later versions add the standardized, masked fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from custpulse.schemas.times import parse_time, to_iso

SCHEMA_VERSION = 1

EVENT_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("updated_at", "register_date"),
    "behavior": ("behavior_time",),
    "orders": ("order_time",),
    "tickets": ("opened_at",),
}
"""Per source, the fields that hold the event time, first present one wins."""


@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    """One accepted source record. ``event_time`` is aware; serialized in UTC."""

    event_id: str
    source: str
    user_id: str
    event_time: datetime

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "event_id": self.event_id,
            "source": self.source,
            "user_id": self.user_id,
            "event_time": to_iso(self.event_time),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> CanonicalEvent:
        moment = parse_time(data["event_time"], UTC)
        if moment is None:
            raise ValueError(f"bad event_time {data['event_time']!r}")
        return cls(str(data["event_id"]), str(data["source"]), str(data["user_id"]), moment)


def event_time_of(source: str, record: dict[str, Any], zone: Any) -> datetime | None:
    """The record's event time (aware), or None if absent or unreadable."""
    for field in EVENT_TIME_FIELDS[source]:
        value = record.get(field)
        if value not in (None, ""):
            return parse_time(value, zone)
    return None


def offset_event_id(topic: str, partition: int, offset: int) -> str:
    """Event id for a record that brought none: its position in the log.

    A redelivery of the same message gets the same id, so it counts once.

    >>> offset_event_id("cp.orders", 0, 42) == offset_event_id("cp.orders", 0, 42)
    True
    >>> offset_event_id("cp.orders", 0, 42) != offset_event_id("cp.orders", 0, 43)
    True
    """
    digest = hashlib.sha256(f"{topic}\x00{partition}\x00{offset}".encode()).hexdigest()
    return "k-" + digest[:16]

