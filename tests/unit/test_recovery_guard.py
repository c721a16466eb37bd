"""The guard against Faust's seek-then-clear recovery race: one seek after recovery completes."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from custpulse.streams.recovery_guard import SeekAfterRecovery


class Signal:
    def __init__(self) -> None:
        self.receivers: list = []

    def connect(self, fn) -> None:
        self.receivers.append(fn)

    async def send(self) -> None:
        for fn in self.receivers:
            await fn(None)


def test_the_seek_comes_after_recovery_has_completed_and_cleared_the_buffers():
    async def scenario() -> list[str]:
        log: list[str] = []
        completed = asyncio.Event()

        async def wait_until_recovery_completed() -> bool:
            await completed.wait()
            return True

        async def perform_seek() -> None:
            log.append("seek")

        app = SimpleNamespace(on_rebalance_complete=Signal(),
                              tables=SimpleNamespace(
                                  wait_until_recovery_completed=wait_until_recovery_completed),
                              consumer=SimpleNamespace(perform_seek=perform_seek))
        guard = SeekAfterRecovery(app, settle_s=0)
        guard.arm()
        await app.on_rebalance_complete.send()  # Faust: sent before recovery completes
        for _ in range(5):
            await asyncio.sleep(0)
        log.append("recovery still running")
        completed.set()
        log.append("buffers cleared")  # Faust clears right after completed.set(), no await
        for _ in range(5):
            await asyncio.sleep(0)
        assert guard.seeks == 1
        return log

    assert asyncio.run(scenario()) == ["recovery still running", "buffers cleared", "seek"]
