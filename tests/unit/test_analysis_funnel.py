"""Funnel per channel and period: hand-built answers and a brute-force cross-check."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from custpulse.processors.analyses.funnel import FUNNEL_COLUMNS, funnel

SH = ZoneInfo("Asia/Shanghai")
W1 = "2026-11-30/2026-12-06"  # Monday..Sunday
W2 = "2026-12-07/2026-12-13"


def daily(rows: list[tuple]) -> pd.DataFrame:
    """rows: (user_id, day 'YYYY-MM-DD', channel, browse, add_to_cart, purchases)."""
    cols = ["user_id", "day", "channel", "browse", "add_to_cart", "purchases"]
    d = pd.DataFrame(rows, columns=cols)
    d["day"] = pd.to_datetime(d["day"])
    d["revenue"] = d["purchases"] * 10.0
    d["returns"] = 0
    d["events"] = d["browse"] + d["add_to_cart"] + d["purchases"]
    return d


def profiles(first: dict[str, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": list(first),
            "first_order_at": pd.to_datetime(list(first.values()), utc=True),
            "segment": "regular",
        }
    )


def row(out: pd.DataFrame, channel: str, period: str) -> dict:
    hit = out[(out["channel"] == channel) & (out["period"] == period)]
    assert len(hit) == 1, (channel, period)
    return hit.iloc[0].to_dict()


def steps(out: pd.DataFrame, channel: str, period: str) -> tuple[int, int, int, int]:
    r = row(out, channel, period)
    return (r["browse"], r["add_to_cart"], r["order"], r["repurchase"])


# --- hand-built ---------------------------------------------------------------------------


def test_weekly_funnel_counts_rates_and_weakest_step():
    out = funnel(
        daily(
            [
                ("u1", "2026-11-30", "app", 3, 1, 1),
                ("u2", "2026-12-01", "app", 1, 1, 0),
                ("u3", "2026-12-02", "app", 2, 0, 0),
                ("u4", "2026-12-06", "app", 1, 0, 0),  # Sunday: still week 1
                ("u5", "2026-12-03", "web", 0, 0, 2),  # 2 purchases one day: repurchase
            ]
        )
    )
    assert list(out.columns) == FUNNEL_COLUMNS
    assert out[["channel", "period"]].values.tolist() == [["all", W1], ["app", W1], ["web", W1]]
    assert steps(out, "app", W1) == (4, 2, 1, 0)
    app = row(out, "app", W1)
    assert app["rate_add_to_cart"] == 0.5 and app["rate_order"] == 0.5
    assert app["rate_repurchase"] == 0.0
    assert (app["weakest_step"], app["weakest_rate"]) == ("order->repurchase", 0.0)
    web = row(out, "web", W1)
    assert steps(out, "web", W1) == (0, 0, 1, 1)
    assert math.isnan(web["rate_add_to_cart"]) and math.isnan(web["rate_order"])
    assert (web["weakest_step"], web["weakest_rate"]) == ("order->repurchase", 1.0)
    assert steps(out, "all", W1) == (4, 2, 2, 1)


def test_repurchase_across_periods_in_daily():
    out = funnel(
        daily(
            [
                ("u1", "2026-12-01", "app", 1, 1, 1),
                ("u1", "2026-12-08", "web", 1, 1, 1),  # bought before, on another channel
                ("u2", "2026-12-09", "web", 1, 1, 1),  # first purchase
                ("u3", "2026-12-02", "app", 1, 0, 0),  # browsed before, bought now: not repeat
                ("u3", "2026-12-10", "app", 0, 0, 1),
            ]
        )
    )
    assert steps(out, "all", W1) == (2, 1, 1, 0)
    assert steps(out, "web", W2) == (2, 2, 2, 1)
    assert steps(out, "app", W2) == (0, 0, 1, 0)
    assert steps(out, "all", W2) == (2, 2, 3, 1)
    assert row(out, "all", W2)["rate_repurchase"] == pytest.approx(1 / 3)


def test_two_purchase_days_in_one_period_make_a_repurchase_in_every_buying_channel():
    out = funnel(
        daily([("u1", "2026-11-30", "app", 0, 0, 1), ("u1", "2026-12-02", "web", 0, 0, 1)])
    )
    assert steps(out, "app", W1)[2:] == (1, 1)
    assert steps(out, "web", W1)[2:] == (1, 1)
    assert steps(out, "all", W1)[2:] == (1, 1)


def test_profiles_first_order_before_the_period_start_in_local_time():
    d = daily(
        [
            ("u1", "2026-12-01", "app", 0, 0, 1),
            ("u2", "2026-12-01", "app", 0, 0, 1),
            ("u3", "2026-12-01", "app", 0, 0, 1),
            ("u4", "2026-12-01", "app", 0, 0, 1),
        ]
    )
    first = {
        "u1": "2026-11-29T15:59:00Z",  # 23:59 Sunday in Shanghai: before the week
        "u2": "2026-11-29T16:00:00Z",  # 00:00 Monday in Shanghai: inside the week
        "u3": None,
        "u9": "2020-01-01T00:00:00Z",  # no activity: no effect
    }
    assert steps(funnel(d), "app", W1) == (0, 0, 4, 0)
    assert steps(funnel(d, profiles=profiles(first)), "app", W1) == (0, 0, 4, 1)
    # Read in UTC (the wrong zone for these days), both u1 and u2 first ordered on Sunday.
    assert steps(funnel(d, profiles=profiles(first), source_tz="UTC"), "app", W1) == (0, 0, 4, 2)
    # Only buyers can repurchase, whatever the profile says.
    d2 = daily([("u1", "2026-12-01", "app", 1, 0, 0)])
    assert steps(funnel(d2, profiles=profiles(first)), "app", W1) == (1, 0, 0, 0)


def test_all_counts_each_customer_once_across_channels():
    out = funnel(
        daily(
            [
                ("u1", "2026-12-01", "app", 1, 1, 1),
                ("u1", "2026-12-01", "web", 1, 1, 0),
                ("u1", "2026-12-03", "mini", 2, 0, 0),
                ("u2", "2026-12-04", "web", 1, 0, 0),
            ]
        )
    )
    assert out["channel"].tolist() == ["all", "app", "mini", "web"]
    assert steps(out, "app", W1) == (1, 1, 1, 0)
    assert steps(out, "web", W1) == (2, 1, 0, 0)
    assert steps(out, "mini", W1) == (1, 0, 0, 0)
    assert steps(out, "all", W1) == (2, 1, 1, 0)


def test_weakest_step_ties_and_all_nan():
    out = funnel(
        daily(
            [
                ("u1", "2026-12-01", "app", 1, 1, 0),
                ("u2", "2026-12-01", "app", 1, 0, 0),  # browse->cart 1/2, cart->order 0/1
                ("u3", "2026-12-01", "web", 1, 1, 1),
                ("u4", "2026-12-01", "web", 1, 0, 0),
                ("u5", "2026-12-01", "web", 0, 1, 0),  # 2/2, 1/2, 0/1: lowest order->repurchase
                ("u6", "2026-12-01", "tv", 1, 0, 0),  # 0/1 then NaN, NaN
                ("u7", "2026-12-01", "sms", 0, 0, 0),  # all NaN
                ("u8", "2026-12-01", "kiosk", 1, 1, 1),  # 1, 1, 0
                ("u9", "2026-12-01", "mail", 2, 2, 2),  # 1, 1, 1: tie, earliest wins
            ]
        )
    )
    assert row(out, "app", W1)["weakest_step"] == "add_to_cart->order"
    assert row(out, "web", W1)["weakest_step"] == "order->repurchase"
    assert (row(out, "tv", W1)["weakest_step"], row(out, "tv", W1)["weakest_rate"]) == (
        "browse->add_to_cart",
        0.0,
    )
    sms = row(out, "sms", W1)
    assert pd.isna(sms["weakest_step"]) and math.isnan(sms["weakest_rate"])
    assert steps(out, "sms", W1) == (0, 0, 0, 0)
    assert row(out, "mail", W1)["weakest_step"] == "browse->add_to_cart"
    assert row(out, "mail", W1)["rate_repurchase"] == 1.0


def test_monthly_periods_and_order():
    out = funnel(
        daily(
            [
                ("u1", "2026-12-31", "app", 1, 0, 1),
                ("u1", "2027-01-01", "app", 1, 0, 1),
                ("u2", "2026-11-15", "web", 1, 0, 0),
            ]
        ),
        freq="M",
    )
    assert out[["channel", "period"]].values.tolist() == [
        ["all", "2026-11"], ["web", "2026-11"],
        ["all", "2026-12"], ["app", "2026-12"],
        ["all", "2027-01"], ["app", "2027-01"],
    ]
    assert steps(out, "app", "2027-01") == (1, 0, 1, 1)
    assert steps(out, "app", "2026-12") == (1, 0, 1, 0)


def test_empty_and_bad_input():
    empty = daily([])
    for out in (funnel(empty), funnel(empty, "M", profiles=profiles({}))):
        assert list(out.columns) == FUNNEL_COLUMNS and out.empty
        assert out["browse"].dtype == "int64" and out["rate_order"].dtype == "float64"
    with pytest.raises(ValueError):
        funnel(empty, freq="D")
    with pytest.raises(ValueError):
        funnel(daily([("u1", "2026-12-01", "all", 1, 0, 0)]))
    aware = daily([("u1", "2026-12-01", "app", 1, 0, 0)])
    aware["day"] = aware["day"].dt.tz_localize("Asia/Shanghai")
    with pytest.raises(ValueError):
        funnel(aware)


# --- brute force --------------------------------------------------------------------------


def brute_funnel(rows: list[tuple], freq: str, first_order: dict | None) -> dict:
    """Plain loops over (user, day: datetime, channel, browse, cart, purchases) rows."""

    def period(day: datetime) -> tuple[datetime, str]:
        if freq == "W":
            monday = day - timedelta(days=day.weekday())
            return monday, f"{monday:%Y-%m-%d}/{monday + timedelta(days=6):%Y-%m-%d}"
        start = day.replace(day=1)
        return start, f"{start:%Y-%m}"

    bought_in: dict[tuple[str, str], int] = {}
    purchase_days: dict[str, list[datetime]] = {}
    for user, day, _channel, _b, _c, p in rows:
        if p > 0:
            key = (user, period(day)[1])
            bought_in[key] = bought_in.get(key, 0) + p
            purchase_days.setdefault(user, []).append(day)

    def repeat(user: str, day: datetime) -> bool:
        start, label = period(day)
        if bought_in.get((user, label), 0) >= 2:
            return True
        if any(d < start for d in purchase_days.get(user, [])):
            return True
        at = (first_order or {}).get(user)
        return at is not None and at.astimezone(SH).replace(tzinfo=None) < start

    sets: dict[tuple[str, str], dict[str, set]] = {}
    for user, day, channel, b, c, p in rows:
        label = period(day)[1]
        for ch in (channel, "all"):
            s = sets.setdefault((ch, label), {k: set() for k in ("b", "c", "o", "r")})
            if b > 0:
                s["b"].add(user)
            if c > 0:
                s["c"].add(user)
            if p > 0:
                s["o"].add(user)
                if repeat(user, day):
                    s["r"].add(user)
    out = {}
    names = ["browse->add_to_cart", "add_to_cart->order", "order->repurchase"]
    for key, s in sets.items():
        counts = [len(s["b"]), len(s["c"]), len(s["o"]), len(s["r"])]
        rates = [counts[i + 1] / counts[i] if counts[i] else math.nan for i in range(3)]
        weakest, low = None, math.nan
        for name, rate in zip(names, rates, strict=True):
            if not math.isnan(rate) and (weakest is None or rate < low):
                weakest, low = name, rate
        out[key] = (counts, rates, weakest, low)
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("seed", range(12))
def test_funnel_equals_brute_force(seed):
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(rng.randint(1, 25))]
    channels = ["app", "web", "mini"][: rng.randint(1, 3)]
    d0 = datetime(2026, 10, 20)
    keys = set()
    rows = []
    for _ in range(rng.randint(1, 120)):
        key = (rng.choice(users), d0 + timedelta(days=rng.randint(0, 80)), rng.choice(channels))
        if key in keys:
            continue
        keys.add(key)
        rows.append(
            (*key, rng.choice([0, 0, 1, 3]), rng.choice([0, 0, 1]), rng.choice([0, 0, 0, 1, 2]))
        )
    first_order = None
    if seed % 2:
        first_order = {
            u: datetime(2026, 10, 1, tzinfo=ZoneInfo("UTC")) + timedelta(hours=rng.randint(0, 2400))
            for u in users
            if rng.random() < 0.5
        }
    table = daily([(u, f"{day:%Y-%m-%d}", ch, b, c, p) for u, day, ch, b, c, p in rows])
    prof = None
    if first_order is not None:
        prof = profiles({u: at.isoformat() for u, at in first_order.items()})
    freq = "W" if seed % 3 else "M"
    got = funnel(table.sample(frac=1, random_state=seed), freq=freq, profiles=prof)
    want = brute_funnel(rows, freq, first_order)
    assert len(got) == len(want)
    for r in got.to_dict("records"):
        counts, rates, weakest, low = want[(r["channel"], r["period"])]
        assert [r["browse"], r["add_to_cart"], r["order"], r["repurchase"]] == counts
        got_rates = [r["rate_add_to_cart"], r["rate_order"], r["rate_repurchase"]]
        assert all(same(x, y) for x, y in zip(got_rates, rates, strict=True))
        assert (None if pd.isna(r["weakest_step"]) else r["weakest_step"]) == weakest
        assert same(r["weakest_rate"], low)
