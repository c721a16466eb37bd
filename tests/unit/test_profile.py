"""Profile fold against an independent pandas computation over the same events."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from custpulse.processors import synthetic
from custpulse.processors.counting import fold_count
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.profile import (
    fold_profile,
    next_window_change,
    profile_view,
    prune,
    window_start,
)
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.mapping import load_mappings
from custpulse.settings import SOURCES

END = datetime(2026, 10, 31, tzinfo=UTC)
CONFIG = IngestConfig(load_mappings(), ZoneInfo("Asia/Shanghai"), b"profile-test-secret-123")


@pytest.fixture(scope="module")
def events() -> list[CanonicalEvent]:
    records = synthetic.generate(40, 14, END, seed=3)
    out = []
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            res = ingest(__import__("json").dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), CONFIG, END + timedelta(days=1))
            assert isinstance(res, Accepted), res
            out.append(res.event)
    return out


def frame(events: list[CanonicalEvent]) -> pd.DataFrame:
    return pd.DataFrame([
        {"user_id": e.user_id, "source": e.source, "t": e.event_time,
         "status": e.data.get("status"), "amount": e.data.get("amount"),
         "behavior_type": e.data.get("behavior_type"), "ticket_id": e.data.get("ticket_id"),
         "closed_at": e.data.get("closed_at"), "is_complaint": e.data.get("is_complaint"),
         "issue_type": e.data.get("issue_type"), "satisfaction": e.data.get("satisfaction")}
        for e in events
    ])


def to_cents(amount) -> int:
    """CNY -> integer cents, half-up on the decimal value (the profile's money rule)."""
    return int(Decimal(repr(float(amount))).quantize(Decimal("0.01"), ROUND_HALF_UP) * 100)


def reference(df: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Profile values per user computed directly from the events (no buckets)."""
    start = pd.Timestamp(window_start(as_of))
    paid = df[(df.source == "orders") & ~df.status.isin(["returned", "refunded", "cancelled"])]
    paid = paid.assign(cents=paid.amount.map(to_cents))
    touched = pd.concat([df[df.source == "behavior"], paid])
    hours = touched.assign(h=touched.t.map(lambda t: math.ceil(t.timestamp() / 3600)))
    tickets = df[df.source == "tickets"]
    closed = pd.to_datetime(tickets.closed_at, utc=True)
    tickets = tickets.assign(
        complaint=(tickets.is_complaint == True) | (tickets.issue_type == "complaint"),  # noqa: E712
        open=closed.isna() | (closed > pd.Timestamp(as_of)))
    rows = {}
    for user in sorted(df.user_id.unique()):
        p = paid[paid.user_id == user]
        h = hours[hours.user_id == user]
        k = tickets[tickets.user_id == user].groupby("ticket_id").last()  # one record each
        rated = k.satisfaction.dropna()
        row = {
            "orders_total": len(p),
            "monetary_total": int(p.cents.sum()) / 100,
            "avg_order_value": (float((Decimal(int(p.cents.sum())) / len(p) / 100).quantize(
                Decimal("0.01"), ROUND_HALF_UP)) if len(p) else None),
            "returns_total": int(((df.user_id == user) & (df.status == "returned")).sum()),
            "funnel_browse": int(((df.user_id == user) & (df.behavior_type == "browse")).sum()),
            "tickets_total": len(k),
            "complaints_total": int(k.complaint.sum()),
            "open_complaints": int((k.complaint & k.open).sum()),
            "satisfaction_mean": round(float(rated.mean()), 6) if len(rated) else None,
        }
        for days in (30, 90, 365):
            inside = p[p.t > start - pd.Timedelta(days=days)]
            row[f"frequency_{days}d"] = len(inside)
            row[f"monetary_{days}d"] = int(inside.cents.sum()) / 100
        for days in (7, 30):
            lower = (start - pd.Timedelta(days=days)).timestamp() / 3600
            row[f"visits_{days}d"] = int(h[h.h > lower].h.nunique())
        last = p.t.max() if len(p) else None
        row["recency_days"] = None if last is None else round((as_of - last).total_seconds() / 86400, 6)
        rows[user] = row
    return pd.DataFrame(rows).T


def fold_all(events: list[CanonicalEvent], as_of_of) -> tuple[dict, dict]:
    states: dict[str, dict] = {}
    dedupe: dict[str, dict] = {}
    watermark = None
    for ev in events:
        watermark = ev.event_time if watermark is None else max(watermark, ev.event_time)
        d, verdict = fold_count(dedupe.get(ev.user_id), ev)
        dedupe[ev.user_id] = d
        if verdict == "accepted":
            states[ev.user_id] = fold_profile(states.get(ev.user_id), ev, as_of_of(watermark))
    return states, watermark


def compare(states: dict, df: pd.DataFrame, as_of: datetime) -> None:
    expected = reference(df, as_of)
    got = pd.DataFrame({u: profile_view(s, as_of) for u, s in states.items()}).T[expected.columns]
    pd.testing.assert_frame_equal(got.sort_index().astype(object).fillna(-1),
                                  expected.sort_index().astype(object).fillna(-1), check_dtype=False)


def test_in_order_replay_matches_pandas(events):
    ordered = sorted(events, key=lambda e: e.event_time)
    states, watermark = fold_all(ordered, lambda w: w)
    compare(states, frame(events), watermark)


def test_out_of_order_with_redeliveries_matches_pandas(events):
    shuffled = list(events)
    random.Random(9).shuffle(shuffled)
    redelivered = shuffled + random.Random(4).sample(shuffled, 500)  # repeats count once
    states, watermark = fold_all(redelivered, lambda w: w)
    compare(states, frame(events), watermark)


@pytest.mark.parametrize("later_days", [0.5, 20, 45, 100, 400])
def test_windows_move_with_time_alone(events, later_days):
    ordered = sorted(events, key=lambda e: e.event_time)
    states, watermark = fold_all(ordered, lambda w: w)
    as_of = watermark + timedelta(days=later_days)
    compare(states, frame(events), as_of)


def test_memory_is_bounded_by_windows_not_history(events):
    ordered = sorted(events, key=lambda e: e.event_time)
    states, watermark = fold_all(ordered, lambda w: w)
    for state in states.values():
        prune(state, watermark)  # what a time-driven re-evaluation at the watermark does
        assert len(state["orders"]["buckets"]) <= 365 * 24
        assert len(state["activity"]["hours"]) <= 30 * 24
        oldest = min((int(h) for h in state["orders"]["buckets"]), default=None)
        if oldest is not None:
            assert oldest * 3600 > (window_start(watermark) - timedelta(days=365)).timestamp()


def _order(eid, when, amount=100.0, status="paid"):
    return CanonicalEvent(eid, "orders", "U1", when, {"amount": amount, "status": status,
                                                      "channel": "app"})


def test_an_order_leaves_frequency_30d_when_it_turns_30_days_old():
    t0 = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    s = fold_profile(None, _order("a", t0), t0)
    assert profile_view(s, t0)["frequency_30d"] == 1
    # window lower edge = floor_hour(as_of) - 30 d; the order's hour bucket is (10:00, 11:00]
    assert profile_view(s, t0 + timedelta(days=30, minutes=29))["frequency_30d"] == 1
    assert profile_view(s, t0 + timedelta(days=30, minutes=30))["frequency_30d"] == 0
    assert next_window_change(s, t0) == datetime(2026, 1, 8, 11, 0, tzinfo=UTC)  # visits_7d
    assert next_window_change(s, t0 + timedelta(days=8)) == datetime(2026, 1, 31, 11, 0, tzinfo=UTC)


def test_hand_computed_profile():
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    s = None
    for ev in [
        _order("o1", t0, 100), _order("o2", t0 + timedelta(days=10), 300),
        _order("o3", t0 + timedelta(days=20), 0),  # zero amount is an order
        _order("r1", t0 + timedelta(days=21), status="returned"),
        CanonicalEvent("b1", "behavior", "U1", t0 + timedelta(days=22),
                       {"behavior_type": "add_to_cart", "channel": "web"}),
        CanonicalEvent("k1", "tickets", "U1", t0 + timedelta(days=23),
                       {"ticket_id": "T1", "is_complaint": True, "satisfaction": 2,
                        "handling_minutes": 30, "closed_at": None}),
        CanonicalEvent("c1", "customers", "U1", t0 - timedelta(days=400),
                       {"region": "北京市", "member_level": "gold",
                        "register_date": "2025-01-25T00:00:00.000+00:00"}),
    ]:
        s = fold_profile(s, ev, t0 + timedelta(days=23))
    v = profile_view(s, t0 + timedelta(days=25))
    assert (v["orders_total"], v["monetary_total"], v["avg_order_value"]) == (3, 400.0, 133.33)
    assert v["mean_interpurchase_days"] == 10.0
    assert (v["returns_total"], v["return_rate"]) == (1, round(1 / 3, 6))
    assert (v["frequency_30d"], v["monetary_30d"]) == (3, 400.0)
    assert v["recency_days"] == 5.0 and v["inactive_days"] == 3.0
    assert v["funnel_latest_step"] == "add_to_cart" and v["funnel_repurchase"] == 2
    assert v["active_channels"] == ["app", "web"]
    assert (v["tickets_total"], v["open_complaints"], v["satisfaction_mean"]) == (1, 1, 2.0)
    assert (v["region"], v["member_level"]) == ("北京市", "gold")
    assert v["days_since_register"] == 425.0


def test_a_register_date_of_another_shape_reads_as_unknown():
    from custpulse.processors.profile import new_profile, profile_view

    state = new_profile()
    state["master"]["register_date"] = [[0, ""], {"not": "a time"}]
    view = profile_view(state, datetime(2026, 1, 1, tzinfo=UTC))
    assert view["days_since_register"] is None
