"""The deadline index: when each customer must be re-evaluated with no new event.

Per partition of ``<prefix>events``, a min-heap of ``(deadline, user_id)`` kept in memory by
each worker. A timer takes what the watermark has passed and sends ticks for those customers
through their partition of ``<prefix>events`` (one tick record for up to
:data:`~custpulse.schemas.envelope.TICK_MAX_USERS` customers), so the re-evaluation runs in the
customer's own partition, inside stream processing, where its table value may be written. The
heaps are rebuilt from the stored next deadline of each customer after a (re)start or
rebalance; stale entries are harmless (a tick for a deadline that no longer applies changes
nothing).
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta


class DeadlineIndex:
    """Min-heaps of deadlines by partition; at most one pending entry per (user, deadline)."""

    def __init__(self) -> None:
        # deadlines as integer microseconds since the epoch: exact, unlike float seconds
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._pending: set[tuple[int, str]] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, user_id: str, deadline: datetime | None, partition: int = 0) -> None:
        """Remember that ``user_id`` (whose records are in ``partition``) must be re-evaluated
        at ``deadline`` (None: nothing to remember)."""
        if deadline is None:
            return
        entry = (_micros(deadline), user_id)
        if entry not in self._pending:
            self._pending.add(entry)
            heapq.heappush(self._heaps.setdefault(partition, []), entry)

    def clear(self) -> None:
        self._heaps.clear()
        self._pending.clear()

    def due_partitions(self, watermark: datetime) -> list[int]:
        """Partitions with at least one deadline <= ``watermark``, in order."""
        bound = _micros(watermark)
        return sorted(p for p, heap in self._heaps.items() if heap and heap[0][0] <= bound)

    def earliest(self, partition: int) -> datetime | None:
        heap = self._heaps.get(partition)
        return _EPOCH + timedelta(microseconds=heap[0][0]) if heap else None

    def pop_due(self, watermark: datetime, limit: int = 100_000,
                partition: int | None = None) -> list[tuple[str, datetime]]:
        """Entries with deadline <= ``watermark`` (oldest first), at most ``limit``, of
        ``partition`` (default: of all partitions, partition by partition)."""
        due: list[tuple[str, datetime]] = []
        bound = _micros(watermark)
        for p in ([partition] if partition is not None else sorted(self._heaps)):
            heap = self._heaps.get(p)
            while heap and heap[0][0] <= bound and len(due) < limit:
                entry = heapq.heappop(heap)
                self._pending.discard(entry)
                due.append((entry[1], _EPOCH + timedelta(microseconds=entry[0])))
        return due


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
