"""Exact commits for ``<prefix>events``: a Faust consumer that never commits past an offset
the fold has not acknowledged, and heals a partition whose head was dropped.

Why (faust-streaming 0.15, measured here): Faust's consumer commits offsets it never delivered.
- Its drain loop filters on a *read offset* and, when the next fetched message is more than one
  past it, records the offsets in between as a "gap" that counts as acknowledged (meant for
  compacted or transactional topics). After a seek (every recovery seeks, and resets the read
  offset) the rest of an earlier fetch can still be delivered: the offsets between the seek
  target and that fetch become a gap and are committed although the fold never saw them.
- ``Consumer._new_offset`` lets the first acknowledged offset be *one past* the committed one
  (``min(acked) - committed > 1``), so a lost head message is committed over.
- ``flow_control.resume()`` at the end of a recovery clears stream buffers after the seek: the
  messages in them were tracked but are never delivered; with the two paths above that is loss
  (93 customers of 23,500 in a CI run of ``test_crash_backfill.py``), without them a stall.

What this consumer does, for the exact topics only (the events topic; changelogs keep Faust's
paths, recovery depends on them):
- no read-offset filter and so no gaps: every fetched message is delivered; a copy of one
  already folded is a duplicate the fold recognises (applied ids live in the state);
- commits only the run of acknowledged offsets that starts exactly at the committed offset
  (:func:`contiguous_commit`);
- :meth:`ExactOffsetsConsumer.heal`, called every second by the worker, seeks a partition back to
  its committed offset when its head was dropped (:func:`is_stalled`: no commit progress, records
  after the committed offset, the head neither taken by the fold nor acknowledged, and the fold
  idle for ``STALL_S`` or later offsets acknowledged for ``HOLE_S``): the head is fetched again
  and everything after it arrives a second time as duplicates. Each heal is logged and counted.
  Messages Faust skips (fetched in an earlier consumer generation) are healed the same way.

All offsets here are Kafka's "next offset to read" convention, as Faust's committed offsets are.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("custpulse.offsets")

STALL_S = 5.0  # seconds of no commit progress, with the fold idle, before a partition is healed
HOLE_S = 60.0  # seconds of no commit progress while later offsets are acknowledged


def contiguous_commit(acked: list[int], floor: int | None) -> tuple[int | None, list[int]]:
    """The offset to commit (one past the last of the acknowledged run that starts at
    ``floor``) and the acknowledged offsets left over (sorted, all above the commit).

    ``floor`` is the committed offset (the next one to read); ``None`` (nothing committed and
    the log start not known yet) commits nothing. Offsets below the floor are dropped."""
    if floor is None:
        return None, sorted(acked)
    rest = sorted(o for o in set(acked) if o >= floor)
    n = 0
    while n < len(rest) and rest[n] == floor + n:
        n += 1
    if n == 0:
        return None, rest
    return floor + n, rest[n:]


@dataclass
class _Watch:
    floor: int | None
    since: float


def is_stalled(*, floor: int | None, since: float, now: float, highwater: int | None,
               pending: Iterable[int], acked: Iterable[int], idle_s: float,
               stall_s: float = STALL_S, hole_s: float = HOLE_S) -> bool:
    """Whether a partition's head was dropped and will never be delivered.

    ``floor`` is its committed offset, unchanged since ``since`` (monotonic seconds);
    ``highwater`` the next offset Kafka will write; ``pending`` the offsets the fold has taken
    and not yet acknowledged; ``acked`` those acknowledged and not committed; ``idle_s`` how long
    the fold has received nothing at all. Stalled when the floor has records after it, is
    neither pending nor acknowledged, and either the fold has been idle for ``stall_s`` (so
    nothing is queued for it) or later offsets of the partition were acknowledged for
    ``hole_s`` (a queue is FIFO per partition, so the head can no longer come)."""
    if floor is None or highwater is None or highwater <= floor:
        return False
    if floor in set(pending) or floor in (done := set(acked)):
        return False
    stuck = now - since
    if stuck >= stall_s and idle_s >= stall_s:
        return True
    return stuck >= hole_s and any(o > floor for o in done)


NEXT = "next"
BEHIND = "behind"
AHEAD = "ahead"


class LogOrder:
    """The fold takes each events partition in log order, once per consumer generation.

    Without Faust's read-offset filter a seek makes envelopes arrive out of order (the rest of
    an earlier fetch, then the re-fetch from the seek target). :meth:`admit` says what to do
    with an envelope at ``offset``: :data:`NEXT` (fold it), :data:`BEHIND` (a copy of one this
    worker already handed to the delivery protocol in this generation: acknowledge it after
    that one, fold nothing) or :data:`AHEAD` (something before it has not come: drop it
    unacknowledged and fetch again from :meth:`expected`). After a rebalance (a new
    ``generation``) each partition starts again at its committed offset."""

    def __init__(self) -> None:
        self.generation: Any = None
        self._next: dict[Any, int] = {}

    def expected(self, tp: Any) -> int | None:
        return self._next.get(tp)

    def admit(self, tp: Any, offset: int, generation: Any, floor: int | None) -> str:
        """``floor`` is the partition's committed offset (or log start), used when this
        generation has not seen the partition yet; ``None`` takes ``offset`` as the start."""
        if generation != self.generation:
            self.generation = generation
            self._next.clear()
        nxt = self._next.get(tp)
        if nxt is None:
            nxt = offset if floor is None else floor
        if offset < nxt:
            self._next[tp] = nxt
            return BEHIND
        if offset > nxt:
            self._next[tp] = nxt
            return AHEAD
        self._next[tp] = offset + 1
        return NEXT


class _UnfilteredReadOffsets(defaultdict):  # type: ignore[type-arg]
    """Faust's read offsets, except that exact topics have none (no filter, no gaps)."""

    def __init__(self, topics: frozenset[str]) -> None:
        super().__init__(lambda: None)
        self.topics = topics

    def __getitem__(self, tp: Any) -> Any:
        if tp.topic in self.topics:
            return None
        return super().__getitem__(tp)


class ExactOffsetsConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with exact commits and stall healing for ``exact_topics``."""

    exact_topics: frozenset[str] = frozenset()
    stall_s: float = STALL_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _UnfilteredReadOffsets(self.exact_topics)
        self._watch: dict[Any, _Watch] = {}
        self._last_delivered = time.monotonic()
        self.heals = 0

    def delivered(self, now: float | None = None) -> None:
        """The fold took a message from the stream (monotonic ``now``)."""
        self._last_delivered = time.monotonic() if now is None else now

    async def floor(self, tp: Any) -> int | None:
        """The committed offset of ``tp``, or its log start when nothing is committed."""
        committed = self._committed_offset[tp]
        if committed is None:
            start = (await self.earliest_offsets(tp)).get(tp)
            if self._committed_offset[tp] is None and start is not None:
                self._committed_offset[tp] = start
            committed = self._committed_offset[tp]
        return committed

    async def refetch(self, tp: Any, offset: int) -> None:
        """Fetch ``tp`` again from ``offset`` (in the consumer's thread: aiokafka is not
        thread-safe)."""
        await self._thread.seek_wait({tp: offset})

    def forget(self, message: Any) -> None:
        """A message the fold drops unacknowledged (it will be fetched again)."""
        self._unacked_messages.discard(message)

    def _new_offset(self, tp: Any) -> int | None:
        if tp.topic not in self.exact_topics:
            return super()._new_offset(tp)
        acked = self._acked[tp]
        if not acked:
            return None
        commit, rest = contiguous_commit(acked, self._committed_offset[tp])
        done = set(acked) - set(rest)
        acked[:] = rest
        self._acked_index[tp].difference_update(done)
        return commit

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic in self.exact_topics:
            return  # never reached (no read offsets), and never a gap on these topics
        await super()._add_gap(tp, offset_from, offset_to)

    async def heal(self, now: float | None = None) -> list[Any]:
        """Seek stalled exact partitions back to their committed offsets; returns them.

        Nothing to do while a rebalance or a table recovery is in progress (Faust seeks then
        itself). A partition with nothing committed yet gets the log start as its floor."""
        app = self.app
        if getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False):
            self._watch.clear()
            return []
        if not app.tables.recovery.completed.is_set():
            return []
        now = time.monotonic() if now is None else now
        mine = [tp for tp in self.assignment() if tp.topic in self.exact_topics]
        for tp in list(self._watch):
            if tp not in mine:
                del self._watch[tp]
        unknown = [tp for tp in mine if self._committed_offset[tp] is None]
        if unknown:
            for tp, start in (await self.earliest_offsets(*unknown)).items():
                if self._committed_offset[tp] is None and start is not None:
                    self._committed_offset[tp] = start
        healed = []
        for tp in mine:
            floor = self._committed_offset[tp]
            watch = self._watch.get(tp)
            if watch is None or watch.floor != floor:
                self._watch[tp] = _Watch(floor, now)
                continue
            if floor is None or now - watch.since < self.stall_s:
                continue
            highwater = (await self.highwaters(tp)).get(tp)
            if is_stalled(floor=floor, since=watch.since, now=now, highwater=highwater,
                          pending=_pending(self._unacked_messages, tp),
                          acked=self._acked[tp], idle_s=now - self._last_delivered,
                          stall_s=self.stall_s):
                await self.refetch(tp, floor)
                self.heals += 1
                healed.append(tp)
                log.warning("partition %s:%d made no progress for %.0f s from offset %d "
                            "(log end %d, head never delivered): fetching it again",
                            tp.topic, tp.partition, now - watch.since, floor, highwater)
                watch.since = now
        return healed


def _pending(messages: Iterable[Any], tp: Any) -> Sequence[int]:
    return [m.offset for m in list(messages) if m.tp == tp and not m.acked]


def exact_transport(topics: Iterable[str]) -> type[faust_aiokafka.Transport]:
    """Faust's aiokafka transport with :class:`ExactOffsetsConsumer` for ``topics``."""

    class Consumer(ExactOffsetsConsumer):
        exact_topics = frozenset(topics)

    class Transport(faust_aiokafka.Transport):
        pass

    Transport.Consumer = Consumer  # type: ignore[misc]
    return Transport
