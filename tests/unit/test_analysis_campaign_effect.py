"""Campaign effect: hand-built contacts with known answers, the Newcombe interval against
published values and an independent root-finding computation, coverage under a null
effect, and seeded random tables against a plain-Python recomputation."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import binom, norm

from custpulse.processors.analyses.campaign_effect import (
    COLUMNS,
    campaign_effect,
    newcombe_interval,
    wilson_interval,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def contacts(rows: list[tuple]) -> pd.DataFrame:
    """Rows: (user_id, at ISO UTC, action, contacted)."""
    frame = pd.DataFrame(rows, columns=["user_id", "at", "action", "contacted"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def daily(rows: list[tuple]) -> pd.DataFrame:
    """Rows: (user_id, day 'YYYY-MM-DD', purchases, events); other columns filled in."""
    frame = pd.DataFrame(rows, columns=["user_id", "day", "purchases", "events"])
    frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    frame["channel"] = "app"
    frame["browse"] = frame["events"] - frame["purchases"]
    frame["add_to_cart"] = 0
    frame["revenue"] = 10.0 * frame["purchases"]
    frame["returns"] = 0
    for column in ("purchases", "events", "browse", "add_to_cart", "returns"):
        frame[column] = frame[column].astype("int64")
    return frame


# ------------------------------------------------------- independent interval computation

Z95 = norm.ppf(0.975)


def wilson_by_roots(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval as the set of pi with (p - pi)^2 <= z^2 pi (1 - pi) / n, its end
    points found numerically (no closed form)."""
    p = x / n

    def excess(pi: float) -> float:
        return (p - pi) ** 2 - z * z * pi * (1 - pi) / n

    low = 0.0 if x == 0 else brentq(excess, 0.0, p if x < n else 1 - 1e-12, xtol=1e-14)
    high = 1.0 if x == n else brentq(excess, p if x else 1e-12, 1.0, xtol=1e-14)
    return low, high


def newcombe_by_hand(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe (1998) method 10 from the two Wilson intervals."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_by_roots(x1, n1, z)
    l2, u2 = wilson_by_roots(x2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt(
        (u1 - p1) ** 2 + (p2 - l2) ** 2)


# Newcombe, "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Statistics in Medicine 17 (1998), Table II, method 10.
PUBLISHED = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "bounds"), PUBLISHED)
def test_newcombe_matches_published_values(counts, bounds):
    low, high = newcombe_interval(*counts)
    assert round(low, 4) == bounds[0] and round(high, 4) == bounds[1]
    by_hand = newcombe_by_hand(*counts)
    assert low == pytest.approx(by_hand[0], abs=1e-9)
    assert high == pytest.approx(by_hand[1], abs=1e-9)


def test_intervals_match_independent_computation_on_a_grid():
    rng = random.Random(7)
    cases = [(rng.randrange(1, 60), rng.randrange(1, 60)) for _ in range(150)]
    cases += [(1, 1), (1, 2), (2, 1), (500, 3)]
    x1s, n1s, x2s, n2s, expected = [], [], [], [], []
    for n1, n2 in cases:
        x1, x2 = rng.randrange(0, n1 + 1), rng.randrange(0, n2 + 1)
        x1s.append(x1)
        n1s.append(n1)
        x2s.append(x2)
        n2s.append(n2)
        expected.append(newcombe_by_hand(x1, n1, x2, n2))
        low, high = wilson_interval(x1, n1)
        want = wilson_by_roots(x1, n1)
        assert (low, high) == pytest.approx(want, abs=1e-9)
        assert low <= x1 / n1 <= high
    low, high = newcombe_interval(x1s, n1s, x2s, n2s)  # vectorised
    assert isinstance(low, np.ndarray) and low.shape == (len(cases),)
    assert low == pytest.approx([e[0] for e in expected], abs=1e-9)
    assert high == pytest.approx([e[1] for e in expected], abs=1e-9)
    diffs = np.asarray(x1s) / np.asarray(n1s) - np.asarray(x2s) / np.asarray(n2s)
    assert np.all(low <= diffs + 1e-12) and np.all(diffs <= high + 1e-12)


def test_interval_edge_cases():
    assert all(math.isnan(v) for v in newcombe_interval(1, 0, 1, 5))
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    z90 = norm.ppf(0.95)
    low, high = newcombe_interval(30, 60, 20, 60, confidence=0.90)
    assert (low, high) == pytest.approx(newcombe_by_hand(30, 60, 20, 60, z90), abs=1e-9)
    wide = newcombe_interval(30, 60, 20, 60, confidence=0.99)
    assert wide[0] < low and wide[1] > high
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


# --------------------------------------------------------------------- hand-built tables

CONTACTS = contacts(
    [
        # coupon, contacted
        ("u1", "2024-03-01T17:00:00Z", "coupon", True),  # local 03-02 01:00: window 03-03..09
        ("u2", "2024-03-01T15:59:59Z", "coupon", True),  # local 03-01 23:59:59: 03-02..08
        ("u3", "2024-03-02T00:00:00Z", "coupon", True),  # local 03-02: no activity at all
        ("u1", "2024-03-08T01:00:00Z", "coupon", True),  # local 03-08: window 03-09..15
        ("u2", "2024-03-09T00:00:00Z", "coupon", True),  # window ends 03-16: incomplete
        # coupon, holdout
        ("u4", "2024-03-02T03:00:00Z", "coupon", False),  # window 03-03..09
        ("u5", "2024-03-02T03:00:00Z", "coupon", False),
        ("u6", "2024-03-10T00:00:00Z", "coupon", False),  # window ends 03-17: incomplete
        # sms: a holdout only
        ("u1", "2024-03-01T17:00:00Z", "sms", False),
        # ignored: no time
        ("u1", None, "coupon", True),
    ]
)

DAILY = daily(
    [
        ("u1", "2024-03-02", 1, 1),  # the contact day itself: not in the window
        ("u1", "2024-03-09", 1, 3),  # last day of c1's window, first of c4's
        ("u2", "2024-03-02", 0, 2),  # returned without buying
        ("u2", "2024-03-09", 1, 1),  # one day after u2's window
        ("u4", "2024-03-05", 2, 2),
        ("u5", "2024-03-10", 0, 4),  # after the window
        ("u6", "2024-03-15", 0, 1),  # the last observed day
    ]
)


def test_hand_built_campaign():
    out = campaign_effect(CONTACTS, DAILY, window_days=7, zone=SHANGHAI)
    assert list(out.columns) == list(COLUMNS)
    assert out["action"].tolist() == ["coupon", "sms"]
    coupon = out.iloc[0]
    assert coupon["contacted_n"] == 4 and coupon["holdout_n"] == 2
    assert coupon["contacted_conversions"] == 2  # u1 twice (the same purchase counts for both)
    assert coupon["holdout_conversions"] == 1
    assert coupon["contacted_returns"] == 3 and coupon["holdout_returns"] == 1
    assert coupon["contacted_conversion_rate"] == 0.5
    assert coupon["holdout_conversion_rate"] == 0.5
    assert coupon["conversion_diff"] == 0.0
    assert coupon["contacted_return_rate"] == 0.75 and coupon["holdout_return_rate"] == 0.5
    assert coupon["return_diff"] == 0.25
    assert coupon["excluded_incomplete"] == 2
    assert coupon["observed_through"] == pd.Timestamp("2024-03-15")
    assert (coupon["conversion_diff_low"], coupon["conversion_diff_high"]) == pytest.approx(
        newcombe_by_hand(2, 4, 1, 2), abs=1e-9)
    assert (coupon["return_diff_low"], coupon["return_diff_high"]) == pytest.approx(
        newcombe_by_hand(3, 4, 1, 2), abs=1e-9)
    sms = out.iloc[1]
    assert sms["contacted_n"] == 0 and sms["holdout_n"] == 1
    assert sms["holdout_conversions"] == 1 and sms["holdout_conversion_rate"] == 1.0
    for column in ("contacted_conversion_rate", "conversion_diff", "conversion_diff_low",
                   "conversion_diff_high", "return_diff"):
        assert math.isnan(sms[column])


def test_observed_through_and_window_length():
    later = campaign_effect(CONTACTS, DAILY, window_days=7, zone=SHANGHAI,
                            observed_through=date(2024, 3, 20))
    coupon = later.iloc[0]
    assert coupon["excluded_incomplete"] == 0
    assert (coupon["contacted_n"], coupon["contacted_conversions"]) == (5, 2)
    assert (coupon["holdout_n"], coupon["holdout_returns"]) == (3, 2)  # u6 came back 03-15
    short = campaign_effect(CONTACTS, DAILY, window_days=1, zone=SHANGHAI).iloc[0]
    # one-day windows: only u2 (browse on 03-02) and u1's second contact (03-09) come back
    assert (short["contacted_n"], short["contacted_returns"], short["contacted_conversions"]) \
        == (5, 2, 1)
    assert short["excluded_incomplete"] == 0
    early = campaign_effect(CONTACTS, DAILY, window_days=7, zone=SHANGHAI,
                            observed_through="2024-03-08")
    # only u2's first contact (window 03-02..03-08) ends by 03-08
    assert early.iloc[0]["excluded_incomplete"] == 7
    assert (early.iloc[0]["contacted_n"], early.iloc[0]["contacted_returns"]) == (1, 1)
    assert early.iloc[0]["holdout_n"] == 0 and math.isnan(early.iloc[0]["conversion_diff"])


def test_zone_decides_the_contact_day():
    one = contacts([("u2", "2024-03-01T15:59:59Z", "coupon", True)])
    # Shanghai: contact day 03-01, window 03-02..03-07 holds the browse on 03-02
    assert campaign_effect(one, DAILY, 6, zone=SHANGHAI).iloc[0]["contacted_returns"] == 1
    # Tokyo (UTC+9): 03-02 00:59:59, the browse is on the contact day; window 03-03..03-08
    tokyo = campaign_effect(one, DAILY, 6, zone=ZoneInfo("Asia/Tokyo")).iloc[0]
    assert tokyo["contacted_returns"] == 0
    as_text = campaign_effect(one, DAILY, 6, zone="Asia/Shanghai")
    pd.testing.assert_frame_equal(as_text, campaign_effect(one, DAILY, 6, zone=SHANGHAI))


def test_empty_tables_and_validation():
    empty_contacts = contacts([])
    out = campaign_effect(empty_contacts, DAILY, zone=SHANGHAI)
    assert out.empty and list(out.columns) == list(COLUMNS)
    out = campaign_effect(CONTACTS.iloc[[-1]], DAILY, zone=SHANGHAI)  # only a row without time
    assert out.empty and list(out.columns) == list(COLUMNS)
    no_daily = campaign_effect(CONTACTS, daily([]), zone=SHANGHAI)
    assert no_daily["excluded_incomplete"].tolist() == [8, 1]
    assert no_daily["contacted_n"].tolist() == [0, 0]
    assert no_daily["observed_through"].isna().all()
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="window_days"):
            campaign_effect(CONTACTS, DAILY, bad, zone=SHANGHAI)
    with pytest.raises(ValueError, match="confidence"):
        campaign_effect(CONTACTS, DAILY, zone=SHANGHAI, confidence=95)
    with pytest.raises(ValueError, match="local day"):
        campaign_effect(CONTACTS, DAILY, zone=SHANGHAI,
                        observed_through=datetime(2024, 3, 20, tzinfo=UTC))


# ------------------------------------------------------------------ coverage under a null


def test_null_effect_interval_covers_zero_about_95_percent():
    """400 actions, each an independent experiment with the same conversion (15 %) and
    return (40 %) probability in both arms: the 95 % intervals should cover 0 about 95 % of
    the time (Newcombe's interval is close to nominal at these sizes)."""
    rng = np.random.default_rng(20240301)
    repetitions, n_contacted, n_holdout, window = 400, 150, 100, 14
    per_action = n_contacted + n_holdout
    total = repetitions * per_action
    action = np.repeat([f"a{i:03d}" for i in range(repetitions)], per_action)
    contacted = np.tile(np.r_[np.ones(n_contacted, bool), np.zeros(n_holdout, bool)],
                        repetitions)
    users = np.array([f"u{i}" for i in range(total)])
    base = pd.Timestamp("2024-02-01", tz="UTC")
    at = base + pd.to_timedelta(rng.integers(0, 20 * 24 * 60, total), unit="min")
    local_day = at.tz_convert(SHANGHAI).tz_localize(None).normalize()
    converts = rng.random(total) < 0.15
    returns = converts | (rng.random(total) < (0.40 - 0.15) / 0.85)
    offsets = rng.integers(1, window + 1, total)
    days = [
        # a purchase (and its event) inside the window for converters
        pd.DataFrame({"user_id": users[converts],
                      "day": local_day[converts] + pd.to_timedelta(offsets[converts], "D"),
                      "purchases": 1, "events": 2}),
        # a visit without purchase inside the window for the other returners
        pd.DataFrame({"user_id": users[returns & ~converts],
                      "day": local_day[returns & ~converts]
                      + pd.to_timedelta(offsets[returns & ~converts], "D"),
                      "purchases": 0, "events": 1}),
        # noise outside every window: purchases on the contact day and the day after the window
        pd.DataFrame({"user_id": users, "day": local_day, "purchases": 1, "events": 1}),
        pd.DataFrame({"user_id": users, "day": local_day + pd.Timedelta(days=window + 1),
                      "purchases": 1, "events": 1}),
    ]
    activity = pd.concat(days, ignore_index=True)
    activity["day"] = activity["day"].astype("datetime64[ns]")
    table = pd.DataFrame({"user_id": users, "at": at, "action": action, "contacted": contacted})
    out = campaign_effect(table, activity, window, zone=SHANGHAI)
    assert len(out) == repetitions
    assert (out["contacted_n"] == n_contacted).all() and (out["holdout_n"] == n_holdout).all()
    assert out["excluded_incomplete"].sum() == 0
    # the counts are the simulated ones
    expected = pd.Series(converts).groupby([action, contacted]).sum()
    assert out.set_index("action")["contacted_conversions"].tolist() == expected.xs(
        True, level=1).tolist()
    for measure, truth in (("conversion", 0.15), ("return", 0.40)):
        covered = (out[f"{measure}_diff_low"] <= 0) & (out[f"{measure}_diff_high"] >= 0)
        assert 0.92 <= covered.mean() <= 0.98, (measure, covered.mean())
        assert out[f"contacted_{measure}_rate"].mean() == pytest.approx(truth, abs=0.01)
        assert out[f"holdout_{measure}_rate"].mean() == pytest.approx(truth, abs=0.01)


@pytest.mark.parametrize(
    ("p", "n1", "n0", "lowest", "highest"),
    [(0.15, 150, 100, 0.94, 0.96), (0.40, 150, 100, 0.94, 0.96), (0.5, 20, 10, 0.94, 0.96),
     (0.05, 40, 30, 0.95, 0.99), (0.02, 300, 200, 0.95, 0.98)],
)
def test_exact_null_coverage_by_enumeration(p, n1, n0, lowest, highest):
    """Exact coverage of 0 under equal rates: every (x1, x0) weighted by its binomial
    probability. Near nominal for moderate rates, conservative for rare events."""
    x1, x0 = np.meshgrid(np.arange(n1 + 1), np.arange(n0 + 1), indexing="ij")
    low, high = newcombe_interval(x1, n1, x0, n0)
    weight = binom.pmf(x1, n1, p) * binom.pmf(x0, n0, p)
    coverage = float((weight * ((low <= 0) & (high >= 0))).sum())
    assert lowest <= coverage <= highest


# ------------------------------------------------------------------ randomized brute force


def brute_force(rows, activity, window_days, zone, observed_through):
    """Per action: [n, conversions, returns] per arm, and the excluded count, by loops."""
    if observed_through is None:
        observed_through = max((day for _, day, _, _ in activity), default=None)
    result: dict[str, dict] = {}
    for user, at, action, was_contacted in rows:
        entry = result.setdefault(action, {True: [0, 0, 0], False: [0, 0, 0], "excluded": 0})
        contact_day = at.astimezone(zone).date()
        last = contact_day + timedelta(days=window_days)
        if observed_through is None or last > observed_through:
            entry["excluded"] += 1
            continue
        bought = came = False
        for other, day, purchases, events in activity:
            if other == user and contact_day < day <= last:
                bought = bought or purchases > 0
                came = came or events > 0
        arm = entry[was_contacted]
        arm[0] += 1
        arm[1] += bought
        arm[2] += came
    return result


def matches(value: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(value)
    return math.isclose(value, expected, abs_tol=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_random_tables_match_brute_force(seed):
    rng = random.Random(seed)
    zone = rng.choice([SHANGHAI, ZoneInfo("America/New_York"), UTC])
    window_days = rng.choice([1, 3, 7, 14])
    users = [f"u{i}" for i in range(rng.randrange(1, 12))]
    start = datetime(2024, 3, 1, tzinfo=UTC)
    rows = []
    for _ in range(rng.randrange(1, 40)):
        at = start + timedelta(minutes=rng.randrange(0, 40 * 24 * 60))
        rows.append((rng.choice(users), at, rng.choice(["coupon", "sms", "push"]),
                     rng.random() < 0.6))
    activity = {}
    for _ in range(rng.randrange(0, 80)):
        user = rng.choice(users)
        day = date(2024, 3, 1) + timedelta(days=rng.randrange(-2, 50))
        purchases = rng.choice([0, 0, 1, 2])
        activity[(user, day)] = (user, day, purchases, purchases + rng.randrange(0, 3))
    activity = list(activity.values())
    observed = None
    if rng.random() < 0.3:
        observed = date(2024, 3, 1) + timedelta(days=rng.randrange(10, 60))

    table = contacts([(u, at.isoformat(), a, c) for u, at, a, c in rows])
    frame = daily([(u, d.isoformat(), p, e) for u, d, p, e in activity])
    out = campaign_effect(table, frame, window_days, zone=zone, observed_through=observed)
    expected = brute_force(rows, activity, window_days, zone, observed)
    assert out["action"].tolist() == sorted(expected)
    for record in out.to_dict("records"):
        want = expected[record["action"]]
        assert record["excluded_incomplete"] == want["excluded"]
        for arm, prefix in ((True, "contacted"), (False, "holdout")):
            n, conversions, returns = want[arm]
            assert record[f"{prefix}_n"] == n
            assert record[f"{prefix}_conversions"] == conversions
            assert record[f"{prefix}_returns"] == returns
            assert matches(record[f"{prefix}_conversion_rate"],
                           conversions / n if n else math.nan)
            assert matches(record[f"{prefix}_return_rate"], returns / n if n else math.nan)
        (n1, c1, r1), (n0, c0, r0) = want[True], want[False]
        for measure, x1, x0 in (("conversion", c1, c0), ("return", r1, r0)):
            if n1 and n0:
                low, high = newcombe_by_hand(x1, n1, x0, n0)
                assert matches(record[f"{measure}_diff"], x1 / n1 - x0 / n0)
            else:
                low = high = math.nan
                assert math.isnan(record[f"{measure}_diff"])
            assert matches(record[f"{measure}_diff_low"], low)
            assert matches(record[f"{measure}_diff_high"], high)
