"""Envelopes on <prefix>events and the per-envelope fold: batching must not change any value."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.partitioner import DefaultPartitioner

from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.profile import profile_view
from custpulse.schemas.envelope import (
    TICK_MAX_USERS,
    envelopes,
    pack,
    partition_for,
    tick_record,
    tick_records,
    unpack,
)
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.segments import load_library

from .test_profile import compare, events, frame  # noqa: F401  (fixture)

LIB = load_library()
NOW = datetime(2026, 11, 23, tzinfo=UTC)
T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_pack_unpack_round_trip_and_single_records():
    records = [{"kind": "tick", "user_id": "U1", "deadline": "2026-01-01T00:00:00+00:00"},
               {"v": 2, "event_id": "e1"}]
    assert unpack(pack(records)) == records
    assert json.loads(pack(records))["v"] == 3
    assert unpack(json.dumps({"v": 2, "event_id": "e1"})) == [{"v": 2, "event_id": "e1"}]
    for bad in (b"[1]", b"nope", None, b'{"kind": "batch", "records": 3}'):
        with pytest.raises(ValueError):
            unpack(bad)


def test_partition_is_kafkas_default_partitioner_on_the_user_id():
    partitioner = DefaultPartitioner()
    for i in range(200):
        user = f"U{i:06d}"
        expected = partitioner(user.encode(), list(range(7)), list(range(7)))
        assert partition_for(user, 7) == expected
    assert {partition_for(f"U{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_envelopes_are_bounded_by_count_and_bytes_and_keep_order():
    records = [({"i": i}, 100) for i in range(12)]
    out = [unpack(e) for e in envelopes(records, 5)]
    assert [len(x) for x in out] == [5, 5, 2]
    assert [r["i"] for x in out for r in x] == list(range(12))
    out = [unpack(e) for e in envelopes(records, 100, max_bytes=350)]
    assert [len(x) for x in out] == [3, 3, 3, 3]
    big = [({"i": 0}, 10), ({"i": 1}, 10_000), ({"i": 2}, 10)]
    assert [len(unpack(e)) for e in envelopes(big, 100, max_bytes=500)] == [1, 1, 1]


def split(records: list, size: int) -> list[list]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def _run(wires: list, size: int, table: dict | None = None, shuffle_seed: int | None = None):
    """Fold ``wires`` in envelopes of ``size`` into ``table`` (a dict standing in for the
    Faust table: values are written back only through ``writes``)."""
    table = {} if table is None else table
    folder = EnvelopeFold(LIB, 5000)
    results = []
    for chunk in split(wires, size):
        result = folder.fold(json.loads(pack(chunk))["records"],
                             lambda u: json.loads(json.dumps(table[u])) if u in table else None,
                             NOW)
        table.update(json.loads(json.dumps(result.writes)))
        results.append(result)
    return table, results, folder


@pytest.mark.parametrize("size", [1, 7, 500, 100_000])
def test_profiles_do_not_depend_on_envelope_size(events, size):  # noqa: F811
    users = sorted({e.user_id for e in events})[:12]
    events = [e for e in events if e.user_id in users]
    wires = [e.to_wire() for e in events]
    random.Random(5).shuffle(wires)
    table, results, folder = _run(wires, size)
    as_of = max(e.event_time for e in events)
    states = {u: v["profile"] for u, v in table.items()}
    compare(states, frame(events), as_of)
    assert sum(sum(r.accepted.values()) for r in results) == len(events)
    # one write per customer changed per envelope, never more
    for r, chunk in zip(results, split(wires, size), strict=True):
        assert set(r.writes) == {w["user_id"] for w in chunk}
    # same segments whatever the batching, once evaluated at the same moment
    reference, _, _ = _run(wires, 100_000)
    for user, value in table.items():
        assert profile_view(value["profile"], as_of) == profile_view(
            reference[user]["profile"], as_of)
        assert value["dedupe"]["by_source"] == reference[user]["dedupe"]["by_source"]


def test_redelivered_envelope_changes_nothing_and_resends_the_same_alerts(events):  # noqa: F811
    wires = [e.to_wire() for e in events[:300]]
    table, first, _ = _run(wires, 50)
    before = json.loads(json.dumps(table))
    _, again, _ = _run(wires, 50, table)
    assert table == before
    for r1, r2 in zip(first, again, strict=True):
        assert r2.writes == {} and sum(r2.accepted.values()) == 0
        assert sum(r2.duplicates.values()) == sum(r1.accepted.values())
        sent = {a["alert_id"]: a for m in r1.mirrors.values() for a in m.alerts}
        resent = {a["alert_id"]: a for m in r2.mirrors.values() for a in m.alerts}
        # every alert the envelope decided (its events' and the deadlines they applied) is
        # re-sent, identical, and nothing else
        assert resent == sent


def _order(eid: str, user: str, when: datetime, amount: float = 60_000.0) -> dict:
    return CanonicalEvent(eid, "orders", user, when, {"amount": amount, "status": "paid"}).to_wire()


def _moves(results) -> list[tuple]:
    """Alerts in decision order, without the wall-clock field."""
    return [tuple(sorted((k, json.dumps(v)) for k, v in a.items() if k != "processing_time"))
            for r in results for m in r.mirrors.values() for a in m.alerts]


def test_each_event_is_its_own_decision_whatever_the_envelope_size():
    # finding 3: size 1 gave None -> potential -> regular (and a coupon), size 6 None -> regular
    wires = [_order("o1", "A", T, 100.0), _order("o2", "A", T + timedelta(hours=1), 60_000.0)]
    _, one, _ = _run(wires, 1)
    _, both, _ = _run(wires, 10)
    assert _moves(one) == _moves(both)
    causes = [a["cause"] for a in both[0].mirrors["A"].alerts]
    assert "o1" in causes and "o2" in causes
    assert both[0].writes.keys() == {"A"} and both[0].deadlines.keys() == {"A"}
    assert both[0].ops == [("order", T), ("order", T + timedelta(hours=1))]


def test_due_deadlines_are_applied_before_a_later_event_so_ticks_cannot_race_it():
    # finding 3: the 0.5 s timer decided whether a time-driven move happened before the
    # customer's next event; when the event won, the move vanished
    first = [_order("o1", "A", T)]
    later = _order("o2", "A", T + timedelta(days=200), 10.0)
    table, _, folder = _run(first, 10)
    deadline = datetime.fromisoformat(table["A"]["seg"]["next_deadline"])
    tick = tick_record("A", deadline, T + timedelta(days=199))
    tick_first = _moves(_run([tick, later], 1, json.loads(json.dumps(table)))[1])
    event_first = _moves(_run([later, tick], 1, json.loads(json.dumps(table)))[1])
    together = _moves(_run([later, tick], 10, json.loads(json.dumps(table)))[1])
    assert tick_first == event_first == together
    timer_moves = [dict(m)["cause"] for m in event_first if "timer:" in dict(m)["cause"]]
    assert timer_moves, "time-driven moves before o2 are announced, not lost"


def test_a_customer_is_evaluated_at_its_own_time_not_at_another_sources_time():
    # finding 2: behaviour of other customers ran ahead to November; B's first order of June
    # was evaluated as of November and announced None -> churned, and counted as late
    november = datetime(2026, 11, 20, tzinfo=UTC)
    june = datetime(2026, 6, 3, 12, tzinfo=UTC)
    other = CanonicalEvent("b1", "behavior", "A", november,
                           {"behavior_type": "browse"}).to_wire()
    _, (result,), _ = _run([other, _order("o1", "B", june, 100.0)], 10)
    alerts = result.mirrors["B"].alerts
    assert alerts and not any(a["late"] for a in alerts)
    assert all(a["event_time"].startswith("2026-06-03") for a in alerts)
    assert "churned" not in {a["new"] for a in alerts}
    assert result.writes["B"]["seg"]["evaluated_at"].startswith("2026-06-03T12:00:00")


def test_late_means_earlier_than_the_customers_own_as_of():
    table, _, folder = _run([_order("o1", "A", T + timedelta(days=2))], 10)
    result = folder.fold([_order("o2", "A", T), _order("o3", "A", T + timedelta(days=3))],
                         lambda u: table.get(u), NOW)
    late = {a["cause"]: a["late"] for a in result.mirrors["A"].alerts}
    assert late.get("o2", True) is True and late.get("o3", False) is False


def test_old_moves_are_historical_and_trigger_no_campaign():
    from custpulse.processors.campaigns import campaign_triggers, load_campaigns

    wires = [_order("o1", "A", T, 100.0), _order("o2", "A", T + timedelta(hours=1), 60_000.0)]
    _, (old,), _ = _run(wires, 10)
    assert old.mirrors["A"].alerts and all(a["historical"] for a in old.mirrors["A"].alerts)
    campaigns = load_campaigns()
    assert all(campaign_triggers(campaigns, a) == [] for a in old.mirrors["A"].alerts)
    fresh = [_order("o1", "A", NOW - timedelta(hours=2), 100.0),
             _order("o2", "A", NOW - timedelta(hours=1), 60_000.0)]
    _, (new,), _ = _run(fresh, 10)
    assert not any(a["historical"] for a in new.mirrors["A"].alerts)


def test_a_tick_after_events_in_the_same_envelope_sees_them():
    until = T + timedelta(days=40)
    records = [_order("o1", "A", T), tick_record("A", T, until), tick_record("nobody", until)]
    _, (result,), _ = _run(records, 10)
    value = result.writes["A"]
    at = datetime.fromisoformat(value["seg"]["evaluated_at"])
    assert T < at <= until
    assert datetime.fromisoformat(value["seg"]["next_deadline"]) > until
    causes = [a["cause"] for a in result.mirrors["A"].alerts]
    assert "o1" in causes and f"timer:{at.isoformat()}" in causes
    assert "nobody" not in result.writes and "nobody" not in result.mirrors
    # the same tick again (a redelivery) changes nothing and re-sends what it decided
    _, (again,), _ = _run([tick_record("A", T, until)], 10, {"A": value})
    assert again.writes == {}
    assert again.mirrors["A"].alerts and all(
        a["cause"].startswith("timer:") for a in again.mirrors["A"].alerts)


def test_bad_records_are_dead_lettered_with_their_place_and_the_rest_applies():
    records = [_order("o1", "A", T), {"v": 2, "event_id": 5}, "text",
               {"kind": "tick", "user_id": "A", "deadline": "never"}, _order("o2", "B", T)]
    _, (result,), _ = _run(records, 10)
    assert [(d.code, d.index) for d in result.deadletters] == [
        ("bad_canonical_event", 1), ("bad_canonical_event", 2), ("bad_canonical_event", 3)]
    assert all(d.payload is None for d in result.deadletters)
    assert result.writes.keys() == {"A", "B"}


def test_beyond_the_dedupe_horizon_is_dead_lettered_not_counted():
    folder = EnvelopeFold(LIB, 10)
    table: dict = {}
    wires = [_order(f"o{i}", "A", T + timedelta(hours=i), 10.0) for i in range(12)]
    table.update(folder.fold(wires, table.get, NOW).writes)
    old = _order("o-old", "A", T - timedelta(days=1), 10.0)
    result = folder.fold([old], table.get, NOW)
    assert [(d.code, d.field) for d in result.deadletters] == [("beyond_dedupe_horizon",
                                                                 "event_id")]
    assert result.deadletters[0].payload["event_id"] == "o-old"
    assert result.writes == {} and sum(result.accepted.values()) == 0


def test_one_tick_record_for_many_customers_is_the_same_as_one_tick_each():
    until = T + timedelta(days=120)
    first = [_order("o1", "A", T), _order("o2", "B", T + timedelta(days=3), 900.0),
             _order("o3", "C", T + timedelta(days=9), 60_000.0)]
    table, _, _ = _run(first, 10)
    due = [(u, datetime.fromisoformat(table[u]["seg"]["next_deadline"])) for u in "ABC"]
    singles = [tick_record(u, at, until) for u, at in due]
    (many,) = tick_records(due + [("A", due[0][1]), ("nobody", T)], until)
    assert many["users"] == ["A", "B", "C", "nobody"] and many["deadline"] == T.isoformat()
    one_each, r1, _ = _run(singles, 10, json.loads(json.dumps(table)))
    together, r2, _ = _run([many], 10, json.loads(json.dumps(table)))
    assert one_each == together
    assert _moves(r1) == _moves(r2) and _moves(r2)
    assert r1[0].ticked == r2[0].ticked == 3  # "nobody" has no value: nothing to evaluate
    # a redelivered multi-customer tick re-sends what it decided and changes nothing
    _, (again,), _ = _run([many], 10, json.loads(json.dumps(together)))
    assert again.writes == {} and _moves([again]) == _moves(r2)


def test_tick_records_are_chunked_and_bad_ones_dead_lettered():
    users = [(f"U{i}", T + timedelta(seconds=i)) for i in range(TICK_MAX_USERS + 5)]
    records = tick_records(users, T + timedelta(days=1))
    assert [len(r["users"]) for r in records] == [TICK_MAX_USERS, 5]
    assert records[1]["deadline"] == (T + timedelta(seconds=TICK_MAX_USERS)).isoformat()
    bad = [{"kind": "tick", "users": "A", "until": T.isoformat()},
           {"kind": "tick", "users": ["A", 5], "until": T.isoformat()},
           {"kind": "tick", "users": ["A"]}]
    _, (result,), _ = _run(bad, 10)
    assert [d.index for d in result.deadletters] == [0, 1, 2]


class _EveryDeadline(EnvelopeFold):
    """The fold evaluating at every deadline and computing every view anew (the reference)."""

    def _skip(self, c, deadline, previous, until):
        c.base = None
        return deadline


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_skipping_deadlines_no_rule_reads_changes_nothing(seed):
    from custpulse.processors.lifecycle import next_deadline_of
    from custpulse.schemas.envelope import tick_records as ticks

    rng = random.Random(seed)
    wires = []
    for i in range(60):  # orders and visits spread over two years, then ticks far ahead
        user = f"U{rng.randrange(12)}"
        at = T + timedelta(days=rng.uniform(0, 700), seconds=rng.randrange(86400))
        if rng.random() < 0.5:
            wires.append(_order(f"o{i}", user, at, round(rng.uniform(5, 30_000), 2)))
        else:
            wires.append(CanonicalEvent(f"b{i}", "behavior", user, at,
                                        {"behavior_type": "browse", "channel": "app"}).to_wire())
    wires.sort(key=lambda w: w["event_time"])
    outcomes = []
    for folder_class in (EnvelopeFold, _EveryDeadline):
        folder = folder_class(LIB, 5000)
        table, alerts = {}, []
        chunks = [wires[i:i + 7] for i in range(0, len(wires), 7)]
        for k, chunk in enumerate(chunks + [[] for _ in range(3)]):
            records = list(chunk)
            if k % 3 == 2 or not chunk:  # a watermark jump: every due customer ticked
                until = T + timedelta(days=100 * (k + 1))
                due = [(u, next_deadline_of(v["seg"])) for u, v in table.items()]
                records += ticks([(u, d) for u, d in due if d is not None and d <= until], until)
            def lookup(u, table=table):
                return json.loads(json.dumps(table[u])) if u in table else None

            result = folder.fold(json.loads(pack(records))["records"], lookup, NOW)
            table.update(json.loads(json.dumps(result.writes)))
            alerts.append(_moves([result]))
            alerts.append(sorted((u, json.dumps(m.view, sort_keys=True))
                                 for u, m in result.mirrors.items()))
        outcomes.append((json.dumps(table, sort_keys=True), alerts))
    assert outcomes[0] == outcomes[1]
