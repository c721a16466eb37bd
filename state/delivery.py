"""The delivery protocol of the fold: fold -> state acknowledged -> announce -> commit.

For each input message (one envelope of ``<prefix>events``), in input order:

1. **fold**: the caller folds the envelope and hands its table writes to Kafka (the changelog
   sends); it submits the message together with the futures of those sends and what to
   announce (:meth:`Delivery.submit`). Submitting does not wait for the broker, so the fold
   goes on with the next envelope.
2. **state acknowledged**: the protocol waits until every changelog send of the message is
   acknowledged by Kafka, whether or not the message produced alerts.
3. **announce**: then, and only then, the mirror (Redis) and the alerts and campaign triggers of
   the message are written. Announcements go out for several consecutive messages at once
   (all that are ready), still in input order.
4. **commit**: then the message is acknowledged to the consumer (``ack``), which makes its
   offset committable. An offset is therefore never committed before the state it caused is
   durable and announced.

A crash anywhere re-reads the messages not yet committed. Their events are then duplicates (the
applied ids live in the state value that is durable), so nothing counts twice, and their
announcements are repeated from the state (Redis follows the state; alerts carry stable ids).

Errors: a changelog send or an announcement that fails stops the protocol (:meth:`run`
raises); nothing after the failure is acknowledged, so a restart redoes it.

The class holds no Kafka, Faust or Redis object: the caller passes ``announce`` and ``ack``
coroutines, so the ordering is unit-tested with plain futures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

M = TypeVar("M")  # the input message (Faust event) as the caller knows it
A = TypeVar("A")  # what to announce for it


@dataclass
class Pending(Generic[M, A]):
    """One submitted message: its state writes (futures), what to announce, when it started
    (``time.perf_counter()`` seconds, for the caller's latency metric)."""

    message: M
    writes: list[Awaitable[Any]]
    announcement: A
    started: float = 0.0
    acknowledged: bool = field(default=False, repr=False)


class Delivery(Generic[M, A]):
    """Orders state acknowledgement, announcement and commit of submitted messages.

    ``announce(items)`` receives the announcements of consecutive messages whose state is
    acknowledged, in input order; ``ack(message)`` makes one message's offset committable;
    ``done(pending)`` (optional) is called after each ack. At most ``max_pending`` messages
    wait at once: :meth:`submit` then waits (back pressure on the fold).
    """

    def __init__(
        self,
        announce: Callable[[list[A]], Awaitable[None]],
        ack: Callable[[M], Awaitable[None]],
        *,
        max_pending: int = 16,
        done: Callable[[Pending[M, A]], None] | None = None,
    ) -> None:
        self._announce = announce
        self._ack = ack
        self._done = done
        self._queue: asyncio.Queue[Pending[M, A]] = asyncio.Queue(maxsize=max_pending)

    async def submit(self, message: M, writes: Iterable[Awaitable[Any]], announcement: A,
                     started: float = 0.0) -> None:
        """Queue one folded message (its changelog sends already handed to the producer)."""
        await self._queue.put(Pending(message, list(writes), announcement, started))

    @property
    def pending(self) -> int:
        """Messages submitted and not yet acknowledged."""
        return self._queue.qsize()

    async def run(self) -> None:
        """Process submitted messages until cancelled; raises the first send or announcement
        error (after which nothing more is acknowledged)."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # 2. state acknowledged: every changelog write of every message in the batch
            for item in batch:
                for write in item.writes:
                    await write
            # 3. announce, in input order
            await self._announce([item.announcement for item in batch])
            # 4. commit, in input order
            for item in batch:
                await self._ack(item.message)
                item.acknowledged = True
                if self._done is not None:
                    self._done(item)
