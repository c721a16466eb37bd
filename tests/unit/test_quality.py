"""Data-quality tracking: missing-rate fills and outlier flags (pure, streaming)."""

from __future__ import annotations

import copy
import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.quality import (
    MEANING_FIELDS,
    MODE_CAPACITY,
    NUMERIC_FIELDS,
    OPTIONAL_FIELDS,
    Assessment,
    FieldStats,
    Fill,
    Outlier,
    QualityTracker,
)

ORDERS_OPT = {"orders": ("channel", "status")}
ORDERS_NUM = {"orders": ("amount",)}


def tracker(warmup: int = 5, **kw) -> QualityTracker:
    return QualityTracker(ORDERS_OPT, ORDERS_NUM, warmup=warmup, **kw)


def feed(t: QualityTracker, records, source: str = "orders") -> list[Assessment]:
    return [t.assess(source, r) for r in records]


# --- missing rates and fills -------------------------------------------------------------


def test_missing_rate_arithmetic():
    fs = FieldStats(numeric=False)
    assert fs.missing_rate() == 0.0
    for v in ["APP", None, "", "  ", "web", float("nan"), "web", ["junk"]]:
        fs.learn(v)
    # None, "", "  ", NaN and an unhashable junk value are missing: 5 of 8
    assert (fs.seen, fs.missing) == (8, 5)
    assert fs.missing_rate() == 5 / 8
    assert fs.mode() == "web"


def test_numeric_junk_and_booleans_count_as_missing_for_stats():
    fs = FieldStats(numeric=True)
    for v in [10, True, "12", float("inf"), 10**400, 20.0, None]:
        fs.learn(v)
    assert (fs.seen, fs.missing) == (7, 5)
    assert fs.mean() == 15.0


def test_exactly_five_percent_marks_unknown():
    # 19 present + this missing one = 1 of 20 = 5%: not "under 5%", so unknown
    t = tracker()
    feed(t, [{"amount": 10, "channel": "APP", "status": "paid"}] * 19)
    a = t.assess("orders", {"amount": 10, "status": "paid"})
    assert "channel" not in a.record  # fills are analysis-only: never applied
    assert a.fills == (Fill("channel", "unknown", "unknown", "missing_rate_over_5pct"),)
    assert t.snapshot()["orders"]["channel"]["missing_rate"] == 1 / 20


def test_under_five_percent_fills_mode_then_crossing_marks_unknown():
    t = tracker()
    channels = ["APP"] * 12 + ["web"] * 8  # 20 present, mode APP
    feed(t, [{"amount": 10, "channel": c, "status": "paid"} for c in channels])
    a = t.assess("orders", {"amount": 10, "channel": "  ", "status": "paid"})  # 1/21 < 5%
    assert a.record["channel"] == "  "  # the observed value stays
    assert a.fills == (Fill("channel", "mode", "APP", "missing_rate_under_5pct"),)
    b = t.assess("orders", {"amount": 10, "status": "paid"})  # 2/22 > 5%
    assert "channel" not in b.record
    assert b.fills == (Fill("channel", "unknown", "unknown", "missing_rate_over_5pct"),)
    snap = t.snapshot()["orders"]["channel"]
    assert (snap["seen"], snap["missing"], snap["mode"]) == (22, 2, "APP")
    assert snap["missing_rate"] == 2 / 22


def test_numeric_fill_is_mean_rounded_and_not_learned():
    opt = {"tickets": ("satisfaction",)}
    num = {"tickets": ("satisfaction",)}
    t = QualityTracker(opt, num, warmup=5)
    feed(t, [{"satisfaction": s} for s in [1, 1, 2] * 7], "tickets")  # 21 values, mean 4/3
    a = t.assess("tickets", {"satisfaction": None})  # 1/22 < 5%
    assert a.record["satisfaction"] is None  # missing stays missing
    assert a.fills == (Fill("satisfaction", "mean", 1.33, "missing_rate_under_5pct"),)
    snap = t.snapshot()["tickets"]["satisfaction"]
    assert snap["mean"] == pytest.approx(4 / 3)  # the fill was not learned
    assert (snap["seen"], snap["missing"]) == (22, 1)
    b = t.assess("tickets", {})  # 2/23 > 5%: numeric unknown, the record unchanged
    assert b.record == {}
    assert b.fills == (Fill("satisfaction", "unknown", None, "missing_rate_over_5pct"),)


def test_no_fill_before_warmup():
    t = QualityTracker({"orders": ("channel",)}, {}, missing_rate_limit=0.5, warmup=5)
    feed(t, [{"channel": "APP"}] * 4)
    a = t.assess("orders", {"channel": None})  # 1/5 < 50%, but only 4 usable values
    assert a.record["channel"] is None
    assert a.fills == (Fill("channel", "unknown", "unknown", "no_fill_yet"),)
    feed(t, [{"channel": "APP"}] * 5)  # 9 usable
    b = t.assess("orders", {"channel": None})  # 2/11 < 50%
    assert b.record["channel"] is None
    assert b.fills == (Fill("channel", "mode", "APP", "missing_rate_under_50pct"),)


def test_fields_that_decide_meaning_are_never_given_a_fill():
    t = QualityTracker(warmup=5)  # custpulse defaults: issue_type and status are optional
    feed(t, [{"issue_type": "complaint", "satisfaction": 1}] * 60, "tickets")
    a = t.assess("tickets", {"satisfaction": 1})  # 1/61 < 5%: the mode would be 'complaint'
    assert a.fills[0] == Fill("issue_type", "none", None, "decides_meaning")
    assert "issue_type" not in a.record
    feed(t, [{"amount": 10, "status": "returned", "channel": "APP"}] * 60)
    b = t.assess("orders", {"amount": 10, "channel": "APP"})
    assert b.fills == (Fill("status", "none", None, "decides_meaning"),)
    assert MEANING_FIELDS >= {"status", "issue_type", "is_complaint", "behavior_type"}


def test_fills_are_never_applied_to_the_record():
    t = QualityTracker(warmup=3)
    feed(t, [{"region": "北京市", "member_level": "gold"}] * 40, "customers")
    rec = {"region": None, "member_level": ""}
    a = t.assess("customers", rec)
    assert a.record == rec  # observed values as they were; the fills ride beside them
    by_field = {f.field: f for f in a.fills}
    assert (by_field["region"].value, by_field["member_level"].value) == ("北京市", "gold")
    assert by_field["industry"] == Fill("industry", "unknown", "unknown",
                                        "missing_rate_over_5pct")


def test_present_junk_is_left_untouched():
    t = tracker()
    feed(t, [{"amount": 10, "channel": "APP", "status": "paid"}] * 30)
    a = t.assess("orders", {"amount": "abc", "channel": "APP", "status": "paid"})
    assert a.record["amount"] == "abc"
    assert a.outliers == () and a.fills == ()
    assert t.snapshot()["orders"]["amount"]["missing"] == 1


def test_mode_counts_are_bounded():
    fs = FieldStats(numeric=False)
    for i in range(3 * MODE_CAPACITY):
        fs.learn("dominant")
        fs.learn(f"rare-{i}")
    assert len(fs.counts) <= MODE_CAPACITY
    assert fs.mode() == "dominant"
    assert fs.counts["dominant"] == 3 * MODE_CAPACITY


# --- outliers ----------------------------------------------------------------------------

AROUND_100 = [round(90 + 0.2 * i, 1) for i in range(101)]  # 90.0 .. 110.0
random.Random(0).shuffle(AROUND_100)  # a fixed shuffle: P² quartiles are then within 0.7


def test_obvious_outlier_flagged_by_both_rules_with_correct_bounds():
    t = QualityTracker(ORDERS_OPT, ORDERS_NUM)  # default warmup 30
    feed(t, [{"amount": x, "channel": "APP", "status": "paid"} for x in AROUND_100])
    a = t.assess("orders", {"amount": 1_000_000, "channel": "APP", "status": "paid"})
    by_rule = {o.rule: o for o in a.outliers}
    assert set(by_rule) == {"iqr", "three_sigma"}
    seen = np.array(AROUND_100, dtype=float)
    q1, q3 = np.percentile(seen, [25, 75])
    iqr = q3 - q1
    low, high = by_rule["iqr"].low, by_rule["iqr"].high
    est_iqr = (high - low) / 4  # high - low = 4 IQR; P² quartiles are estimates
    assert low + 1.5 * est_iqr == pytest.approx(q1, abs=0.1 * iqr)
    assert high - 1.5 * est_iqr == pytest.approx(q3, abs=0.1 * iqr)
    assert low == pytest.approx(q1 - 1.5 * iqr, abs=0.3 * iqr)
    assert high == pytest.approx(q3 + 1.5 * iqr, abs=0.3 * iqr)
    mean, std = seen.mean(), seen.std(ddof=1)
    assert by_rule["three_sigma"].low == pytest.approx(mean - 3 * std, rel=1e-9)
    assert by_rule["three_sigma"].high == pytest.approx(mean + 3 * std, rel=1e-9)
    assert all(o.field == "amount" and o.value == 1_000_000.0 for o in a.outliers)
    assert a.record["amount"] == 1_000_000  # flagged, never changed


def test_value_inside_bounds_not_flagged():
    t = tracker()
    feed(t, [{"amount": x, "channel": "APP", "status": "paid"} for x in AROUND_100])
    a = t.assess("orders", {"amount": 104.5, "channel": "APP", "status": "paid"})
    assert a.outliers == () and a.fills == ()
    assert a.flags() == {"outliers": [], "fills": []}


def test_warmup_respected():
    t = tracker(warmup=5)
    feed(t, [{"amount": x, "channel": "APP", "status": "paid"} for x in [9, 11, 9, 11]])
    assert t.assess("orders", {"amount": 1000, "channel": "APP", "status": "paid"}).outliers == ()


def test_score_before_learn_exact_bounds():
    # 5 values: mean 10, sample std 1; P² quartiles of 5 values are the 2nd and 4th: 9 and 11
    t = tracker(warmup=5)
    feed(t, [{"amount": x, "channel": "APP", "status": "paid"} for x in [9, 11, 9, 11, 10]])
    a = t.assess("orders", {"amount": 1000, "channel": "APP", "status": "paid"})
    assert a.outliers == (
        Outlier("amount", "iqr", 1000.0, 6.0, 14.0),
        Outlier("amount", "three_sigma", 1000.0, 7.0, 13.0),
    )
    # had it been learned first it would not pass 3 sigma: z = 5/sqrt(6) ~ 2.04
    after = np.array([9, 11, 9, 11, 10, 1000], dtype=float)
    assert abs(1000 - after.mean()) < 3 * after.std(ddof=1)
    snap = t.snapshot()["orders"]["amount"]
    assert snap["mean"] == pytest.approx(after.mean())  # ...and it was learned afterwards


def test_flags_json_ready():
    t = tracker(warmup=5)
    feed(t, [{"amount": x, "channel": "APP", "status": "paid"} for x in [9, 11, 9, 11, 10]])
    a = t.assess("orders", {"amount": 1000, "status": "paid"})
    flags = json.loads(json.dumps(a.flags(), allow_nan=False))
    assert flags["outliers"][0] == {
        "field": "amount",
        "rule": "iqr",
        "value": 1000.0,
        "low": 6.0,
        "high": 14.0,
    }
    assert flags["fills"] == [
        {"field": "channel", "method": "unknown", "value": "unknown",
         "reason": "missing_rate_over_5pct"}
    ]


# --- purity, determinism, shape ------------------------------------------------------------


def test_input_not_mutated_and_new_dict_returned():
    t = tracker()
    feed(t, [{"amount": 10, "channel": "APP", "status": "paid"}] * 40)
    rec = {"amount": 10, "channel": None, "status": "paid", "extra": [1]}
    before = copy.deepcopy(rec)
    a = t.assess("orders", rec)
    assert rec == before
    assert a.record is not rec and a.record == rec  # observed values, no fill
    assert a.fills[0].value == "APP"
    assert a.record["extra"] == [1]


def test_unknown_source_passes_through_untracked():
    t = tracker()
    a = t.assess("nope", {"x": 1})
    assert a == Assessment({"x": 1}, (), ())
    assert t.snapshot() == {}


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        rec: dict = {"amount": AROUND_100[i % 100], "status": "paid"}
        if i % 9:
            rec["channel"] = ("APP", "web", "APP")[i % 3]
        if i % 50 == 49:
            rec["amount"] = 10_000 + i
        out.append(rec)
    return out


def test_deterministic():
    recs = _records(300)
    a, b = feed(tracker(warmup=30), recs), feed(tracker(warmup=30), recs)
    assert a == b
    assert any(x.outliers for x in a) and any(x.fills for x in a)


def test_snapshot_shape_and_defaults():
    t = QualityTracker()  # custpulse defaults
    t.assess("orders", {"amount": 12.5, "channel": "APP", "status": "paid"})
    t.assess("customers", {"region": "北京市"})
    snap = json.loads(json.dumps(t.snapshot(), allow_nan=False))
    assert set(snap) == {"orders", "customers"}
    assert set(snap["orders"]) == {"amount", "channel", "status"}
    assert set(snap["customers"]) == set(OPTIONAL_FIELDS["customers"])
    keys = {"seen", "missing", "missing_rate", "mean", "std", "q1", "q3", "mode"}
    assert all(set(v) == keys for s in snap.values() for v in s.values())
    assert snap["orders"]["amount"] == {
        "seen": 1,
        "missing": 0,
        "missing_rate": 0.0,
        "mean": 12.5,
        "std": 0.0,
        "q1": 12.5,
        "q3": 12.5,
        "mode": None,
    }
    assert snap["customers"]["industry"]["missing_rate"] == 1.0
    assert snap["customers"]["region"]["mode"] == "北京市"
    assert set(NUMERIC_FIELDS) == set(OPTIONAL_FIELDS)


def test_bad_parameters_rejected():
    with pytest.raises(ValueError):
        QualityTracker(warmup=0)
    with pytest.raises(ValueError):
        QualityTracker(missing_rate_limit=1.5)


# --- totality ------------------------------------------------------------------------------

_FIELD_NAMES = sorted(
    {f for fs in (*OPTIONAL_FIELDS.values(), *NUMERIC_FIELDS.values()) for f in fs}
)
_VALUES = st.one_of(st.none(), st.text(), st.integers(), st.floats(allow_nan=True), st.booleans())
_RECORDS = st.dictionaries(st.one_of(st.sampled_from(_FIELD_NAMES), st.text()), _VALUES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*OPTIONAL_FIELDS, "other"]), _RECORDS), max_size=40))
def test_assess_never_raises(batch):
    t = QualityTracker(warmup=3)
    for source, rec in batch:
        before = copy.deepcopy(rec)
        a = t.assess(source, rec)
        assert rec.keys() == before.keys()
        assert set(a.record) >= set(rec)
        json.dumps(a.flags(), allow_nan=False)
    json.dumps(t.snapshot(), allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), _VALUES))
def test_assess_never_raises_on_arbitrary_dicts(rec):
    t = QualityTracker(warmup=1)
    for source in OPTIONAL_FIELDS:
        t.assess(source, rec)
        t.assess(source, rec)
