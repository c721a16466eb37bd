"""Event-time merge of several inputs (raw topic partitions) in the ingest stage. Pure.

Kafka returns each partition's records as a block, and partitions are fetched independently:
left alone, a customer's behaviour of 7 August can reach the fold after its orders of 12-17
August because the behaviour partition was fetched later. The merge holds accepted events back
and releases them in event-time order: an event is released once no input that may still
deliver an earlier one is behind it.

An input **holds** the merge while it may still deliver earlier events (the caller decides:
the ingest stage counts inputs with unread records and inputs that delivered within
``CUSTPULSE_ALIGN_S``): its latest event time read so far is a bound (a holding input with no
event read yet holds everything); every held event at or before the minimum bound over the
holding inputs is released, in order of ``(event time, input, offset)``. When no input holds,
everything is released (live, an event waits at most the alignment time). So a backfill whose
files are sent merged in time (``custpulse import`` with several files) reaches the fold in
time order across sources, whatever the fetch order.

Memory is bounded: beyond ``max_held`` events the earliest are released anyway (they may then
be out of order: the fold marks such events ``late`` and still counts them exactly).

Offsets: an input's offset may be committed only up to its earliest held event
(:meth:`commit_offset`), so a crash re-reads what was held.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_MAX_HELD = 200_000


@dataclass
class EventTimeMerge:
    max_held: int = DEFAULT_MAX_HELD
    _heap: list[tuple[datetime, str, int, Any]] = field(default_factory=list, repr=False)
    _latest: dict[str, datetime] = field(default_factory=dict, repr=False)
    _held_offsets: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _released: dict[str, set[int]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, input: str, offset: int, event_time: datetime, item: Any) -> None:
        """Hold one accepted event of ``input`` at ``offset`` (aware ``event_time``)."""
        heapq.heappush(self._heap, (event_time, input, offset, item))
        heapq.heappush(self._held_offsets.setdefault(input, []), offset)
        latest = self._latest.get(input)
        if latest is None or event_time > latest:
            self._latest[input] = event_time

    def release(self, holding: Iterable[str]) -> list[tuple[str, int, datetime, Any]]:
        """Release, in event-time order, every held event no holding input can still precede:
        ``(input, offset, event_time, item)``. ``holding``: inputs with records not yet read."""
        names = list(holding)
        unread = any(name not in self._latest for name in names)
        bounds = [self._latest[name] for name in names if name in self._latest]
        bound = None if unread or not bounds else min(bounds)
        out = []
        while self._heap and ((not names) or (bound is not None and self._heap[0][0] <= bound)
                              or len(self._heap) > self.max_held):
            event_time, name, offset, item = heapq.heappop(self._heap)
            self._released.setdefault(name, set()).add(offset)
            out.append((name, offset, event_time, item))
        self._settle()
        return out

    def commit_offset(self, input: str, next_offset: int) -> int:
        """The offset of ``input`` that may be committed: its earliest held event, else
        ``next_offset`` (the offset after the last record read)."""
        held = self._held_offsets.get(input)
        return held[0] if held else next_offset

    def drop(self, inputs: Iterable[str]) -> None:
        """Forget what is held for ``inputs`` (revoked, or re-read from committed offsets)."""
        gone = set(inputs)
        self._heap = [entry for entry in self._heap if entry[1] not in gone]
        heapq.heapify(self._heap)
        for name in gone:
            self._held_offsets.pop(name, None)
            self._released.pop(name, None)
            self._latest.pop(name, None)

    def _settle(self) -> None:
        """Drop released offsets from the front of each input's held-offset heap."""
        for name, released in self._released.items():
            offsets = self._held_offsets.get(name)
            while offsets and offsets[0] in released:
                released.discard(heapq.heappop(offsets))
