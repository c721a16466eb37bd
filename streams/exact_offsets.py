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
- the fold takes each partition in log order (:class:`LogOrder`) and only messages it took
  count as acknowledged (:meth:`ExactOffsetsConsumer.ack`: Faust's pure-Python stream acks
  messages it skips);
- :meth:`ExactOffsetsConsumer.heal`, called every second by the worker while the fold waits for
  its next message, seeks a partition back to its committed offset when its head was dropped
  (:func:`is_stalled`: for ``STALL_S`` no commit progress and nothing of the partition reached
  the fold, records after the committed offset, the head neither taken by the fold nor
  acknowledged). Each heal is logged and counted.
- a committed offset before the log start (expired by retention) resumes at the log start,
  logged as an error.

All offsets here are Kafka's "next offset to read" convention, as Faust's committed offsets are.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakSet

from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("custpulse.offsets")

STALL_S = 5.0  # seconds of no commit progress, with the fold idle, before a partition is healed


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
               stall_s: float = STALL_S) -> bool:
    """Whether a partition's head was dropped and will not be delivered.

    ``floor`` is its committed offset, unchanged since ``since`` (monotonic seconds);
    ``highwater`` the next offset Kafka will write; ``pending`` the offsets the fold has taken
    and not yet acknowledged; ``acked`` those acknowledged and not committed; ``idle_s`` how long
    the fold has received nothing from this partition. Stalled when the floor has records after
    it, is neither pending nor acknowledged, and for ``stall_s`` neither the floor moved nor
    did anything of the partition reach the fold. A false alarm (the head still queued behind
    other partitions) costs one re-fetch whose copies are acknowledged without folding."""
    if floor is None or highwater is None or highwater <= floor:
        return False
    if floor in set(pending) or floor in set(acked):
        return False
    return now - since >= stall_s and idle_s >= stall_s


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

    def skip_to(self, tp: Any, offset: int) -> None:
        """Resume ``tp`` at ``offset`` (the log start, when what came before it expired)."""
        if offset > self._next.get(tp, -1):
            self._next[tp] = offset

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
        self._last_delivered: dict[Any, float] = {}
        self._admitted: WeakSet[Any] = WeakSet()
        self.fold_waiting = True  # the fold is waiting for its next message (set by the fold)
        self.heals = 0

    def delivered(self, tp: Any, now: float | None = None) -> None:
        """The fold took a message of ``tp`` from the stream (monotonic ``now``)."""
        self._last_delivered[tp] = time.monotonic() if now is None else now

    async def floor(self, tp: Any) -> int:
        """Where ``tp`` resumes: its committed offset, or its log start when nothing is
        committed or the committed offset has expired (retention; logged, the envelopes in
        between are gone from Kafka). Raises the consumer's errors (the caller retries)."""
        committed = self._committed_offset[tp]
        start = (await self.earliest_offsets(tp)).get(tp)
        if start is None:
            if committed is None:
                raise LookupError(f"no log start known for {tp.topic}:{tp.partition}")
            return committed
        if committed is not None and committed < start:
            log.error("%s:%d: committed offset %d is before the log start %d: envelopes in "
                      "between expired unread (retention); resuming at %d",
                      tp.topic, tp.partition, committed, start, start)
        if committed is None or committed < start:
            self._committed_offset[tp] = committed = start
        return committed

    def admitted(self, message: Any) -> None:
        """The fold took ``message`` (to fold it, or as a copy of one it took): only such
        messages count as acknowledged on exact topics."""
        self._admitted.add(message)

    async def refetch(self, tp: Any, offset: int) -> None:
        """Fetch ``tp`` again from ``offset`` (in the consumer's thread: aiokafka is not
        thread-safe)."""
        await self._thread.seek_wait({tp: offset})

    def forget(self, message: Any) -> None:
        """A message the fold drops unacknowledged (it will be fetched again)."""
        self._unacked_messages.discard(message)

    def ack(self, message: Any) -> bool:
        """Faust's ack, except that on exact topics a message the fold did not take (one Faust
        skipped: fetched in an earlier generation or during a pause) is never recorded."""
        if message.topic in self.exact_topics and message not in self._admitted:
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return bool(super().ack(message))

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
            if floor is None or now - watch.since < self.stall_s or not self.fold_waiting:
                continue  # a fold busy with a message is no sign of a dropped head
            kw = dict(floor=floor, since=watch.since, now=now,
                      pending=_pending(self._unacked_messages, tp), acked=self._acked[tp],
                      idle_s=now - self._last_delivered.get(tp, watch.since),
                      stall_s=self.stall_s)
            if not is_stalled(highwater=floor + 1, **kw):  # the local conditions first
                continue
            highwater = (await self.highwaters(tp)).get(tp)
            if is_stalled(highwater=highwater, **kw):
                target = await self.floor(tp)
                await self.refetch(tp, target)
                self.heals += 1
                healed.append(tp)
                log.warning("partition %s:%d made no progress for %.0f s from offset %d "
                            "(log end %d, head never delivered): fetching it again",
                            tp.topic, tp.partition, now - watch.since, target, highwater)
                self._watch[tp] = _Watch(self._committed_offset[tp], now)
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
