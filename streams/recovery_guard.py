"""A guard against a Faust recovery race that stalls a restarted worker (faust-streaming 0.15).

What happens: when a worker starts with table state to recover, Faust resumes the stream
partitions and seeks them to their committed offsets, then (``Recovery.on_recovery_completed``
and ``_resume_streams``) calls ``flow_control.resume()``, which *clears* every stream buffer. A
fetch that lands between the seek and the clear puts the first messages after the committed
offset into the buffer and advances Faust's read offset past them; the clear then drops them.
They are never delivered, so never acknowledged; Faust commits only up to the first
unacknowledged offset, so from then on the group's committed offsets on ``<prefix>events``
never move although every later envelope is processed: a worker that looks alive and
"consumes nothing" (lag stays), exactly the stall reported upstream as recovery hangs. Seen
here in about 1 of 3 SIGKILL-and-restart runs with small envelopes.

The guard: after every rebalance, once recovery has completed (and the buffers have been
cleared), seek the stream partitions to their committed offsets once more, through Faust's own
``Consumer.perform_seek``. Everything from the committed offset is delivered again; what was
already folded is recognised as duplicates (the applied ids live in the state).

This only narrows the window: ``perform_seek`` resets Faust's read offset while its drain loop
may still deliver the rest of an earlier fetch. What closes it is
:mod:`custpulse.streams.exact_offsets` (no read-offset filter and no gaps on the events topic,
commits only from the committed offset on, and a heal that re-reads a partition whose head was
dropped). Measured before that module: the SIGKILL test with small envelopes stalled in about
1 run in 10, and the default-size crash test lost customers in about 1 run in 4.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("custpulse.recovery")


class SeekAfterRecovery:
    """Connect with :meth:`arm` to a Faust app; each completed rebalance triggers one seek."""

    def __init__(self, app: Any, settle_s: float = 1.0) -> None:
        self.app = app
        self.settle_s = settle_s
        self.seeks = 0
        self._task: asyncio.Future[Any] | None = None

    def arm(self) -> None:
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)

    async def _on_rebalance_complete(self, sender: Any = None, **kwargs: Any) -> None:
        # on_rebalance_complete is sent before recovery marks itself complete and clears the
        # stream buffers: wait for that in a task of our own, then seek.
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.ensure_future(self.reseek())

    async def reseek(self) -> None:
        """Wait until recovery has completed, then seek stream partitions to committed."""
        await self.app.tables.wait_until_recovery_completed()
        # Let the resume (and its buffer clear) finish first. Faust never resets its
        # "completed" event, so after a later rebalance the wait above returns at once while
        # that recovery's last steps (one seek, then the clear) are still ahead: settle_s
        # covers them.
        await asyncio.sleep(0)
        await asyncio.sleep(self.settle_s)
        await self.app.consumer.perform_seek()
        self.seeks += 1
        log.info("stream partitions re-seeked to their committed offsets after recovery")
