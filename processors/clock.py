"""Event-time clock: the watermark that says what "now" is for profiles and deadlines.

The watermark is the latest event time seen minus the allowed lateness. It never moves back.
With ``mode="wall"`` it also follows wall-clock time minus the lateness, so customers keep
ageing while no events arrive (live operation); with ``mode="follow"`` (replays, tests) it moves
with event time only. One clock serves all partitions of a worker, so a partition that receives
no events follows the others instead of freezing its customers' clocks.

>>> from datetime import datetime, timedelta, UTC
>>> clock = Watermark(timedelta(minutes=5))
>>> clock.observe(datetime(2026, 1, 1, 12, tzinfo=UTC))
>>> clock.observe(datetime(2026, 1, 1, 11, tzinfo=UTC))  # late: does not move the clock back
>>> clock.current(datetime(2030, 1, 1, tzinfo=UTC)).isoformat()
'2026-01-01T11:55:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class Watermark:
    lateness: timedelta = timedelta(0)
    mode: str = "follow"
    latest_event: datetime | None = field(default=None)
    _floor: datetime | None = field(default=None, repr=False)

    def observe(self, event_time: datetime) -> None:
        """Note an event time (aware)."""
        if self.latest_event is None or event_time > self.latest_event:
            self.latest_event = event_time

    def is_late(self, event_time: datetime, wall: datetime) -> bool:
        """True if ``event_time`` is at or before the current watermark (an out-of-order
        arrival: it changes values that were already announced)."""
        current = self.current(wall)
        return current is not None and event_time <= current

    def current(self, wall: datetime) -> datetime | None:
        """The watermark at wall-clock time ``wall`` (aware), or None before any event."""
        candidates = []
        if self.latest_event is not None:
            candidates.append(self.latest_event - self.lateness)
        if self.mode == "wall":
            candidates.append(wall - self.lateness)
        if not candidates:
            return self._floor
        value = max(candidates)
        if self._floor is not None and value < self._floor:
            value = self._floor
        self._floor = value
        return value
