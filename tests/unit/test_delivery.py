"""The delivery protocol's ordering: state acknowledged -> announce -> commit, in input order."""

from __future__ import annotations

import asyncio

import pytest

from custpulse.state.delivery import Delivery


def run(coro):
    return asyncio.run(coro)


def test_announce_waits_for_every_state_write_even_without_alerts():
    log: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        w1, w2 = loop.create_future(), loop.create_future()

        async def announce(items):
            log.append(f"announce {items}")

        async def ack(message):
            log.append(f"ack {message}")

        delivery: Delivery[str, str] = Delivery(announce, ack)
        task = asyncio.create_task(delivery.run())
        await delivery.submit("m1", [w1, w2], "nothing to announce")
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == []  # nothing announced or committed while a write is unacknowledged
        w2.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == []
        w1.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        task.cancel()
        assert log == ["announce ['nothing to announce']", "ack m1"]

    run(scenario())


def test_messages_are_announced_and_acked_in_input_order():
    log: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        writes = [loop.create_future() for _ in range(3)]

        async def announce(items):
            log.append("announce " + ",".join(items))

        async def ack(message):
            log.append(f"ack {message}")

        delivery: Delivery[str, str] = Delivery(announce, ack)
        for i, w in enumerate(writes):
            await delivery.submit(f"m{i}", [w], f"a{i}")
        task = asyncio.create_task(delivery.run())
        # the last message's write is acknowledged first: still nothing out of order
        writes[2].set_result(None)
        writes[1].set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == []
        writes[0].set_result(None)
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        assert log == ["announce a0,a1,a2", "ack m0", "ack m1", "ack m2"]

    run(scenario())


def test_a_failed_state_write_stops_before_any_announcement_or_commit():
    log: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ok, bad = loop.create_future(), loop.create_future()

        async def announce(items):
            log.append("announce")

        async def ack(message):
            log.append(f"ack {message}")

        delivery: Delivery[str, str] = Delivery(announce, ack)
        await delivery.submit("m1", [ok, bad], "a1")
        ok.set_result(None)
        bad.set_exception(RuntimeError("broker refused"))
        with pytest.raises(RuntimeError, match="broker refused"):
            await delivery.run()
        assert log == []

    run(scenario())


def test_a_failed_announcement_commits_nothing():
    acked: list[str] = []

    async def scenario() -> None:
        async def announce(items):
            raise ConnectionError("redis down for good")

        async def ack(message):
            acked.append(message)

        delivery: Delivery[str, str] = Delivery(announce, ack)
        await delivery.submit("m1", [], "a1")
        with pytest.raises(ConnectionError):
            await delivery.run()
        assert acked == []

    run(scenario())


def test_submit_applies_back_pressure():
    async def scenario() -> None:
        async def announce(items):
            return None

        async def ack(message):
            return None

        delivery: Delivery[str, str] = Delivery(announce, ack, max_pending=2)
        await delivery.submit("m1", [], "a")
        await delivery.submit("m2", [], "a")
        third = asyncio.create_task(delivery.submit("m3", [], "a"))
        await asyncio.sleep(0.01)
        assert not third.done()  # the fold waits until the protocol catches up
        runner = asyncio.create_task(delivery.run())
        await asyncio.wait_for(third, 1)
        runner.cancel()

    run(scenario())
