"""The deadline index: when each customer must be re-evaluated with no new event.

A min-heap of ``(deadline, user_id)`` kept in memory by each worker. A timer pops what the
watermark has passed and sends a tick for each customer through ``<prefix>events``, so the
re-evaluation runs in the customer's own partition, inside stream processing, where its table
value may be written. The heap is rebuilt from the profiles table after a (re)start; stale
entries are harmless (a tick for a deadline that no longer applies changes nothing).
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta


class DeadlineIndex:
    """Min-heap of deadlines; at most one pending entry per (user, deadline)."""

    def __init__(self) -> None:
        # deadlines as integer microseconds since the epoch: exact, unlike float seconds
        self._heap: list[tuple[int, str]] = []
        self._pending: set[tuple[int, str]] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, user_id: str, deadline: datetime | None) -> None:
        if deadline is None:
            return
        entry = (_micros(deadline), user_id)
        if entry not in self._pending:
            self._pending.add(entry)
            heapq.heappush(self._heap, entry)

    def pop_due(self, watermark: datetime, limit: int = 10_000) -> list[tuple[str, datetime]]:
        """Entries with deadline <= ``watermark`` (oldest first), at most ``limit``."""
        due = []
        bound = _micros(watermark)
        while self._heap and self._heap[0][0] <= bound and len(due) < limit:
            entry = heapq.heappop(self._heap)
            self._pending.discard(entry)
            due.append((entry[1], _EPOCH + timedelta(microseconds=entry[0])))
        return due


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
