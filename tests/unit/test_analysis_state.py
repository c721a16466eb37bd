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
            if items and ms > floor:
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
