"""The canonical event: what the ingest step emits on ``<prefix>events``, inside envelopes
(:mod:`custpulse.schemas.envelope`) placed in the partition of its user_id.

Wire format (JSON object, UTF-8), version 2::

    {"v": 2, "event_id": "...", "source": "orders", "user_id": "U000001",
     "event_time": "2024-03-15T02:30:00.000+00:00",
     "data": {...standardized canonical fields, personal data masked or tokenized...},
     "quality": {"outliers": [...], "fills": [...]}}

It carries no raw personal data. Version 1 messages (no ``data``/``quality``) are still read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from custpulse.schemas.times import parse_time, to_iso

SCHEMA_VERSION = 2

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
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    quality: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_wire(self) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "event_id": self.event_id,
            "source": self.source,
            "user_id": self.user_id,
            "event_time": to_iso(self.event_time),
            "data": self.data,
            "quality": self.quality,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> CanonicalEvent:
        moment = parse_time(wire["event_time"], UTC)
        if moment is None or not isinstance(wire["event_id"], str):
            raise ValueError("bad canonical event")
        return cls(
            wire["event_id"],
            str(wire["source"]),
            str(wire["user_id"]),
            moment,
            dict(wire.get("data") or {}),
            dict(wire.get("quality") or {}),
        )


def event_time_of(source: str, record: dict[str, Any], zone: Any) -> datetime | None:
    """The record's event time (aware), or None if absent or unreadable."""
    for name in EVENT_TIME_FIELDS[source]:
        value = record.get(name)
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

