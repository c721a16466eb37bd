"""The analysis state the fold keeps equals an independent pandas computation over the same
events (a synthetic history of all four sources, 14 months, ingested as the worker would), and
stays bounded."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from custpulse.processors import analysis_state, synthetic
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.lifecycle import evaluated_at
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES

END = datetime(2026, 10, 31, tzinfo=UTC)
NOW = datetime(2026, 11, 30, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
CONFIG = IngestConfig(load_mappings(), ZONE, b"analysis-state-test-secret")


def _events() -> list[dict[str, Any]]:
    records = synthetic.generate(60, 14, END, seed=7)
    out = []
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            got = ingest(json.dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), CONFIG, END + timedelta(days=1))
            assert isinstance(got, Accepted), got
            out.append(got.event.to_wire())
    out.sort(key=lambda w: w["event_time"])
    return out


EVENTS = _events()


def _fold(wires: list[dict[str, Any]], size: int) -> dict[str, Any]:
    folder = EnvelopeFold(load_library(), 5000, zone=ZONE)
    table: dict[str, Any] = {}
    for start in range(0, len(wires), size):
        result = folder.fold(wires[start:start + size], lambda u: copy.deepcopy(table.get(u)),
                             NOW)
        table.update(json.loads(json.dumps(result.writes)))
    return table


def _reference_days(as_of: dict[str, datetime]) -> pd.DataFrame:
    rows = []
    for w in EVENTS:
        if w["source"] not in ("behavior", "orders"):
            continue  # CRM updates and tickets are not activity
        data = w["data"]
        t = pd.Timestamp(w["event_time"]).tz_convert(ZONE)
        channel = data.get("channel") if isinstance(data.get("channel"), str) else None
        status = data.get("status")
        purchase = w["source"] == "orders" and status not in ("returned", "refunded",
                                                              "cancelled")
        amount = data.get("amount")
        rows.append({
            "user_id": w["user_id"], "day": t.date().isoformat(),
            "channel": channel.strip() if channel and channel.strip() else "unknown",
            "browse": int(w["source"] == "behavior" and data.get("behavior_type") == "browse"),
            "add_to_cart": int(w["source"] == "behavior"
                               and data.get("behavior_type") == "add_to_cart"),
            "purchases": int(purchase),
            "cents": int(round(float(amount) * 100)) if purchase and amount is not None else 0,
            "returns": int(w["source"] == "orders" and status in ("returned", "refunded")),
            "events": 1,
        })
    df = pd.DataFrame(rows)
    first = {u: (a.astimezone(ZONE).date() - timedelta(days=analysis_state.DAYS_KEPT))
             .isoformat() for u, a in as_of.items()}
    df = df[df["day"] >= df["user_id"].map(first)]
    return df.groupby(["user_id", "day", "channel"], as_index=False).sum()


def _state_days(table: dict[str, Any]) -> pd.DataFrame:
    rows = [{"user_id": u, "day": d, "channel": c, "browse": r[0], "add_to_cart": r[1],
             "purchases": r[2], "cents": r[3], "returns": r[4], "events": r[5]}
            for u, v in table.items() for d, chans in v["ana"]["days"].items()
            for c, r in chans.items()]
    return pd.DataFrame(rows).sort_values(["user_id", "day", "channel"]).reset_index(
        drop=True)


def test_daily_counters_equal_a_pandas_groupby_for_any_batching():
    table = _fold(EVENTS, 500)
    as_of = {u: evaluated_at(v["seg"]) for u, v in table.items()}
    reference = _reference_days(as_of).sort_values(["user_id", "day", "channel"]).reset_index(
        drop=True)
    got = _state_days(table)
    pd.testing.assert_frame_equal(got, reference, check_dtype=False)
    assert got["purchases"].sum() > 100 and got["browse"].sum() > 100  # a real history
    # another batching (and reversed arrival) gives the same counters and baskets
    again = _fold(list(reversed(EVENTS)), 37)
    for user, value in table.items():
        assert again[user]["ana"]["days"] == value["ana"]["days"]
        assert again[user]["ana"]["baskets"] == value["ana"]["baskets"]
        assert again[user]["ana"]["issues"] == value["ana"]["issues"]


def test_baskets_are_the_paid_orders_with_products_bounded():
    table = _fold(EVENTS, 500)
    for user, value in table.items():
        at = evaluated_at(value["seg"])
        floor = (at - timedelta(days=analysis_state.BASKET_DAYS)).timestamp() * 1000
        expected = {}
        for w in EVENTS:
            data = w["data"]
            if w["user_id"] != user or w["source"] != "orders" or data.get("status") in (
                    "returned", "refunded", "cancelled"):
                continue
            items = sorted({str(i["product_id"]) for i in data.get("items") or []
                            if isinstance(i, dict) and i.get("product_id")})
            ms = int(round(pd.Timestamp(w["event_time"]).timestamp() * 1000))
            if 0 < len(items) <= analysis_state.MAX_ITEMS and ms > floor:
                key = f"o:{data['order_id']}"
                if key not in expected or [ms, items] > expected[key]:
                    expected[key] = [ms, items]
        keep = sorted((v[0], k) for k, v in expected.items())[-analysis_state.MAX_BASKETS:]
        assert value["ana"]["baskets"] == {k: expected[k] for _, k in keep}


def test_issue_types_follow_the_live_tickets_and_moves_are_the_alerts():
    folder = EnvelopeFold(load_library(), 5000, zone=ZONE)
    table: dict[str, Any] = {}
    alerts: dict[str, list[list[Any]]] = {}
    for start in range(0, len(EVENTS), 300):
        result = folder.fold(EVENTS[start:start + 300], lambda u: copy.deepcopy(table.get(u)),
                             NOW)
        table.update(json.loads(json.dumps(result.writes)))
        for user, mirror in result.mirrors.items():
            for a in mirror.alerts:
                move = [int(round(pd.Timestamp(a["event_time"]).timestamp() * 1000)),
                        a["group"], a["old"], a["new"], int(a["historical"])]
                if move not in alerts.setdefault(user, []):
                    alerts[user].append(move)
    issues = 0
    for user, value in table.items():
        live = set(value["profile"]["service"]["tickets"])
        assert set(value["ana"]["issues"]) <= live
        issues += len(value["ana"]["issues"])
        at = evaluated_at(value["seg"]).timestamp() * 1000
        floor = at - analysis_state.DAYS_KEPT * 86_400_000
        assert value["ana"]["moves"] == [m for m in alerts.get(user, []) if m[0] > floor][
            -analysis_state.MAX_MOVES:]
    assert issues > 10
    assert sum(len(v["ana"]["moves"]) for v in table.values()) > 20


def _event(source: str, when: str, data: dict[str, Any], eid: str) -> CanonicalEvent:
    return CanonicalEvent.from_wire({
        "v": 2, "event_id": eid, "source": source, "user_id": "U1", "event_time": when,
        "ingested_at": when, "data": data, "quality": {}, "origin": {}})


def test_channels_beyond_the_cap_merge_the_same_way_in_any_order():
    import random

    events = [_event("behavior", "2026-11-02T03:00:00+00:00",
                     {"behavior_type": "browse", "channel": f"c{i:02d}"}, f"e{i}")
              for i in range(40)]
    states = []
    for seed in range(5):
        order = list(events)
        random.Random(seed).shuffle(order)
        state = None
        for k, e in enumerate(order):
            state = analysis_state.fold_event(state, e, ZONE)
            if k % 7 == 0:
                analysis_state.prune(state, datetime(2026, 11, 3, tzinfo=UTC), ZONE)
        analysis_state.prune(state, datetime(2026, 11, 3, tzinfo=UTC), ZONE)
        states.append(state)
    assert all(s == states[0] for s in states)
    (rows,) = states[0]["days"].values()
    assert len(rows) == analysis_state.MAX_CHANNELS
    assert sorted(rows)[:3] == ["c00", "c01", "c02"]
    assert rows["other"][analysis_state.BROWSE] == 40 - (analysis_state.MAX_CHANNELS - 1)


def test_bulk_orders_are_purchases_but_not_baskets_and_crm_updates_are_not_activity():
    bulk = [{"product_id": f"SKU{i}"} for i in range(analysis_state.MAX_ITEMS + 1)]
    state = analysis_state.fold_event(None, _event(
        "orders", "2026-11-02T03:00:00+00:00",
        {"order_id": "O1", "status": "paid", "amount": 10, "items": bulk}, "e1"), ZONE)
    state = analysis_state.fold_event(state, _event(
        "customers", "2026-11-02T04:00:00+00:00", {"channel": "web", "region": "x"}, "e2"),
        ZONE)
    state = analysis_state.fold_event(state, _event(
        "tickets", "2026-11-02T05:00:00+00:00", {"ticket_id": "T1", "issue_type": "refund"},
        "e3"), ZONE)
    assert state["baskets"] == {}
    assert state["days"] == {"2026-11-02": {"unknown": [0, 0, 1, 1000, 0, 1]}}
    assert list(state["issues"]) == ["t:T1"]


def test_local_days_at_the_edges():
    # a microsecond before local midnight is still that day; before 1970 (LMT offsets) too
    late = datetime(2026, 11, 2, 15, 59, 59, 999_999, tzinfo=UTC)  # 23:59:59.999999 +08:00
    assert analysis_state._day(late, ZONE) == "2026-11-02"
    old = datetime(1899, 12, 31, 16, 0, tzinfo=UTC)
    assert analysis_state._day(old, ZONE) == analysis_state.local_day(old, ZONE)
    york = ZoneInfo("America/New_York")
    fall = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT -> the day of the change
    assert analysis_state._day(fall, york) == "2026-11-01"
