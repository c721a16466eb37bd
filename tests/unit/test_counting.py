"""The event-count fold, the canonical wire format and time parsing (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.counting import apply_count, fold_count, total
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import parse_time

SH = ZoneInfo("Asia/Shanghai")


def test_wire_round_trip():
    ev = CanonicalEvent("e", "tickets", "U9", datetime(2024, 5, 1, 3, 4, 5, tzinfo=SH))
    wire = json.loads(json.dumps(ev.to_wire()))
    assert wire["event_time"] == "2024-04-30T19:04:05.000+00:00"
    assert CanonicalEvent.from_wire(wire) == ev


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2024-03-15 10:30:00", "2024-03-15T10:30:00+08:00"),
        ("2024/03/15 10:30", "2024-03-15T10:30:00+08:00"),
        ("2024-03-15", "2024-03-15T00:00:00+08:00"),
        ("2024-03-15T10:30:00Z", "2024-03-15T10:30:00+00:00"),
        ("2024-03-15T10:30:00", "2024-03-15T10:30:00+08:00"),
    ],
)
def test_time_formats(value, iso):
    assert parse_time(value, SH).isoformat() == iso


# Since issue 9 a bare number is an epoch only where the mapping declares it (no guessing
# between seconds, milliseconds, compact dates and Excel serials): tests/unit/test_times.py.
@pytest.mark.parametrize(
    ("value", "fmt", "iso"),
    [
        ("1710469800", "epoch_s", "2024-03-15T02:30:00+00:00"),
        (1710469800123, "epoch_ms", "2024-03-15T02:30:00.123000+00:00"),
    ],
)
def test_declared_epoch_formats(value, fmt, iso):
    assert parse_time(value, SH) is None
    assert parse_time(value, SH, fmt).isoformat() == iso


@pytest.mark.parametrize("value", [None, "", True, "yesterday", -5, float("nan"), [], "2024-13-01"])
def test_unreadable_times(value):
    assert parse_time(value, SH) is None


def _ev(event_id, source="orders", hour=0):
    return CanonicalEvent(event_id, source, "U1", datetime(2024, 1, 1, hour, tzinfo=UTC))


def test_fold_counts_once_per_event_id_and_keeps_latest_time():
    state = None
    verdicts = []
    for ev in [_ev("a", hour=5), _ev("b", "behavior", 3), _ev("a", hour=5), _ev("c", hour=9)]:
        state, verdict = fold_count(state, ev)
        verdicts.append(verdict)
    assert verdicts == ["accepted", "accepted", "duplicate", "accepted"]
    assert state["by_source"] == {"orders": 2, "behavior": 1}
    assert total(state) == 3
    assert state["last_event_time"] == "2024-01-01T09:00:00.000+00:00"


def test_fold_does_not_mutate_its_input():
    state, _ = fold_count(None, _ev("a"))
    snapshot = json.dumps(state, sort_keys=True)
    fold_count(state, _ev("b"))
    assert json.dumps(state, sort_keys=True) == snapshot


def test_fold_is_idempotent_under_replay_of_any_prefix():
    events = [_ev(str(i % 7), hour=i % 24) for i in range(30)]
    once = None
    for ev in events:
        once, _ = fold_count(once, ev)
    twice = once
    for ev in events[:13]:
        twice, _ = fold_count(twice, ev)
    assert twice == once
    assert total(once) == 7


def test_dedupe_memory_is_bounded_and_evicts_oldest_by_event_time():
    state = None
    for i, hour in enumerate([5, 1, 3, 7, 2]):
        state, verdict = fold_count(state, _ev(f"e{i}", hour=hour), max_ids=3)
        assert verdict == "accepted"
    # kept: the three newest by event time (7h, 5h, 3h); evicted 1h then 2h -> floor 2h
    assert sorted(state["ids"]) == ["e0", "e2", "e3"]
    assert state["floor"] == int(datetime(2024, 1, 1, 2, tzinfo=UTC).timestamp() * 1000)
    assert total(state) == 5
    # a repeat of a kept id is a duplicate; an unknown id at/before the floor is undecidable
    assert fold_count(state, _ev("e3", hour=7), max_ids=3)[1] == "duplicate"
    assert fold_count(state, _ev("e1", hour=1), max_ids=3)[1] == "beyond_horizon"
    assert fold_count(state, _ev("new", hour=2), max_ids=3)[1] == "beyond_horizon"
    assert fold_count(state, _ev("new", hour=4), max_ids=3)[1] == "accepted"


def test_bounded_state_stays_bounded_over_long_histories():
    state = None
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(500):  # in event-time order: every one is new and accepted
        ev = CanonicalEvent(f"e{i}", "behavior", "U1", start + timedelta(minutes=i))
        state, verdict = fold_count(state, ev, max_ids=50)
        assert verdict == "accepted"
    assert len(state["ids"]) == 50
    assert sorted(state["ids"]) == sorted(f"e{i}" for i in range(450, 500))
    assert total(state) == 500


def _reference(events, caps):
    """The eviction rule written plainly: after each new id, drop the oldest (time, id)."""
    ids, floor, verdicts = {}, None, []
    for n, ev in enumerate(events):
        max_ids = caps[n * len(caps) // max(len(events), 1)]
        ms = int(round(ev.event_time.timestamp() * 1000))
        if ev.event_id in ids:
            verdicts.append("duplicate")
            continue
        if floor is not None and ms <= floor:
            verdicts.append("beyond_horizon")
            continue
        ids[ev.event_id] = ms
        while len(ids) > max_ids:
            oldest = min(ids, key=lambda i: (ids[i], i))
            evicted = ids.pop(oldest)
            floor = evicted if floor is None else max(floor, evicted)
        verdicts.append("accepted")
    return set(ids.items()), floor, verdicts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30)), max_size=80),
       st.lists(st.integers(10, 14), min_size=1, max_size=4))
def test_eviction_at_the_cap_is_the_plain_rule(pairs, caps):
    # the cap may change between events (a new setting, another worker version)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    events = [CanonicalEvent(f"e{i}", "orders", "U1", base + timedelta(seconds=t))
              for i, t in pairs]
    state, verdicts = None, []
    for n, ev in enumerate(events):
        state, verdict = apply_count(json.loads(json.dumps(state)) if state else None, ev,
                                     caps[n * len(caps) // max(len(events), 1)])
        verdicts.append(verdict)
    want_ids, want_floor, want_verdicts = _reference(events, caps)
    assert verdicts == want_verdicts
    if state is not None:
        assert set(state["ids"].items()) == want_ids and state["floor"] == want_floor
