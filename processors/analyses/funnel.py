"""Conversion funnel per channel and period: browse -> add to cart -> order -> repurchase.

Input is the ``daily`` table (docs/analysis-tables.md): one row per customer, local day and
channel. ``day`` is the naive local calendar day (source zone, Asia/Shanghai by default);
periods are pandas periods of that local day:

- ``freq="W"``: weeks Monday..Sunday, ``period`` written ``"2026-11-30/2026-12-06"``
  (first and last local day);
- ``freq="M"``: calendar months, ``period`` written ``"2026-11"``.

Steps, each the number of distinct customers (``user_id``) of the channel and period with:

- ``browse``: a row with ``browse > 0``;
- ``add_to_cart``: a row with ``add_to_cart > 0``;
- ``order``: a row with ``purchases > 0``;
- ``repurchase``: a row with ``purchases > 0``, the customer being a repeat buyer in the
  period: they bought on a local day before the period (in ``daily``, any channel), or
  ``profiles.first_order_at`` is before the period's first local midnight (when ``profiles``
  is given), or they made two or more purchases in the period (all channels together).
  Being a repeat buyer is a property of the customer and the period, not of the channel:
  a channel's ``repurchase`` counts its buyers of the period who are repeat buyers. So a
  customer whose first purchase ever was in the app in May and the next on the web in June
  counts in June's web repurchase; if both fell in the same period, they count in that
  period's repurchase of both channels (within a period, purchases are not ordered).
  Hence, for every step, the customers of the ``"all"`` row are the union of the channels'.

Steps are counted independently, not nested: a customer who ordered without a recorded
browse counts in ``order`` but not in ``browse``, so a rate may exceed 1. ``daily`` keeps
400 days, so an earlier purchase older than that is only known through ``profiles``.

Rates: ``rate_add_to_cart = add_to_cart / browse``, ``rate_order = order / add_to_cart``,
``rate_repurchase = repurchase / order``; NaN when the denominator is 0. ``weakest_step`` is
the transition with the lowest rate (``"browse->add_to_cart"``, ``"add_to_cart->order"`` or
``"order->repurchase"``; the earliest in the funnel on a tie; missing when every rate is
NaN), ``weakest_rate`` its rate.

Every channel and period with at least one ``daily`` row has a row, and each period has a
row for channel ``"all"``: the same steps over all channels, each customer counted once.
Rows are sorted by period (chronologically), ``"all"`` first, then channel names.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

ALL = "all"
STEPS = ("browse", "add_to_cart", "order", "repurchase")
TRANSITIONS = (
    ("rate_add_to_cart", "browse->add_to_cart", "browse", "add_to_cart"),
    ("rate_order", "add_to_cart->order", "add_to_cart", "order"),
    ("rate_repurchase", "order->repurchase", "order", "repurchase"),
)
FUNNEL_COLUMNS = [
    "channel", "period", *STEPS, *(t[0] for t in TRANSITIONS), "weakest_step", "weakest_rate",
]
FREQS = {"W": "W-SUN", "M": "M"}
DEFAULT_SOURCE_TZ = "Asia/Shanghai"


def _empty() -> pd.DataFrame:
    cols: dict[str, pd.Series] = {
        "channel": pd.Series([], dtype=str),
        "period": pd.Series([], dtype=str),
    }
    for step in STEPS:
        cols[step] = pd.Series([], dtype="int64")
    for rate, *_ in TRANSITIONS:
        cols[rate] = pd.Series([], dtype="float64")
    cols["weakest_step"] = pd.Series([], dtype=str)
    cols["weakest_rate"] = pd.Series([], dtype="float64")
    return pd.DataFrame(cols)


def _first_order_days(profiles: pd.DataFrame, source_tz: str) -> pd.Series:
    """Local (naive) time of each customer's first order per ``profiles``, by user_id."""
    if "first_order_at" not in profiles.columns or "user_id" not in profiles.columns:
        raise ValueError("profiles must have the columns user_id and first_order_at.")
    at = pd.to_datetime(profiles["first_order_at"], utc=True)
    local = at.dt.tz_convert(source_tz).dt.tz_localize(None)
    return local.groupby(profiles["user_id"].astype(str).to_numpy()).min()


def funnel(
    daily: pd.DataFrame,
    freq: str = "W",
    profiles: pd.DataFrame | None = None,
    source_tz: str = DEFAULT_SOURCE_TZ,
) -> pd.DataFrame:
    """The funnel of every channel and period (see the module docstring).

    ``freq``: ``"W"`` (Monday..Sunday weeks of the local day) or ``"M"`` (months).
    ``profiles``: optional, its ``first_order_at`` (UTC or NaT) marks customers who bought
    before a period; it is compared in ``source_tz``, the zone of ``daily.day``.
    Columns: ``FUNNEL_COLUMNS``; an empty ``daily`` gives an empty table with them.
    """
    if freq not in FREQS:
        raise ValueError(f"freq must be 'W' or 'M', got {freq!r}.")
    if daily.empty:
        return _empty()
    day = pd.to_datetime(daily["day"])
    if getattr(day.dt, "tz", None) is not None:
        raise ValueError("daily.day must be naive local days, not tz-aware times.")
    d = pd.DataFrame(
        {
            "user_id": daily["user_id"].astype(str).to_numpy(),
            "channel": daily["channel"].fillna("unknown").astype(str).to_numpy(),
            "day": day.to_numpy(),
            "browse": daily["browse"].fillna(0).to_numpy(),
            "add_to_cart": daily["add_to_cart"].fillna(0).to_numpy(),
            "purchases": daily["purchases"].fillna(0).to_numpy(),
        }
    )
    if (d["channel"] == ALL).any():
        raise ValueError(f"daily has a channel named {ALL!r}, the name of the total row.")
    d["period"] = d["day"].dt.to_period(FREQS[freq])
    start = d["period"].dt.start_time

    buying = d["purchases"] > 0
    in_period = d["purchases"].where(buying, 0).groupby([d["user_id"], d["period"]])
    repeat = in_period.transform("sum") >= 2
    first_buy = d["day"].where(buying).groupby(d["user_id"]).transform("min")
    repeat |= (first_buy < start).fillna(False).astype(bool)  # NaT compares False
    if profiles is not None and not profiles.empty:
        first_order = _first_order_days(profiles, source_tz).reindex(d["user_id"])
        repeat |= pd.Series(first_order.to_numpy() < start.to_numpy(), index=d.index)

    marks = {
        "browse": d["browse"] > 0,
        "add_to_cart": d["add_to_cart"] > 0,
        "order": buying,
        "repurchase": buying & repeat,
    }
    for step, mask in marks.items():
        d[step] = d["user_id"].where(mask)
    by_channel = d.groupby(["channel", "period"])[list(STEPS)].nunique().reset_index()
    total = d.groupby("period")[list(STEPS)].nunique().reset_index()
    total.insert(0, "channel", ALL)
    out = pd.concat([total, by_channel], ignore_index=True)
    out["_not_all"] = out["channel"] != ALL
    out = out.sort_values(["period", "_not_all", "channel"], kind="stable")
    out = out.drop(columns="_not_all").reset_index(drop=True)
    out["period"] = out["period"].astype(str)
    for step in STEPS:
        out[step] = out[step].astype("int64")

    for rate, _, den, num in TRANSITIONS:
        denominator = out[den].astype("float64")
        out[rate] = (out[num] / denominator.where(denominator > 0)).astype("float64")
    rates = out[[t[0] for t in TRANSITIONS]].to_numpy(dtype="float64")
    names: list[str | None] = []
    lows: list[float] = []
    for row in rates:
        if np.isnan(row).all():
            names.append(None)
            lows.append(math.nan)
        else:
            i = int(np.nanargmin(row))
            names.append(TRANSITIONS[i][1])
            lows.append(float(row[i]))
    out["weakest_step"] = pd.Series(names, dtype=str)  # None: missing
    out["weakest_rate"] = pd.Series(lows, dtype="float64")
    out["channel"] = out["channel"].astype(str)
    return out[FUNNEL_COLUMNS]
