"""The ingest stage's event-time merge across inputs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from custpulse.processors.merge import EventTimeMerge

T = datetime(2026, 8, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T + timedelta(days=n)


def test_a_lagging_input_holds_later_events_of_the_others():
    merge = EventTimeMerge()
    # behaviour of 7-17 Aug fetched first, orders (still lagging) read up to 10 Aug
    for i, d in enumerate((7, 9, 12, 17)):
        merge.add("behavior:0", i, day(d), f"b{d}")
    for i, d in enumerate((8, 10)):
        merge.add("orders:0", i, day(d), f"o{d}")
    out = merge.release(holding={"orders:0"})
    assert [item for *_, item in out] == ["b7", "o8", "b9", "o10"]
    assert merge.commit_offset("behavior:0", 4) == 2  # b12 and b17 still held
    assert merge.commit_offset("orders:0", 2) == 2
    merge.add("orders:0", 2, day(14), "o14")
    out = merge.release(holding=set())  # caught up everywhere: all of it, in time order
    assert [item for *_, item in out] == ["b12", "o14", "b17"]
    assert merge.commit_offset("behavior:0", 4) == 4 and len(merge) == 0


def test_caught_up_inputs_hold_nothing_and_memory_is_bounded():
    merge = EventTimeMerge(max_held=3)
    for i in range(5):
        merge.add("a:0", i, day(i), i)
    merge.add("b:0", 0, day(-1), "slow")
    out = merge.release(holding={"b:0"})  # b is behind, but at most 3 may wait
    assert [item for *_, item in out] == ["slow", 0, 1]
    assert len(merge) == 3


def test_dropped_inputs_are_re_read_from_their_earliest_held_offset():
    merge = EventTimeMerge()
    merge.add("a:0", 10, day(1), "x")
    merge.add("b:0", 5, day(0), "y")
    merge.drop({"a:0"})
    assert [item for *_, item in merge.release(holding=set())] == ["y"]
    assert merge.commit_offset("a:0", 11) == 11


@given(st.lists(st.tuples(st.sampled_from(["a:0", "b:0", "c:1"]), st.integers(0, 500)),
                max_size=60), st.integers(0, 2**32 - 1))
def test_with_every_input_read_in_time_order_the_output_is_in_time_order(records, seed):
    # each input delivers its own records in time order, in random fetch chunks
    rng = random.Random(seed)
    per_input: dict[str, list[int]] = {}
    for name, minute in records:
        per_input.setdefault(name, []).append(minute)
    queues = {n: sorted(ms) for n, ms in per_input.items()}
    merge = EventTimeMerge()
    offsets = dict.fromkeys(queues, 0)
    released = []
    while any(queues.values()):
        name = rng.choice([n for n, q in queues.items() if q])
        for _ in range(rng.randint(1, 5)):
            if queues[name]:
                merge.add(name, offsets[name], T + timedelta(minutes=queues[name].pop(0)), name)
                offsets[name] += 1
        released += merge.release(holding={n for n, q in queues.items() if q})
    released += merge.release(holding=set())
    times = [t for _, _, t, _ in released]
    assert times == sorted(times) and len(released) == len(records)
    for name in queues:
        assert merge.commit_offset(name, offsets[name]) == offsets[name]
