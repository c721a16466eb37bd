"""Descriptive analyses: hand-computed tables, window boundaries, and seeded random tables
checked against plain-Python recomputations."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from custpulse.processors.analyses.descriptive import (
    CHANGE_COLUMNS,
    DIMENSION_COLUMNS,
    DIMENSIONS,
    METRICS,
    REGION_COLUMNS,
    SEGMENT_COLUMNS,
    biggest_movers,
    daily_by_dimension,
    headline_share,
    period_bounds,
    period_over_period,
    regional_density,
    segment_shares,
)

PROFILE_COLUMNS = ["user_id", "segment", "region", "member_level", "monetary_365d",
                   "monetary_total", "orders_total", "funnel_latest_step"]
DAILY_COLUMNS = ["user_id", "day", "channel", "browse", "add_to_cart", "purchases", "revenue",
                 "returns", "events"]


def profiles(rows: list[tuple]) -> pd.DataFrame:
    """Rows: (user_id, segment, region, member_level, monetary_365d, funnel_latest_step)."""
    frame = pd.DataFrame(
        [
            dict(user_id=u, segment=s, region=r, member_level=m, monetary_365d=v,
                 monetary_total=None if v is None else 2 * v, orders_total=1,
                 funnel_latest_step=f)
            for u, s, r, m, v, f in rows
        ],
        columns=PROFILE_COLUMNS,
    )
    frame["monetary_365d"] = frame["monetary_365d"].astype(float)
    frame["monetary_total"] = frame["monetary_total"].astype(float)
    return frame


def daily(rows: list[tuple]) -> pd.DataFrame:
    """Rows: (user_id, day 'YYYY-MM-DD', channel, browse, add_to_cart, purchases, revenue,
    events)."""
    frame = pd.DataFrame(
        [
            dict(user_id=u, day=d, channel=c, browse=b, add_to_cart=a, purchases=p, revenue=v,
                 returns=0, events=e)
            for u, d, c, b, a, p, v, e in rows
        ],
        columns=DAILY_COLUMNS,
    )
    frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    frame["revenue"] = frame["revenue"].astype(float)
    for column in ("browse", "add_to_cart", "purchases", "returns", "events"):
        frame[column] = frame[column].astype("int64")
    return frame


EMPTY_PROFILES = profiles([])
EMPTY_DAILY = daily([])

PROFILES = profiles(
    [
        ("u1", "high_value", "east", "gold", 100.10, "pay"),
        ("u2", "high_value", "west", "silver", 200.20, "cart"),
        ("u3", "regular", "east", None, 0.10, None),
        ("u4", None, None, "gold", 0.20, "view"),
        ("u5", "churned", "", "silver", None, "view"),
    ]
)

DAILY = daily(
    [
        ("u1", "2024-03-01", "app", 5, 1, 1, 10.10, 7),
        ("u1", "2024-03-01", "web", 2, 0, 0, 0.0, 2),
        ("u2", "2024-03-01", "app", 1, 1, 2, 20.20, 4),
        ("u3", "2024-03-02", None, 3, 0, 0, 0.0, 3),
        ("u9", "2024-03-02", "app", 1, 0, 1, 5.00, 2),  # not in profiles
        ("u4", "2024-03-05", "web", 0, 0, 1, 0.30, 1),
        ("u1", "2024-03-06", "app", 4, 2, 0, 0.0, 6),
    ]
)


# ------------------------------------------------------------------------- segment shares


def test_segment_shares_hand_computed():
    out = segment_shares(PROFILES)
    assert list(out.columns) == list(SEGMENT_COLUMNS)
    assert out["segment"].tolist() == ["high_value", "none", "regular", "churned"]
    assert out["customers"].tolist() == [2, 1, 1, 1]
    assert out["share"].tolist() == [0.4, 0.2, 0.2, 0.2]
    assert out["revenue"].tolist() == [300.30, 0.20, 0.10, 0.0]
    assert out["revenue_share"].tolist() == pytest.approx(
        [300.30 / 300.60, 0.20 / 300.60, 0.10 / 300.60, 0.0])
    assert headline_share(out) == pytest.approx(300.30 / 300.60)
    assert headline_share(out, "none", "share") == 0.2
    assert headline_share(out, "potential") == 0.0  # absent segment: no share
    assert math.isnan(headline_share(segment_shares(EMPTY_PROFILES)))


def test_segment_shares_other_column_cents_and_zero_total():
    other = segment_shares(PROFILES, revenue_column="monetary_total")
    assert other.set_index("segment").loc["high_value", "revenue"] == pytest.approx(600.60)
    exact = segment_shares(profiles([("a", "x", None, None, 0.1, None),
                                     ("b", "x", None, None, 0.2, None)]))
    assert exact["revenue"].iloc[0] == 0.3  # summed in cents, not 0.30000000000000004
    zero = segment_shares(profiles([("a", "x", None, None, 0.0, None),
                                    ("b", "y", None, None, None, None)]))
    assert zero["revenue_share"].isna().all()
    assert math.isnan(headline_share(zero, "high_value"))
    duplicated = pd.concat([PROFILES, PROFILES.iloc[[0]].assign(segment="regular")])
    assert segment_shares(duplicated)["customers"].sum() == 5  # last row of u1 wins


def test_segment_shares_empty():
    out = segment_shares(EMPTY_PROFILES)
    assert out.empty and list(out.columns) == list(SEGMENT_COLUMNS)


# ----------------------------------------------------------------------- regional density


def test_regional_density_hand_computed():
    out = regional_density(PROFILES, DAILY)
    assert list(out.columns) == list(REGION_COLUMNS)
    assert out["region"].tolist() == ["east", "unknown", "west"]
    rows = out.set_index("region")
    assert rows["customers"].to_dict() == {"east": 2, "unknown": 2, "west": 1}
    assert rows["customer_share"].to_dict() == {"east": 0.4, "unknown": 0.4, "west": 0.2}
    assert rows["active_customers"].to_dict() == {"east": 2, "unknown": 1, "west": 1}
    assert rows["active_share"].to_dict() == {"east": 1.0, "unknown": 0.5, "west": 1.0}
    assert rows["purchases"].to_dict() == {"east": 1, "unknown": 1, "west": 2}  # u9 ignored
    assert rows["revenue"].to_dict() == {"east": 10.10, "unknown": 0.30, "west": 20.20}


def test_regional_density_window_is_inclusive_days():
    out = regional_density(PROFILES, DAILY, start=date(2024, 3, 2), end="2024-03-05")
    rows = out.set_index("region")
    assert rows["active_customers"].to_dict() == {"east": 1, "unknown": 1, "west": 0}
    assert rows["purchases"].to_dict() == {"east": 0, "unknown": 1, "west": 0}
    late = regional_density(PROFILES, DAILY, start=datetime(2024, 3, 6, 15))  # noqa: DTZ001
    assert late.set_index("region")["active_customers"].to_dict() == {
        "east": 1, "unknown": 0, "west": 0}
    with pytest.raises(ValueError, match="local day"):
        regional_density(PROFILES, DAILY, start=datetime(2024, 3, 2, tzinfo=UTC))


def test_regional_density_without_daily_and_empty():
    out = regional_density(PROFILES)
    assert out["customers"].tolist() == [2, 2, 1]
    assert out[["active_customers", "active_share", "purchases", "revenue"]].isna().all().all()
    none_active = regional_density(PROFILES, EMPTY_DAILY)
    assert none_active["active_customers"].tolist() == [0, 0, 0]
    assert none_active["revenue"].tolist() == [0.0, 0.0, 0.0]
    for out in (regional_density(EMPTY_PROFILES), regional_density(EMPTY_PROFILES, DAILY)):
        assert out.empty and list(out.columns) == list(REGION_COLUMNS)


# -------------------------------------------------------------------- daily by dimension


def test_daily_by_dimension_hand_computed():
    out = daily_by_dimension(DAILY, PROFILES)
    assert list(out.columns) == list(DIMENSION_COLUMNS)
    assert out["day"].dtype == "datetime64[ns]"
    first = out[out["day"] == "2024-03-01"]
    assert first["dimension"].tolist() == [
        "segment", "channel", "channel", "region", "region", "member_level", "member_level",
        "funnel_step", "funnel_step"]
    seg = first[first["dimension"] == "segment"].iloc[0]
    # u1 (two channels) and u2 are both high_value now: one row, 2 distinct customers
    assert (seg["value"], seg["customers"], seg["browse"], seg["purchases"]) == (
        "high_value", 2, 8, 3)
    assert seg["revenue"] == pytest.approx(30.30) and seg["events"] == 13
    app = first[(first["dimension"] == "channel") & (first["value"] == "app")].iloc[0]
    assert (app["customers"], app["events"]) == (2, 11)
    second = out[out["day"] == "2024-03-02"].set_index(["dimension", "value"])
    # u3: regular/east/no level/no step, channel missing; u9: not in profiles
    assert second.loc[("segment", "regular"), "customers"] == 1
    assert second.loc[("segment", "none"), "customers"] == 1
    assert second.loc[("channel", "unknown"), "events"] == 3
    assert second.loc[("member_level", "unknown"), "customers"] == 2
    assert second.loc[("funnel_step", "unknown"), "customers"] == 2
    assert second.loc[("region", "east"), "browse"] == 3
    # each dimension partitions the day
    totals = out.groupby(["day", "dimension"])[["browse", "purchases", "events"]].sum()
    for dimension in DIMENSIONS:
        per_day = totals.xs(dimension, level="dimension")
        assert per_day["events"].tolist() == [13, 5, 1, 6]


def test_daily_by_dimension_uses_current_attributes_and_empty():
    moved = PROFILES.assign(segment=["churned", "high_value", "regular", None, "churned"])
    out = daily_by_dimension(DAILY, moved)
    first = out[(out["day"] == "2024-03-01") & (out["dimension"] == "segment")]
    assert first.set_index("value")["customers"].to_dict() == {"churned": 1, "high_value": 1}
    no_profiles = daily_by_dimension(DAILY, EMPTY_PROFILES)
    assert set(no_profiles.loc[no_profiles["dimension"] == "segment", "value"]) == {"none"}
    assert set(no_profiles.loc[no_profiles["dimension"] == "region", "value"]) == {"unknown"}
    numeric = PROFILES.assign(member_level=[1.0, 2.0, None, 1.0, 3.0])
    levels = daily_by_dimension(DAILY, numeric)
    assert set(levels.loc[levels["dimension"] == "member_level", "value"]) == {
        "1", "2", "unknown"}
    out = daily_by_dimension(EMPTY_DAILY, PROFILES)
    assert out.empty and list(out.columns) == list(DIMENSION_COLUMNS)


# --------------------------------------------------------------------- period over period


def test_period_bounds():
    assert period_bounds("2024-03-14", "week") == tuple(
        pd.Timestamp(d) for d in ("2024-03-08", "2024-03-14", "2024-03-01", "2024-03-07"))
    assert period_bounds(date(2024, 3, 14), "month") == tuple(
        pd.Timestamp(d) for d in ("2024-02-14", "2024-03-14", "2024-01-15", "2024-02-13"))
    with pytest.raises(ValueError, match="period"):
        period_bounds("2024-03-14", "year")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="local day"):
        period_bounds(datetime(2024, 3, 14, tzinfo=UTC))


POP_DAILY = daily(
    [
        # previous week 03-01..03-07
        ("a", "2024-03-01", "app", 10, 2, 1, 50.0, 13),
        ("a", "2024-03-07", "web", 5, 0, 0, 0.0, 5),
        ("b", "2024-03-03", "app", 4, 1, 0, 0.0, 5),
        ("old", "2024-02-29", "app", 99, 9, 9, 999.0, 99),  # before both weeks
        # current week 03-08..03-14
        ("a", "2024-03-08", "app", 6, 1, 1, 30.0, 8),
        ("b", "2024-03-10", "app", 2, 2, 2, 80.0, 6),
        ("b", "2024-03-14", "web", 1, 0, 0, 0.0, 1),
        ("c", "2024-03-14", "mini", 3, 0, 0, 0.0, 3),
        ("future", "2024-03-15", "app", 99, 9, 9, 999.0, 99),  # after end_day
    ]
)


def test_period_over_period_week_hand_computed():
    out = period_over_period(POP_DAILY, "2024-03-14")
    assert list(out.columns) == list(CHANGE_COLUMNS)
    assert out["metric"].tolist() == list(METRICS)
    rows = out.set_index("metric")
    expected = {
        "active_customers": (3, 2), "events": (18, 23), "browse": (12, 19),
        "add_to_cart": (3, 3), "purchases": (3, 1), "buyers": (2, 1), "revenue": (110.0, 50.0),
        "conversion_rate": (2 / 3, 1 / 2),
    }
    for metric, (current, previous) in expected.items():
        assert rows.loc[metric, "current"] == pytest.approx(current)
        assert rows.loc[metric, "previous"] == pytest.approx(previous)
        assert rows.loc[metric, "change"] == pytest.approx(current - previous)
        assert rows.loc[metric, "change_pct"] == pytest.approx(
            100 * (current - previous) / previous)


def test_period_over_period_by_channel_and_zero_base():
    out = period_over_period(POP_DAILY, pd.Timestamp("2024-03-14 18:00"), by="channel")
    assert list(out.columns) == ["channel", *CHANGE_COLUMNS]
    assert out["channel"].unique().tolist() == ["app", "mini", "web"]
    rows = out.set_index(["channel", "metric"])
    assert rows.loc[("app", "active_customers"), ["current", "previous"]].tolist() == [2, 2]
    assert rows.loc[("app", "revenue"), "change_pct"] == pytest.approx(120.0)
    assert rows.loc[("web", "purchases"), ["current", "previous"]].tolist() == [0, 0]
    assert math.isnan(rows.loc[("web", "purchases"), "change_pct"])  # previous 0
    assert rows.loc[("web", "conversion_rate"), "current"] == 0.0
    mini = rows.loc["mini"]
    assert mini.loc["events", "previous"] == 0 and mini.loc["events", "current"] == 3
    assert math.isnan(mini.loc["events", "change_pct"])
    assert math.isnan(mini.loc["conversion_rate", "previous"])  # no active customer then
    assert math.isnan(mini.loc["conversion_rate", "change"])


def test_period_over_period_month_and_empty():
    out = period_over_period(POP_DAILY, "2024-03-14", period="month").set_index("metric")
    # current 02-14..03-14 holds everything but "future"; previous 01-15..02-13 is empty
    assert out.loc["events", "current"] == 18 + 23 + 99
    assert out.loc["events", "previous"] == 0
    assert math.isnan(out.loc["events", "change_pct"])
    for by in (None, "channel"):
        empty = period_over_period(EMPTY_DAILY, "2024-03-14", by=by)
        assert empty.empty
        assert list(empty.columns) == ([by] if by else []) + list(CHANGE_COLUMNS)
    quiet = period_over_period(POP_DAILY, "2020-01-07")
    assert quiet["current"].fillna(0).eq(0).all() and quiet["previous"].fillna(0).eq(0).all()
    with pytest.raises(ValueError):
        period_over_period(POP_DAILY, "2024-03-14", by="metric")
    joined = POP_DAILY.assign(segment=["x", None, "x", "x", "", "x", None, "x", "x"])
    by_segment = period_over_period(joined, "2024-03-14", by="segment")
    assert by_segment["segment"].unique().tolist() == ["none", "x"]


def movers_table() -> pd.DataFrame:
    rows = []
    for channel, active, events, revenue, rate in [
        ("app", (100, 50), (500, 250), (1000.0, 2000.0), (0.2, 0.1)),
        ("web", (30, 10), (30, 10), (150.0, 50.0), (0.5, 0.25)),
        ("mini", (5, 2), (6, 0), (0.0, 0.0), (0.4, 0.5)),
    ]:
        for metric, (current, previous) in [("active_customers", active), ("events", events),
                                            ("revenue", revenue), ("conversion_rate", rate)]:
            change = current - previous
            rows.append(dict(channel=channel, metric=metric, current=current, previous=previous,
                             change=change,
                             change_pct=100 * change / previous if previous else math.nan))
    return pd.DataFrame(rows)


def test_biggest_movers_thresholds():
    table = movers_table()
    out = biggest_movers(table, n=10)
    assert list(out.columns) == list(table.columns)
    # web revenue (+200 %, base 50 CNY < 100) and web rows with base 10 are left out; mini too.
    # Ties on |change_pct| go to the larger |change|.
    assert list(zip(out["channel"], out["metric"], strict=True)) == [
        ("app", "events"), ("app", "active_customers"), ("app", "conversion_rate"),
        ("app", "revenue")]
    assert out["change_pct"].tolist() == [100.0, 100.0, 100.0, -50.0]
    top = biggest_movers(table, n=2, min_base=5, min_revenue=10)
    assert top["change_pct"].abs().tolist() == [200.0, 200.0]
    # three web rows at +200 %: revenue (change 100) first, then the first of the two at 20
    assert list(zip(top["channel"], top["metric"], strict=True)) == [
        ("web", "revenue"), ("web", "active_customers")]
    everything = biggest_movers(table, n=100, min_base=0, min_revenue=0)
    assert len(everything) == table["change_pct"].notna().sum()
    assert biggest_movers(table, n=0).empty
    overall = period_over_period(POP_DAILY, "2024-03-14")
    assert biggest_movers(overall, 3, min_base=1, min_revenue=1)["metric"].tolist() == [
        "purchases", "revenue", "buyers"]
    # default bases: only events (previous 23) qualifies; browse (19) and revenue (50 CNY) not
    assert biggest_movers(overall, 3)["metric"].tolist() == ["events"]
    empty = biggest_movers(period_over_period(EMPTY_DAILY, "2024-03-14"), 5)
    assert empty.empty and list(empty.columns) == list(CHANGE_COLUMNS)


# ------------------------------------------------------------------ randomized brute force

SEGMENTS = ["high_value", "potential", "regular", None, ""]
REGIONS = ["east", "west", "north", None]
LEVELS = ["gold", "silver", None]
STEPS = ["view", "cart", "pay", None]
CHANNELS = ["app", "web", "mini", None]
BASE = date(2024, 3, 1)


def random_tables(rng: random.Random):
    users = [f"u{i}" for i in range(rng.randrange(1, 25))]
    prof_rows = []
    for user in users:
        if rng.random() < 0.85:
            money = rng.choice([None, 0.0, round(rng.uniform(0, 500), 2)])
            prof_rows.append((user, rng.choice(SEGMENTS), rng.choice(REGIONS),
                              rng.choice(LEVELS), money, rng.choice(STEPS)))
    day_rows = {}
    for _ in range(rng.randrange(0, 120)):
        user = rng.choice(users)
        day = BASE + timedelta(days=rng.randrange(0, 70))
        channel = rng.choice(CHANNELS)
        key = (user, day, channel)
        purchases = rng.choice([0, 0, 1, 2])
        browse, cart = rng.randrange(0, 6), rng.randrange(0, 3)
        day_rows[key] = (user, day.isoformat(), channel, browse, cart, purchases,
                         round(rng.uniform(1, 300), 2) * purchases,
                         browse + cart + purchases + rng.randrange(0, 2))
    return prof_rows, list(day_rows.values())


def label(value, missing: str) -> str:
    return missing if value is None or (isinstance(value, str) and not value.strip()) else value


def brute_window_metrics(rows, first: date, last: date, keep=lambda row: True) -> dict:
    inside = [r for r in rows if first <= date.fromisoformat(r[1]) <= last and keep(r)]
    active = {r[0] for r in inside if r[7] > 0}
    buyers = {r[0] for r in inside if r[5] > 0}
    return {
        "active_customers": len(active), "events": sum(r[7] for r in inside),
        "browse": sum(r[3] for r in inside), "add_to_cart": sum(r[4] for r in inside),
        "purchases": sum(r[5] for r in inside), "buyers": len(buyers),
        "revenue": sum(r[6] for r in inside),
        "conversion_rate": len(buyers) / len(active) if active else math.nan,
    }


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_random_tables_match_brute_force(seed):
    rng = random.Random(seed)
    prof_rows, day_rows = random_tables(rng)
    prof, days = profiles(prof_rows), daily(day_rows)
    attrs = {u: dict(segment=s, region=r, member_level=m, funnel_step=f)
             for u, s, r, m, _, f in prof_rows}

    # segment_shares
    total = len(prof_rows)
    if total:
        seg = segment_shares(prof).set_index("segment")
        money = sum(v or 0.0 for *_, v, _f in prof_rows)
        for name in {label(s, "none") for _, s, *_ in prof_rows}:
            members = [p for p in prof_rows if label(p[1], "none") == name]
            revenue = sum(p[4] or 0.0 for p in members)
            assert seg.loc[name, "customers"] == len(members)
            assert close(seg.loc[name, "share"], len(members) / total)
            assert close(seg.loc[name, "revenue"], revenue)
            assert close(seg.loc[name, "revenue_share"],
                         revenue / money if money > 0 else math.nan)
        assert seg["revenue"].is_monotonic_decreasing

    # regional_density over a random inclusive window
    start = BASE + timedelta(days=rng.randrange(0, 40))
    end = start + timedelta(days=rng.randrange(0, 40))
    if total:
        dens = regional_density(prof, days, start, end).set_index("region")
        for name in {label(p[2], "unknown") for p in prof_rows}:
            members = {p[0] for p in prof_rows if label(p[2], "unknown") == name}
            inside = [r for r in day_rows if r[0] in members
                      and start <= date.fromisoformat(r[1]) <= end]
            assert dens.loc[name, "customers"] == len(members)
            assert dens.loc[name, "active_customers"] == len({r[0] for r in inside if r[7] > 0})
            assert dens.loc[name, "purchases"] == sum(r[5] for r in inside)
            assert close(dens.loc[name, "revenue"], sum(r[6] for r in inside))

    # daily_by_dimension
    expected = {}
    for row in day_rows:
        user, day, channel = row[0], row[1], row[2]
        profile = attrs.get(user, {})
        for dimension in DIMENSIONS:
            if dimension == "channel":
                value = label(channel, "unknown")
            else:
                value = label(profile.get(dimension),
                              "none" if dimension == "segment" else "unknown")
            entry = expected.setdefault((day, dimension, value), [set(), 0, 0, 0, 0.0, 0])
            entry[0].add(user)
            entry[1] += row[3]
            entry[2] += row[4]
            entry[3] += row[5]
            entry[4] += row[6]
            entry[5] += row[7]
    out = daily_by_dimension(days, prof)
    got = {
        (r["day"].date().isoformat(), r["dimension"], r["value"]): r
        for r in out.to_dict("records")
    }
    assert set(got) == set(expected)
    for key, (users, browse, cart, purchases, revenue, events) in expected.items():
        record = got[key]
        assert (record["customers"], record["browse"], record["add_to_cart"],
                record["purchases"], record["events"]) == (
            len(users), browse, cart, purchases, events)
        assert close(record["revenue"], revenue)

    # period_over_period, overall and by channel
    end_day = BASE + timedelta(days=rng.randrange(0, 75))
    period = rng.choice(["week", "month"])
    length = 7 if period == "week" else 30
    current = (end_day - timedelta(days=length - 1), end_day)
    previous = (current[0] - timedelta(days=length), current[0] - timedelta(days=1))
    if day_rows:
        pop = period_over_period(days, end_day, period).set_index("metric")
        now, before = (brute_window_metrics(day_rows, *current),
                       brute_window_metrics(day_rows, *previous))
        for metric in METRICS:
            assert close(pop.loc[metric, "current"], now[metric])
            assert close(pop.loc[metric, "previous"], before[metric])
            change = now[metric] - before[metric]
            assert close(pop.loc[metric, "change"], change)
            pct = 100 * change / before[metric] if before[metric] > 0 else math.nan
            assert close(pop.loc[metric, "change_pct"], pct)
        by = period_over_period(days, end_day, period, by="channel").set_index(
            ["channel", "metric"])
        seen = {label(r[2], "unknown") for r in day_rows
                if previous[0] <= date.fromisoformat(r[1]) <= current[1]}
        assert set(by.index.get_level_values(0)) == seen
        for channel in seen:
            def same_channel(row, channel=channel):
                return label(row[2], "unknown") == channel
            now = brute_window_metrics(day_rows, *current, keep=same_channel)
            before = brute_window_metrics(day_rows, *previous, keep=same_channel)
            for metric in METRICS:
                assert close(by.loc[(channel, metric), "current"], now[metric])
                assert close(by.loc[(channel, metric), "previous"], before[metric])
        # biggest movers: brute-force filter and ranking
        table = by.reset_index()
        movers = biggest_movers(table, n=4, min_base=3, min_revenue=50)
        candidates = []
        for position, row in enumerate(table.to_dict("records")):
            if math.isnan(row["change_pct"]):
                continue
            if row["metric"] == "conversion_rate":
                base = table[(table["channel"] == row["channel"])
                             & (table["metric"] == "active_customers")]["previous"].iloc[0]
                if base < 3:
                    continue
            elif row["previous"] < (50 if row["metric"] == "revenue" else 3):
                continue
            candidates.append((-abs(row["change_pct"]), -abs(row["change"]), position, row))
        candidates.sort(key=lambda c: c[:3])
        want = [(c[3]["channel"], c[3]["metric"]) for c in candidates[:4]]
        assert list(zip(movers["channel"], movers["metric"], strict=True)) == want


def test_unsorted_and_float_days_are_fine():
    shuffled = DAILY.sample(frac=1.0, random_state=np.random.RandomState(3))
    a = daily_by_dimension(shuffled, PROFILES)
    b = daily_by_dimension(DAILY, PROFILES)
    pd.testing.assert_frame_equal(a, b)
