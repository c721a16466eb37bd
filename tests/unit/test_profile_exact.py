"""Issue 9, findings 6 and 7: the profile is a function of the SET of events (any arrival
order gives the same view), and quality fills never become facts."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.lifecycle import decide
from custpulse.processors.profile import (
    MAX_RETIRED_IDS,
    cents,
    fold_profile,
    next_window_change,
    profile_view,
    prune,
)
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def ev(eid, source, when, quality=None, **data):
    return CanonicalEvent(eid, source, "U1", when, data, quality or {})


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def fold(events, as_of=None):
    s = None
    for e in events:
        s = fold_profile(s, e, as_of)
    return s


def views_in_every_order(events, as_of):
    """The profile view of every arrival order (all permutations)."""
    return [profile_view(fold(perm), as_of) for perm in itertools.permutations(events)]


def assert_same_in_every_order(events, as_of):
    views = views_in_every_order(events, as_of)
    assert all(v == views[0] for v in views), [v for v in views if v != views[0]][:1]
    return views[0]


# --- finding 6: out of order is exact everywhere --------------------------------------------


@pytest.mark.parametrize("amounts, total", [((1.20, 1.20, 1.21), 3.61),
                                            ((1.20, 1.20, 1.205), 3.61)])
def test_money_is_integer_cents_whatever_the_order(amounts, total):
    orders = [ev(f"o{i}", "orders", T + i * H, amount=a, status="paid")
              for i, a in enumerate(amounts)]
    v = assert_same_in_every_order(orders, T + 3 * H)  # old code: 3.6 or 3.61 by arrival
    assert (v["monetary_total"], v["monetary_30d"], v["avg_order_value"]) == (total, total, 1.2)


def test_cents_round_half_up_on_the_decimal_value():
    assert [cents(x) for x in (1.005, 2.675, 0.125, 12, 0, 1e-9)] == [101, 268, 13, 1200, 0, 0]
    assert [cents(x) for x in (None, "1.00", True, float("nan"), float("inf"))] == [None] * 5


def test_avg_order_value_uses_observed_amounts_only():
    orders = [ev("o1", "orders", T, amount=100.0, status="paid"),
              ev("o2", "orders", T + H, status="paid"),  # no amount: an order, no money
              ev("o3", "orders", T + 2 * H, amount=0.01, status="paid")]
    v = assert_same_in_every_order(orders, T + 3 * H)
    assert (v["orders_total"], v["monetary_total"], v["avg_order_value"]) == (3, 100.01, 50.01)


def test_order_or_repurchase_does_not_depend_on_arrival():
    history = [ev("b1", "behavior", T, behavior_type="browse"),
               ev("o1", "orders", T + H, amount=10.0, status="paid"),
               ev("o2", "orders", T + 2 * H, amount=10.0, status="paid")]
    assert assert_same_in_every_order(history, T + 3 * H)["funnel_latest_step"] == "repurchase"
    one = [history[1], ev("b2", "behavior", T + 2 * H, behavior_type="add_to_cart"),
           ev("r1", "orders", T + 3 * H, status="returned")]
    assert assert_same_in_every_order(one, T + 4 * H)["funnel_latest_step"] == "add_to_cart"
    assert assert_same_in_every_order(history[:2], T + 3 * H)["funnel_latest_step"] == "order"


def test_out_of_order_opened_record_does_not_reopen_a_closed_complaint():
    opened = ev("k1", "tickets", T, ticket_id="TK1", is_complaint=True, closed_at=None)
    closed = ev("k2", "tickets", T, ticket_id="TK1", is_complaint=True,
                closed_at=iso(T + 2 * H), handling_minutes=120)
    for events in ([opened, closed], [closed, opened]):
        v = profile_view(fold(events), T + 3 * H)
        assert (v["tickets_total"], v["complaints_total"], v["open_complaints"]) == (1, 1, 0)
        assert v["handling_minutes_mean"] == 120.0
        assert profile_view(fold(events), T + H)["open_complaints"] == 1  # not closed yet


def test_a_ticket_delivered_as_three_status_records_counts_once():
    records = [
        ev("k1", "tickets", T, ticket_id="TK1", issue_type="complaint"),
        ev("k2", "tickets", T, ticket_id="TK1", closed_at=iso(T + H), handling_minutes=60),
        ev("k3", "tickets", T, ticket_id="TK1", closed_at=iso(T + H), handling_minutes=60,
           satisfaction=4),
    ]
    v = assert_same_in_every_order(records, T + 2 * H)
    assert (v["tickets_total"], v["complaints_total"], v["open_complaints"]) == (1, 1, 0)
    assert (v["satisfaction_mean"], v["handling_minutes_mean"]) == (4.0, 60.0)


def test_satisfaction_counts_once_per_ticket_from_its_latest_rating():
    records = [
        ev("k1", "tickets", T, ticket_id="TK1", closed_at=iso(T + H), satisfaction=1),
        ev("k2", "tickets", T, ticket_id="TK1", closed_at=iso(T + 2 * H), satisfaction=5),
        ev("k3", "tickets", T, ticket_id="TK2", closed_at=iso(T + H), satisfaction=3),
    ]
    v = assert_same_in_every_order(records, T + 3 * H)
    assert (v["tickets_total"], v["satisfaction_mean"]) == (2, 4.0)  # (5 + 3) / 2


def test_tickets_without_a_ticket_id_are_each_their_own_ticket():
    same = {"issue_type": "complaint", "closed_at": None}
    records = [ev("k1", "tickets", T, **same), ev("k2", "tickets", T, **same)]
    v = assert_same_in_every_order(records, T + H)
    assert (v["tickets_total"], v["complaints_total"], v["open_complaints"]) == (2, 2, 2)


def test_closing_a_complaint_is_a_deadline():
    closes = T + timedelta(days=3, minutes=7)
    ticket = ev("k1", "tickets", T, ticket_id="TK1", is_complaint=True, closed_at=iso(closes))
    s = fold([ticket], T)
    assert profile_view(s, T)["open_complaints"] == 1
    assert next_window_change(s, T) == closes  # old code: None, the tag stayed on
    assert profile_view(s, closes)["open_complaints"] == 0
    assert next_window_change(s, closes) is None
    library = load_library()
    kw = dict(library=library, user_id="U1", cause="k1", event_time=T, processing_time=T,
              late=False)
    first = decide(s, None, T, **kw)
    assert "high_complaint_risk" in first.seg["tags"] and first.deadline == closes
    later = decide(s, first.seg, first.deadline, **kw)
    assert "high_complaint_risk" not in later.seg["tags"]


def test_master_data_keeps_fields_absent_from_a_newer_update_in_any_order():
    older = ev("c1", "customers", T, member_level="gold", region="北京市")
    newer = ev("c2", "customers", T + H, region="上海市", industry="retail")
    v = assert_same_in_every_order([older, newer], T + 2 * H)
    assert (v["member_level"], v["region"], v["industry"]) == ("gold", "上海市", "retail")


def test_master_data_ties_at_the_same_time_do_not_depend_on_arrival():
    a = ev("c1", "customers", T, member_level="gold", region="北京市")
    b = ev("c2", "customers", T, member_level="silver", region="上海市")
    v = assert_same_in_every_order([a, b], T)
    assert (v["member_level"], v["region"]) in {("gold", "北京市"), ("silver", "上海市")}


def test_old_tickets_retire_into_aggregates_and_the_view_is_unchanged():
    records = [ev(f"k{i}", "tickets", T + i * H, ticket_id=f"TK{i}", issue_type="complaint",
                  closed_at=iso(T + (i + 1) * H), satisfaction=1 + i % 5,
                  handling_minutes=10 * i) for i in range(30)]
    records.append(ev("open", "tickets", T, ticket_id="OPEN", is_complaint=True))
    s = fold(records)
    later = T + timedelta(days=400)
    before = profile_view(s, later)
    prune(s, later)
    assert profile_view(s, later) == before
    assert list(s["service"]["tickets"]) == ["t:OPEN"]  # open complaints stay live
    assert len(s["service"]["retired_ids"]) == 30
    # a late record of a retired ticket is final: ignored
    fold_profile(s, ev("late", "tickets", T, ticket_id="TK3", satisfaction=5), later)
    assert profile_view(s, later) == before
    assert before["tickets_total"] == 31 and before["open_complaints"] == 1


def test_retired_ticket_ids_are_bounded():
    n = MAX_RETIRED_IDS + 50
    s = fold([ev(f"k{i}", "tickets", T + i * timedelta(minutes=1), ticket_id=f"TK{i}",
                 closed_at=iso(T + i * timedelta(minutes=1))) for i in range(n)])
    prune(s, T + timedelta(days=400))
    assert len(s["service"]["retired_ids"]) == MAX_RETIRED_IDS
    assert "t:TK0" not in s["service"]["retired_ids"]  # the oldest forgotten first
    assert profile_view(s, T + timedelta(days=400))["tickets_total"] == n


def test_version_1_state_is_upgraded():
    v1 = {"v": 1,
          "orders": {"n": 2, "sum": 3.61, "first": 1, "last": 2, "returns": 0, "refunds": 1,
                     "buckets": {}},
          "activity": {"last": 2, "hours": {}, "channels": {}},
          "funnel": {"browse": 1, "add_to_cart": 0, "latest": "repurchase", "latest_at": 2},
          "service": {"tickets": 3, "complaints": 2, "open": {"TK1": None}, "sat_sum": 7.0,
                      "sat_n": 2, "handle_sum": 90.0, "handle_n": 3},
          "master": {"at": 5, "member_level": "gold"}}
    v = profile_view(copy.deepcopy(v1), T)
    assert (v["monetary_total"], v["avg_order_value"], v["funnel_latest_step"]) == (
        3.61, 1.81, "repurchase")
    assert (v["tickets_total"], v["complaints_total"], v["open_complaints"]) == (3, 2, 1)
    assert (v["satisfaction_mean"], v["handling_minutes_mean"], v["member_level"]) == (
        3.5, 30.0, "gold")
    s = fold_profile(v1, ev("k9", "tickets", T, ticket_id="TK1", is_complaint=True,
                            closed_at=iso(T + H)), None)
    assert s["v"] == 2
    w = profile_view(s, T + 2 * H)
    assert (w["tickets_total"], w["complaints_total"], w["open_complaints"]) == (3, 2, 0)


# --- finding 7: fills never overwrite facts ---------------------------------------------------

CONFIG = IngestConfig(load_mappings(), ZoneInfo("Asia/Shanghai"), b"profile-exact-secret-1")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def ingested(source, records, quality):
    out = []
    for i, record in enumerate(records):
        raw = json.dumps(record, ensure_ascii=False).encode()
        res = ingest(raw, source, Position(f"cp.{source}", 0, i), CONFIG, NOW, quality)
        assert isinstance(res, Accepted), res
        out.append(res.event)
    return out


def test_an_update_without_member_level_keeps_gold():
    quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS)
    others = [{"user_id": f"C{i}", "register_date": "2026-01-01 00:00:00",
               "updated_at": "2026-02-01 00:00:00", "member_level": "silver",
               "region": "北京市"} for i in range(60)]
    mine = [{"user_id": "U1", "register_date": "2026-01-01 00:00:00",
             "updated_at": "2026-03-01 00:00:00", "member_level": "gold", "region": "北京市"},
            {"user_id": "U1", "register_date": "2026-01-01 00:00:00",
             "updated_at": "2026-04-01 00:00:00", "region": "上海市"}]  # no member_level
    events = ingested("customers", others + mine, quality)
    update = events[-1]
    assert "member_level" not in update.data  # missing stays missing
    fill = next(f for f in update.quality["fills"] if f["field"] == "member_level")
    assert fill == {"field": "member_level", "method": "mode", "value": "silver",
                    "reason": "missing_rate_under_5pct"}  # visible as a fill, beside the data
    for order in (events[-2:], events[-2:][::-1]):
        v = profile_view(fold(order), NOW)
        assert (v["member_level"], v["region"]) == ("gold", "上海市")


def test_fills_do_not_decide_meaning_or_bias_means():
    quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS)
    base = {"opened_at": "2026-03-01 10:00:00", "closed_at": "2026-03-01 11:00:00"}
    warm = [{**base, "user_id": f"C{i}", "ticket_id": f"W{i}", "issue_type": "complaint",
             "satisfaction": 1, "handling_minutes": 10} for i in range(60)]
    mine = [{**base, "user_id": "U1", "ticket_id": "A", "issue_type": "inquiry",
             "satisfaction": 5, "handling_minutes": 30},
            {**base, "user_id": "U1", "ticket_id": "B"}]  # no issue type, rating or minutes
    events = ingested("tickets", warm + mine, quality)
    b = events[-1]
    assert not {"issue_type", "satisfaction", "handling_minutes", "is_complaint"} & set(b.data)
    fills = {f["field"]: f for f in b.quality["fills"]}
    assert fills["issue_type"] == {"field": "issue_type", "method": "none", "value": None,
                                   "reason": "decides_meaning"}
    assert (fills["satisfaction"]["method"], fills["satisfaction"]["value"]) == ("mean", 1.07)
    v = profile_view(fold(events[-2:]), NOW)
    assert (v["tickets_total"], v["complaints_total"]) == (2, 0)  # old: the mode made B one
    assert (v["satisfaction_mean"], v["handling_minutes_mean"]) == (5.0, 30.0)  # observed only


def test_values_an_older_ingest_filled_into_data_are_ignored():
    fills = {"fills": [{"field": "member_level", "method": "unknown",
                        "reason": "missing_rate_over_5pct"},
                       {"field": "satisfaction", "method": "mean",
                        "reason": "missing_rate_under_5pct"}]}
    events = [ev("c1", "customers", T, member_level="gold"),
              ev("c2", "customers", T + H, fills, member_level="unknown"),
              ev("k1", "tickets", T, ticket_id="TK1", satisfaction=5),
              ev("k2", "tickets", T, fills, ticket_id="TK2", satisfaction=3)]
    v = assert_same_in_every_order(events, T + 2 * H)
    assert (v["member_level"], v["tickets_total"], v["satisfaction_mean"]) == ("gold", 2, 5.0)


# --- property: any arrival order, the same view --------------------------------------------

_times = st.integers(0, 60).map(lambda k: T + k * timedelta(hours=4))  # coarse: many ties
_channel = st.sampled_from(["app", "web", "offline", None])
_order = st.fixed_dictionaries({
    "amount": st.one_of(st.none(), st.integers(0, 500_000).map(lambda m: m / 1000)),
    "status": st.sampled_from(["paid", "paid", "returned", "refunded", "cancelled", "pending",
                               None]),
    "channel": _channel,
})
_behavior = st.fixed_dictionaries({
    "behavior_type": st.sampled_from(["browse", "add_to_cart", "login", "search", None]),
    "channel": _channel,
})
_ticket = st.fixed_dictionaries({
    "ticket_id": st.sampled_from(["TK1", "TK2", "TK3", None]),
    "closed_in_h": st.one_of(st.none(), st.integers(0, 72)),
    "is_complaint": st.sampled_from([True, False, None]),
    "issue_type": st.sampled_from(["complaint", "inquiry", "logistics", None]),
    "satisfaction": st.one_of(st.none(), st.integers(1, 5)),
    "handling_minutes": st.one_of(st.none(), st.integers(0, 600)),
})
_customer = st.fixed_dictionaries({
    "member_level": st.sampled_from(["gold", "silver", "regular", None, ""]),
    "region": st.sampled_from(["北京市", "上海市", None]),
    "customer_type": st.sampled_from(["individual", "enterprise", None]),
    "register_date": st.sampled_from([None, "2025-01-01T00:00:00.000+00:00",
                                      "2025-06-01T00:00:00.000+00:00"]),
})
_record = st.one_of(
    st.tuples(st.just("orders"), _times, _order),
    st.tuples(st.just("behavior"), _times, _behavior),
    st.tuples(st.just("tickets"), _times, _ticket),
    st.tuples(st.just("customers"), _times, _customer),
)


def _events(records) -> list[CanonicalEvent]:
    out = []
    for i, (source, when, fields) in enumerate(records):
        data = {k: v for k, v in fields.items() if v is not None}
        if source == "tickets":
            hours = data.pop("closed_in_h", None)
            if hours is not None:
                data["closed_at"] = iso(when + hours * H)
        out.append(CanonicalEvent(f"e{i}", source, "U1", when, data))
    return out


def _fold_live(events) -> dict:
    """As the worker does: prune at the running watermark (the latest event time seen)."""
    s, watermark = None, None
    for e in events:
        watermark = e.event_time if watermark is None else max(watermark, e.event_time)
        s = fold_profile(s, e, watermark)
    return s


@settings(max_examples=300, deadline=None)
@given(records=st.lists(_record, min_size=1, max_size=30), data=st.data(),
       later=st.sampled_from([timedelta(0), H, timedelta(days=3), timedelta(days=40)]))
def test_any_arrival_order_gives_the_same_view(records, data, later):
    events = _events(records)
    as_of = max(e.event_time for e in events) + later
    expected_state = fold(events)
    expected = profile_view(expected_state, as_of)
    deadline = next_window_change(expected_state, as_of)
    for _ in range(2):
        arrival = data.draw(st.permutations(events))
        for state in (fold(arrival), _fold_live(arrival)):
            assert profile_view(state, as_of) == expected
            assert next_window_change(state, as_of) == deadline
        json.dumps(state)  # the state stays JSON-ready (the table's changelog)
