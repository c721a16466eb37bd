"""Satisfaction analyses: hand-computed tables, boundaries, and seeded random tables checked
against plain-Python recomputations."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from custpulse.processors.analyses.satisfaction import (
    BAND_COLUMNS,
    CSAT_COLUMNS,
    TREND_COLUMNS,
    complaint_trend,
    csat_by_issue,
    handling_satisfaction_correlation,
    handling_vs_satisfaction,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def tickets(rows: list[dict]) -> pd.DataFrame:
    """A tickets table with the documented columns (missing fields: None/NaN)."""
    columns = ["user_id", "ticket", "opened_at", "closed_at", "issue_type", "is_complaint",
               "satisfaction", "handling_minutes"]
    frame = pd.DataFrame(
        [{c: row.get(c) for c in columns} for row in rows], columns=columns
    )
    frame["opened_at"] = pd.to_datetime(frame["opened_at"], utc=True)
    frame["closed_at"] = pd.to_datetime(frame["closed_at"], utc=True)
    frame["satisfaction"] = frame["satisfaction"].astype(float)
    frame["handling_minutes"] = frame["handling_minutes"].astype(float)
    return frame


def empty_tickets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype="str"),
            "ticket": pd.Series(dtype="str"),
            "opened_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "closed_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "issue_type": pd.Series(dtype=object),
            "is_complaint": pd.Series(dtype=bool),
            "satisfaction": pd.Series(dtype=float),
            "handling_minutes": pd.Series(dtype=float),
        }
    )


T0 = datetime(2024, 3, 1, tzinfo=UTC)

HAND = tickets(
    [
        # refund: ratings 5, 3 and one unrated; one complaint; handling 10, 50, NaN
        dict(ticket="t:1", opened_at=T0, issue_type="refund", is_complaint=True,
             satisfaction=5, handling_minutes=10),
        dict(ticket="t:2", opened_at=T0 + timedelta(hours=1), issue_type="refund",
             is_complaint=False, satisfaction=3, handling_minutes=50),
        dict(ticket="t:3", opened_at=T0 + timedelta(days=1), issue_type="refund",
             is_complaint=None, satisfaction=None, handling_minutes=None),
        # delivery: ratings 1, 4 (4 counts as satisfied); two complaints
        dict(ticket="t:4", opened_at=T0 + timedelta(days=2), issue_type="delivery",
             is_complaint=True, satisfaction=1, handling_minutes=300),
        dict(ticket="t:5", opened_at=T0 + timedelta(days=3), issue_type="delivery",
             is_complaint=True, satisfaction=4, handling_minutes=100),
        # no issue type (None and blank) -> unknown; never rated
        dict(ticket="t:6", opened_at=T0 + timedelta(days=4), issue_type=None,
             is_complaint=False, satisfaction=None, handling_minutes=5),
        dict(ticket="t:7", opened_at=None, issue_type="  ", is_complaint=True,
             satisfaction=None, handling_minutes=None),
    ]
)


# --------------------------------------------------------------------------- csat_by_issue


def test_csat_by_issue_hand_computed():
    out = csat_by_issue(HAND)
    assert list(out.columns) == list(CSAT_COLUMNS)
    # worst first: delivery 2.5, refund 4.0, unknown (nothing rated) last
    assert out["issue_type"].tolist() == ["delivery", "refund", "unknown"]
    rows = out.set_index("issue_type")
    assert rows.loc["delivery"].to_dict() == {
        "tickets": 2, "rated": 2, "csat_mean": 2.5, "satisfied_share": 0.5,
        "complaints": 2, "handling_minutes_mean": 200.0,
    }
    assert rows.loc["refund", "tickets"] == 3
    assert rows.loc["refund", "rated"] == 2
    assert rows.loc["refund", "csat_mean"] == 4.0
    assert rows.loc["refund", "satisfied_share"] == 0.5  # 5 yes, 3 no
    assert rows.loc["refund", "complaints"] == 1  # None is not a complaint
    assert rows.loc["refund", "handling_minutes_mean"] == 30.0
    assert rows.loc["unknown", "tickets"] == 2
    assert rows.loc["unknown", "rated"] == 0
    assert math.isnan(rows.loc["unknown", "csat_mean"])
    assert math.isnan(rows.loc["unknown", "satisfied_share"])
    assert rows.loc["unknown", "complaints"] == 1
    assert rows.loc["unknown", "handling_minutes_mean"] == 5.0


def test_csat_window_is_half_open_and_drops_unknown_opening():
    start, end = T0 + timedelta(hours=1), T0 + timedelta(days=3)
    out = csat_by_issue(HAND, start, end).set_index("issue_type")
    # t:2 at start is in; t:5 at end is out; t:7 (no opened_at) is out
    assert out["tickets"].to_dict() == {"delivery": 1, "refund": 2}
    assert out.loc["delivery", "csat_mean"] == 1.0
    only_start = csat_by_issue(HAND, start=T0 + timedelta(days=4))
    assert only_start["tickets"].tolist() == [1]
    only_end = csat_by_issue(HAND, end=T0 + timedelta(minutes=1))
    assert only_end["issue_type"].tolist() == ["refund"]


def test_csat_bounds_in_other_zones_are_instants():
    start = datetime(2024, 3, 1, 9, tzinfo=SHANGHAI)  # = 01:00 UTC
    out = csat_by_issue(HAND, start, T0 + timedelta(days=1, minutes=1))
    assert out["tickets"].sum() == 2  # t:2 (01:00 UTC) and t:3


def test_csat_naive_bound_is_refused():
    with pytest.raises(ValueError, match="aware"):
        csat_by_issue(HAND, start=datetime(2024, 3, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="aware"):
        csat_by_issue(HAND, end=datetime(2024, 3, 1))  # noqa: DTZ001


def test_csat_empty_tables():
    out = csat_by_issue(empty_tickets())
    assert out.empty and list(out.columns) == list(CSAT_COLUMNS)
    out = csat_by_issue(HAND, T0 + timedelta(days=30), T0 + timedelta(days=31))
    assert out.empty and list(out.columns) == list(CSAT_COLUMNS)


# ------------------------------------------------------------------ handling vs satisfaction


def test_handling_bands_hand_computed():
    frame = tickets(
        [
            dict(handling_minutes=0, satisfaction=5),
            dict(handling_minutes=29.9, satisfaction=3),
            dict(handling_minutes=30, satisfaction=4),  # lower edge belongs to [30, 60)
            dict(handling_minutes=60, satisfaction=None),
            dict(handling_minutes=2000, satisfaction=1),
            dict(handling_minutes=-1, satisfaction=5),  # outside every band
            dict(handling_minutes=None, satisfaction=5),  # no handling time
        ]
    )
    out = handling_vs_satisfaction(frame)
    assert list(out.columns) == list(BAND_COLUMNS)
    assert out["band"].tolist() == [
        "[0, 30)", "[30, 60)", "[60, 240)", "[240, 1440)", "[1440, inf)"]
    assert out["tickets"].tolist() == [2, 1, 1, 0, 1]
    assert out["rated"].tolist() == [2, 1, 0, 0, 1]
    assert out["csat_mean"].tolist()[:2] == [4.0, 4.0]
    assert np.isnan(out["csat_mean"].iloc[2]) and np.isnan(out["csat_mean"].iloc[3])
    assert out["csat_mean"].iloc[4] == 1.0
    assert out["satisfied_share"].tolist()[:2] == [0.5, 1.0]
    assert out["upper_minutes"].iloc[-1] == math.inf


def test_handling_custom_bands_and_validation():
    frame = tickets([dict(handling_minutes=m, satisfaction=s) for m, s in [(1, 2), (5, 4), (9, 5)]])
    out = handling_vs_satisfaction(frame, bands=(0, 5, 10))
    assert out["band"].tolist() == ["[0, 5)", "[5, 10)"]
    assert out["tickets"].tolist() == [1, 2]
    assert out["csat_mean"].tolist() == [2.0, 4.5]
    for bad in [(0,), (0, 0), (10, 5), (0, float("nan"))]:
        with pytest.raises(ValueError):
            handling_vs_satisfaction(frame, bands=bad)
    out = handling_vs_satisfaction(empty_tickets())
    assert out.empty and list(out.columns) == list(BAND_COLUMNS)


def test_spearman_hand_cases():
    frame = tickets([dict(handling_minutes=m, satisfaction=s)
                     for m, s in [(10, 5), (20, 4), (30, 3), (40, 1), (None, 5), (50, None)]])
    result = handling_satisfaction_correlation(frame)
    assert result.n == 4
    assert result.rho == pytest.approx(-1.0)
    assert result.pvalue == pytest.approx(0.0, abs=1e-9)
    few = handling_satisfaction_correlation(frame.iloc[:2])
    assert few.n == 2 and math.isnan(few.rho) and math.isnan(few.pvalue)
    flat = tickets([dict(handling_minutes=m, satisfaction=4) for m in (1, 2, 3, 4)])
    assert math.isnan(handling_satisfaction_correlation(flat).rho)
    empty = handling_satisfaction_correlation(empty_tickets())
    assert empty.n == 0 and math.isnan(empty.rho)


def average_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


# ----------------------------------------------------------------------- complaint_trend


def test_complaint_trend_weeks_in_local_time():
    frame = tickets(
        [
            # Sunday 17:00 UTC = Monday 01:00 in Shanghai: the week of Monday 2024-03-04
            dict(opened_at="2024-03-03T17:00:00Z", is_complaint=True),
            dict(opened_at="2024-03-10T15:59:59Z", is_complaint=False),  # Sun 23:59:59 local
            dict(opened_at="2024-03-10T16:00:00Z", is_complaint=True),  # Mon 03-11 00:00 local
            dict(opened_at="2024-03-27T00:00:00Z", is_complaint=None),
            dict(opened_at=None, is_complaint=True),  # no opening time: left out
        ]
    )
    out = complaint_trend(frame, SHANGHAI)
    assert list(out.columns) == list(TREND_COLUMNS)
    assert out["period"].dtype == "datetime64[ns]"
    assert out["period"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"]
    assert out["tickets"].tolist() == [2, 1, 0, 1]
    assert out["complaints"].tolist() == [1, 1, 0, 0]
    assert out["complaint_rate"].tolist()[:2] == [0.5, 1.0]
    assert math.isnan(out["complaint_rate"].iloc[2])
    assert out["complaint_rate"].iloc[3] == 0.0
    # in UTC the first ticket is on Sunday: the week of 2024-02-26
    utc = complaint_trend(frame, UTC)
    assert utc["period"].dt.strftime("%Y-%m-%d").tolist()[0] == "2024-02-26"


def test_complaint_trend_months_and_zones():
    frame = tickets(
        [
            dict(opened_at="2024-02-29T16:30:00Z", is_complaint=True),  # 03-01 00:30 Shanghai
            dict(opened_at="2024-01-31T12:00:00Z", is_complaint=True),
            dict(opened_at="2024-03-01T03:00:00Z", is_complaint=False),  # 02-29 22:00 New York
        ]
    )
    shanghai = complaint_trend(frame, SHANGHAI, freq="M")
    assert shanghai["period"].dt.strftime("%Y-%m").tolist() == ["2024-01", "2024-02", "2024-03"]
    assert shanghai["tickets"].tolist() == [1, 0, 2]
    assert shanghai["complaints"].tolist() == [1, 0, 1]
    new_york = complaint_trend(frame, NEW_YORK, freq="M")
    assert new_york["tickets"].tolist() == [1, 2]
    assert new_york["complaint_rate"].tolist() == [1.0, 0.5]
    zone_name = complaint_trend(frame, "Asia/Shanghai", freq="M")
    pd.testing.assert_frame_equal(zone_name, shanghai)


def test_complaint_trend_validation_and_empty():
    with pytest.raises(ValueError, match="freq"):
        complaint_trend(HAND, SHANGHAI, freq="D")  # type: ignore[arg-type]
    for frame in (empty_tickets(), tickets([dict(opened_at=None, is_complaint=True)])):
        out = complaint_trend(frame, SHANGHAI)
        assert out.empty and list(out.columns) == list(TREND_COLUMNS)


# ------------------------------------------------------------------ randomized brute force

ISSUES = ["refund", "delivery", "quality", None, ""]


def random_tickets(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        opened = None
        if rng.random() > 0.05:
            opened = T0 + timedelta(minutes=rng.randrange(0, 120 * 24 * 60))
        rows.append(
            dict(
                user_id=f"u{rng.randrange(20)}",
                ticket=f"t:{i}",
                opened_at=opened,
                issue_type=rng.choice(ISSUES),
                is_complaint=rng.choice([True, False, False, None]),
                satisfaction=rng.choice([None, 1, 2, 3, 4, 5, 4.5, 3.5]),
                handling_minutes=rng.choice(
                    [None, -5, 0, 29.5, 30, 59, 60, 239, 240, 1439, 1440, 5000,
                     rng.uniform(0, 3000)]),
            )
        )
    return rows


def brute_csat(rows: list[dict], start: datetime | None, end: datetime | None) -> dict:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if start is not None or end is not None:
            if row["opened_at"] is None:
                continue
            if start is not None and row["opened_at"] < start:
                continue
            if end is not None and row["opened_at"] >= end:
                continue
        issue = row["issue_type"]
        label = "unknown" if issue is None or not issue.strip() else issue
        groups.setdefault(label, []).append(row)
    out = {}
    for label, members in groups.items():
        ratings = [m["satisfaction"] for m in members if m["satisfaction"] is not None]
        minutes = [m["handling_minutes"] for m in members if m["handling_minutes"] is not None]
        out[label] = dict(
            tickets=len(members),
            rated=len(ratings),
            csat_mean=sum(ratings) / len(ratings) if ratings else math.nan,
            satisfied_share=(sum(1 for r in ratings if r >= 4) / len(ratings)
                             if ratings else math.nan),
            complaints=sum(1 for m in members if m["is_complaint"] is True),
            handling_minutes_mean=sum(minutes) / len(minutes) if minutes else math.nan,
        )
    return out


def same(a: float, b: float) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("seed", range(25))
def test_random_tables_match_brute_force(seed):
    rng = random.Random(seed)
    rows = random_tickets(rng, rng.randrange(1, 80))
    frame = tickets(rows)

    # csat_by_issue, with a random window (or none)
    start = T0 + timedelta(days=rng.randrange(0, 60)) if rng.random() < 0.6 else None
    end = T0 + timedelta(days=rng.randrange(30, 130)) if rng.random() < 0.6 else None
    expected = brute_csat(rows, start, end)
    out = csat_by_issue(frame, start, end)
    assert sorted(out["issue_type"]) == sorted(expected)
    for record in out.to_dict("records"):
        want = expected[record["issue_type"]]
        for key, value in want.items():
            assert same(float(record[key]), float(value)), (record, want, key)
    means = out["csat_mean"].tolist()
    known = [m for m in means if not math.isnan(m)]
    assert known == sorted(known) and means[: len(known)] == known

    # handling bands
    edges = [0, 30, 60, 240, 1440, math.inf]
    bands = handling_vs_satisfaction(frame)
    for i, record in enumerate(bands.to_dict("records")):
        members = [r for r in rows if r["handling_minutes"] is not None
                   and edges[i] <= r["handling_minutes"] < edges[i + 1]]
        ratings = [r["satisfaction"] for r in members if r["satisfaction"] is not None]
        assert record["tickets"] == len(members)
        assert record["rated"] == len(ratings)
        assert same(record["csat_mean"], sum(ratings) / len(ratings) if ratings else math.nan)

    # Spearman: Pearson of average ranks
    pairs = [(r["handling_minutes"], r["satisfaction"]) for r in rows
             if r["handling_minutes"] is not None and r["satisfaction"] is not None]
    result = handling_satisfaction_correlation(frame)
    assert result.n == len(pairs)
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(pairs) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
        assert result.rho == pytest.approx(pearson(average_ranks(xs), average_ranks(ys)))
    else:
        assert math.isnan(result.rho)

    # complaint trend in a random zone and frequency
    zone = rng.choice([SHANGHAI, NEW_YORK, UTC, ZoneInfo("Pacific/Auckland")])
    freq = rng.choice(["W", "M"])
    counts: dict[str, list[int]] = {}
    for row in rows:
        if row["opened_at"] is None:
            continue
        local = row["opened_at"].astimezone(zone).date()
        first = (local - timedelta(days=local.weekday())) if freq == "W" else local.replace(day=1)
        entry = counts.setdefault(first.isoformat(), [0, 0])
        entry[0] += row["is_complaint"] is True
        entry[1] += 1
    trend = complaint_trend(frame, zone, freq=freq)
    got = {
        p.strftime("%Y-%m-%d"): [c, t]
        for p, c, t in zip(trend["period"], trend["complaints"], trend["tickets"], strict=True)
        if t > 0
    }
    assert got == counts
    assert trend["tickets"].sum() == sum(v[1] for v in counts.values())
    if counts:
        assert trend["period"].iloc[0].strftime("%Y-%m-%d") == min(counts)
        assert trend["period"].iloc[-1].strftime("%Y-%m-%d") == max(counts)
        assert trend["period"].is_monotonic_increasing and trend["period"].is_unique
        steps = [b - a for a, b in zip(trend["period"], trend["period"].iloc[1:], strict=False)]
        if freq == "W":
            assert all(step == pd.Timedelta(days=7) for step in steps)  # no gap skipped
        else:
            months = [p.year * 12 + p.month for p in trend["period"]]
            assert months == list(range(months[0], months[0] + len(months)))
