"""Descriptive statistics over ``profiles`` and ``daily`` (docs/analysis-tables.md).

* ``profiles``: one row per customer, its profile view as of its own ``as_of`` (``user_id``,
  ``segment``, ``region``, ``member_level``, ``monetary_365d``, ``funnel_latest_step``...).
  If a ``user_id`` appears more than once, its last row is used.
* ``daily``: one row per customer, local day and channel with activity (``day`` is the local
  calendar day as a naive midnight, in the source zone; counts ``browse``, ``add_to_cart``,
  ``purchases``, ``events``; ``revenue`` in CNY). Missing counts are read as 0.

Conventions:

* Days are local calendar days (naive, like ``daily.day``). Day arguments accept a
  ``date``, a naive ``datetime``/``Timestamp`` (its time of day is dropped) or an ISO string;
  an aware datetime raises ``ValueError`` (a local day has no zone to convert from).
* A customer is *active* on a row when ``events > 0`` and a *buyer* when ``purchases > 0``.
* Money is summed in integer cents (the tables are exact to the cent), returned in CNY.
* Missing labels: ``segment`` -> ``"none"``, every other attribute -> ``"unknown"``.
* Shares are fractions in 0..1 (NaN when the denominator is 0). ``change_pct`` is in
  percent.
* Empty input gives an empty table with the documented columns.

Pure: no clock, no Kafka, Redis or Faust.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Literal

import numpy as np
import pandas as pd

NO_SEGMENT = "none"
UNKNOWN = "unknown"

COUNTS = ("browse", "add_to_cart", "purchases", "events")
"""The integer count columns of ``daily``."""

SEGMENT_COLUMNS = ("segment", "customers", "share", "revenue", "revenue_share")
REGION_COLUMNS = (
    "region",
    "customers",
    "customer_share",
    "active_customers",
    "active_share",
    "purchases",
    "revenue",
)
DIMENSIONS = ("segment", "channel", "region", "member_level", "funnel_step")
"""The dimensions of :func:`daily_by_dimension`, in output order."""
PROFILE_DIMENSIONS = {
    "segment": "segment",
    "region": "region",
    "member_level": "member_level",
    "funnel_step": "funnel_latest_step",
}
"""Dimension -> the ``profiles`` column holding it (``channel`` comes from ``daily``)."""
DIMENSION_COLUMNS = ("day", "dimension", "value", "customers", *COUNTS[:3], "revenue", "events")
METRICS = (
    "active_customers",
    "events",
    "browse",
    "add_to_cart",
    "purchases",
    "buyers",
    "revenue",
    "conversion_rate",
)
"""The metrics of :func:`period_over_period`, in output order."""
CHANGE_COLUMNS = ("metric", "current", "previous", "change", "change_pct")
PERIOD_DAYS = {"week": 7, "month": 30}
"""Length in days of the rolling periods of :func:`period_over_period`."""

MIN_BASE = 20
""":func:`biggest_movers`: a count metric (and a conversion rate, by its previous active
customers) needs at least this many in the previous period to be ranked."""
MIN_REVENUE_BASE = 100.0
""":func:`biggest_movers`: revenue needs at least this many CNY in the previous period."""

DayLike = date | datetime | pd.Timestamp | str

_TEXT = {"segment", "region", "dimension", "value", "metric"}
_FLOAT = {"share", "revenue", "revenue_share", "customer_share", "active_share"}
_FLOAT |= {"current", "previous", "change", "change_pct"}


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    def dtype(column: str) -> str:
        if column in _TEXT:
            return "str"
        if column in _FLOAT:
            return "float64"
        if column == "day":
            return "datetime64[ns]"
        return "int64"

    return pd.DataFrame({column: pd.Series(dtype=dtype(column)) for column in columns})


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _labels(values: pd.Series, missing: str) -> pd.Series:
    """Text labels: None, NaN and blank strings become ``missing``; 2.0 becomes ``"2"``."""
    out = values.astype(object)
    blank = out.isna() | out.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return out.where(~blank, missing).map(_text).astype("str")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """``frame[name]``, or all-missing when the table lacks that column."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(None, index=frame.index, dtype=object)


def _cents(values: pd.Series) -> pd.Series:
    """CNY amounts as integer cents (missing -> 0)."""
    amounts = pd.to_numeric(values, errors="coerce").astype(float).fillna(0.0)
    return pd.Series(np.rint(amounts.to_numpy() * 100).astype(np.int64), index=values.index)


def _ratio(numerator: pd.Series, denominator: pd.Series | float) -> pd.Series:
    """``numerator / denominator`` as floats, NaN where the denominator is not > 0."""
    num = numerator.astype(float)
    if isinstance(denominator, pd.Series):
        den = denominator.astype(float)
        return (num / den).where(den > 0, np.nan)
    return num / float(denominator) if denominator > 0 else num * np.nan


def _day(value: DayLike, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        raise ValueError(f"{name} must be a local day (date or naive datetime), got {value!r}")
    return stamp.normalize().as_unit("ns")


def _profiles(profiles: pd.DataFrame) -> pd.DataFrame:
    return profiles.drop_duplicates("user_id", keep="last")


def _daily(daily: pd.DataFrame) -> pd.DataFrame:
    """``daily`` with int counts, revenue in cents (``cents``) and ns days."""
    out = pd.DataFrame(
        {
            "user_id": daily["user_id"].astype("str"),
            "day": pd.to_datetime(daily["day"]).dt.normalize().astype("datetime64[ns]"),
            "channel": _labels(_column(daily, "channel"), UNKNOWN),
        },
        index=daily.index,
    )
    for count in COUNTS:
        values = pd.to_numeric(_column(daily, count), errors="coerce").fillna(0)
        out[count] = values.astype(np.int64)
    out["cents"] = _cents(_column(daily, "revenue"))
    for column in daily.columns:
        if column not in out.columns and column != "revenue":
            out[column] = daily[column]
    return out


def segment_shares(profiles: pd.DataFrame, revenue_column: str = "monetary_365d") -> pd.DataFrame:
    """Customers and revenue per value segment.

    Revenue is ``revenue_column`` of each profile (CNY; default ``monetary_365d``, the last
    365 days as of the customer's ``as_of``; missing -> 0). Columns: ``segment`` (``"none"``
    when missing), ``customers``, ``share`` (of all customers), ``revenue`` (CNY),
    ``revenue_share`` (of all revenue; NaN when the total is 0). Sorted by revenue
    descending, then customers descending, then segment.
    """
    if profiles.empty:
        return _empty(SEGMENT_COLUMNS)
    frame = _profiles(profiles)
    work = pd.DataFrame(
        {
            "segment": _labels(_column(frame, "segment"), NO_SEGMENT),
            "cents": _cents(_column(frame, revenue_column)),
        }
    )
    groups = work.groupby("segment")
    out = pd.DataFrame({"customers": groups.size(), "cents": groups["cents"].sum()})
    out = out.rename_axis("segment").reset_index()
    out["share"] = _ratio(out["customers"], float(out["customers"].sum()))
    out["revenue"] = out["cents"] / 100
    out["revenue_share"] = _ratio(out["cents"], float(out["cents"].sum()))
    out = out.sort_values(
        ["cents", "customers", "segment"], ascending=[False, False, True], kind="mergesort"
    )
    return out[list(SEGMENT_COLUMNS)].reset_index(drop=True)


def headline_share(
    table: pd.DataFrame, segment: str = "high_value", column: str = "revenue_share"
) -> float:
    """One segment's share from :func:`segment_shares` (default: the revenue share of
    ``high_value``), a fraction in 0..1.

    A segment absent from a non-empty table has share 0.0; an empty table gives NaN (as
    does a share that is NaN in the table, e.g. zero total revenue).
    """
    if table.empty:
        return math.nan
    rows = table.loc[table["segment"] == segment, column]
    if rows.empty:
        return math.nan if table[column].isna().all() else 0.0
    return float(rows.iloc[0])


def regional_density(
    profiles: pd.DataFrame,
    daily: pd.DataFrame | None = None,
    start: DayLike | None = None,
    end: DayLike | None = None,
) -> pd.DataFrame:
    """Customers, activity and purchases per region.

    Regions come from ``profiles`` (``"unknown"`` when missing); only customers in
    ``profiles`` count (``daily`` rows of other users are ignored). From ``daily``, over the
    local days ``start``..``end`` *inclusive* (either bound optional): ``active_customers``
    (customers with ``events > 0`` on some day), ``purchases`` (count) and ``revenue``
    (CNY). Without ``daily`` these three are NaN (not measured).

    Columns: ``region``, ``customers``, ``customer_share`` (of all customers),
    ``active_customers``, ``active_share`` (active / customers of the region),
    ``purchases``, ``revenue``. Sorted by customers descending, then region.
    """
    if profiles.empty:
        return _empty(REGION_COLUMNS)
    frame = _profiles(profiles)
    people = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype("str"),
            "region": _labels(_column(frame, "region"), UNKNOWN),
        }
    )
    out = people.groupby("region").size().rename("customers").to_frame()
    out["customer_share"] = _ratio(out["customers"], float(out["customers"].sum()))
    if daily is None:
        for column in ("active_customers", "active_share", "purchases", "revenue"):
            out[column] = math.nan
    else:
        rows = _daily(daily) if not daily.empty else None
        if rows is not None:
            if start is not None:
                rows = rows[rows["day"] >= _day(start, "start")]
            if end is not None:
                rows = rows[rows["day"] <= _day(end, "end")]
            rows = rows.merge(people, on="user_id", how="inner")
        if rows is None or rows.empty:
            active = purchases = cents = pd.Series(0, index=out.index, dtype=np.int64)
        else:
            groups = rows.groupby("region")
            active = rows[rows["events"] > 0].groupby("region")["user_id"].nunique()
            purchases = groups["purchases"].sum()
            cents = groups["cents"].sum()
        out["active_customers"] = active.reindex(out.index, fill_value=0).astype(np.int64)
        out["active_share"] = _ratio(out["active_customers"], out["customers"])
        out["purchases"] = purchases.reindex(out.index, fill_value=0).astype(np.int64)
        out["revenue"] = cents.reindex(out.index, fill_value=0) / 100
    out = out.rename_axis("region").reset_index()
    out = out.sort_values(["customers", "region"], ascending=[False, True], kind="mergesort")
    return out[list(REGION_COLUMNS)].reset_index(drop=True)


def daily_by_dimension(daily: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """Daily activity broken down by customer attribute, in long format.

    Each ``daily`` row is attributed to the customer's **current** profile attributes (the
    ones in ``profiles``, as of the customer's ``as_of``), not to the ones it had on that
    day: a customer who became ``high_value`` last week has all its older days under
    ``high_value`` too. ``channel`` is the row's own channel. A customer missing from
    ``profiles`` (or lacking an attribute) is under ``"none"`` (segment) / ``"unknown"``.

    Columns: ``day`` (local day), ``dimension`` (one of :data:`DIMENSIONS`: ``segment``,
    ``channel``, ``region``, ``member_level``, ``funnel_step`` = ``funnel_latest_step``),
    ``value`` (the attribute's value, as text), ``customers`` (distinct customers with a row
    that day), ``browse``, ``add_to_cart``, ``purchases``, ``revenue`` (CNY), ``events``.
    Within a day and dimension the rows partition the day's activity, so each dimension's
    counts add up to the day's totals. Sorted by day, dimension (in :data:`DIMENSIONS`
    order), value.
    """
    if daily.empty:
        return _empty(DIMENSION_COLUMNS)
    rows = _daily(daily)
    frame = _profiles(profiles) if not profiles.empty else profiles
    attributes = pd.DataFrame(
        {"user_id": _column(frame, "user_id").astype("str")}
        | {
            dimension: _column(frame, column).astype(object)
            for dimension, column in PROFILE_DIMENSIONS.items()
        }
    )
    rows = rows[["user_id", "day", "channel", *COUNTS, "cents"]].merge(
        attributes, on="user_id", how="left"
    )
    parts = []
    for dimension in DIMENSIONS:
        missing = NO_SEGMENT if dimension == "segment" else UNKNOWN
        values = rows[dimension] if dimension == "channel" else _labels(rows[dimension], missing)
        work = rows[["user_id", "day", *COUNTS, "cents"]].assign(value=values)
        groups = work.groupby(["day", "value"], sort=True)
        part = groups[[*COUNTS, "cents"]].sum()
        part["customers"] = groups["user_id"].nunique()
        part = part.reset_index()
        part["dimension"] = dimension
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["revenue"] = out["cents"] / 100
    out["dimension"] = out["dimension"].astype("str")
    order = {dimension: i for i, dimension in enumerate(DIMENSIONS)}
    out["order"] = out["dimension"].map(order)
    out = out.sort_values(["day", "order", "value"], kind="mergesort")
    for column in ("customers", *COUNTS):
        out[column] = out[column].astype(np.int64)
    out["day"] = out["day"].astype("datetime64[ns]")
    return out[list(DIMENSION_COLUMNS)].reset_index(drop=True)


def period_bounds(
    end_day: DayLike, period: Literal["week", "month"] = "week"
) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """``(current_first, current_last, previous_first, previous_last)`` local days (inclusive)
    of :func:`period_over_period`: the current period is the :data:`PERIOD_DAYS` days
    (week: 7, month: 30) ending at ``end_day`` inclusive, the previous one the same number of
    days just before it."""
    if period not in PERIOD_DAYS:
        raise ValueError(f"period must be one of {tuple(PERIOD_DAYS)}, got {period!r}")
    last = _day(end_day, "end_day")
    length = pd.Timedelta(days=PERIOD_DAYS[period])
    first = last - length + pd.Timedelta(days=1)
    return first, last, first - length, last - length


def _metrics(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The :data:`METRICS` of ``rows`` per ``keys`` (wide: one column per metric)."""
    groups = rows.groupby(keys, sort=True)
    out = groups[["events", "browse", "add_to_cart", "purchases", "cents"]].sum()
    out["active_customers"] = rows[rows["events"] > 0].groupby(keys)["user_id"].nunique()
    out["buyers"] = rows[rows["purchases"] > 0].groupby(keys)["user_id"].nunique()
    out = out.fillna({"active_customers": 0, "buyers": 0})
    out["revenue"] = out["cents"] / 100
    out["conversion_rate"] = _ratio(out["buyers"], out["active_customers"])
    return out[list(METRICS)].astype(float)


def period_over_period(
    daily: pd.DataFrame,
    end_day: DayLike,
    period: Literal["week", "month"] = "week",
    by: str | None = None,
) -> pd.DataFrame:
    """This period's activity against the previous period of the same length.

    Periods are **rolling**, in local days: ``week`` = the 7 days ending at ``end_day``
    (inclusive), ``month`` = the 30 days ending at ``end_day`` (not the calendar month, so
    both periods have the same number of days); the previous period is the same number of
    days right before (see :func:`period_bounds`).

    Metrics (:data:`METRICS`): ``active_customers`` (distinct customers with ``events > 0``),
    ``events``, ``browse``, ``add_to_cart``, ``purchases``, ``buyers`` (distinct customers
    with ``purchases > 0``), ``revenue`` (CNY), ``conversion_rate`` (buyers / active
    customers, 0..1, NaN without active customers).

    Columns: ``metric``, ``current``, ``previous``, ``change`` (current - previous; for the
    conversion rate in rate points), ``change_pct`` (100 * change / previous, in percent;
    NaN when previous is 0 or NaN). With ``by`` (a ``daily`` column such as ``"channel"``,
    or a profile attribute already joined onto ``daily``; missing values -> ``"unknown"``,
    ``"none"`` for ``segment``) the table has a leading column named ``by`` and the
    metrics of every value seen in either period (absent in a period -> 0).
    """
    if by is not None and by in CHANGE_COLUMNS:
        raise ValueError(f"by cannot be one of the output columns {CHANGE_COLUMNS}")
    first, last, previous_first, previous_last = period_bounds(end_day, period)
    columns = ([by] if by is not None else []) + list(CHANGE_COLUMNS)
    if daily.empty:
        return _empty(columns).astype({by: "str"} if by is not None else {})
    rows = _daily(daily)
    rows = rows[(rows["day"] >= previous_first) & (rows["day"] <= last)].copy()
    key = by if by is not None else "_all"
    if by is None:
        rows[key] = ""
    elif by != "channel":
        rows[key] = _labels(rows[key], NO_SEGMENT if by == "segment" else UNKNOWN)
    in_current = rows["day"] >= first
    keys = sorted(set(rows[key])) if by is not None else [""]
    if not keys:  # by a dimension, and no value has a row in either period
        return _empty(columns).astype({by: "str"})
    totals = [metric for metric in METRICS if metric != "conversion_rate"]
    current = _metrics(rows[in_current], [key]).reindex(keys)
    previous = _metrics(rows[~in_current], [key]).reindex(keys)
    for table in (current, previous):
        table[totals] = table[totals].fillna(0.0)
    parts = []
    for value in keys:
        part = pd.DataFrame(
            {
                "metric": list(METRICS),
                "current": current.loc[value, list(METRICS)].to_numpy(dtype=float),
                "previous": previous.loc[value, list(METRICS)].to_numpy(dtype=float),
            }
        )
        if by is not None:
            part.insert(0, by, value)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out["change"] = out["current"] - out["previous"]
    out["change_pct"] = (100 * out["change"] / out["previous"]).where(out["previous"] > 0)
    out["metric"] = out["metric"].astype("str")
    if by is not None:
        out[by] = out[by].astype("str")
    return out[columns]


def biggest_movers(
    table: pd.DataFrame,
    n: int = 5,
    min_base: int = MIN_BASE,
    min_revenue: float = MIN_REVENUE_BASE,
) -> pd.DataFrame:
    """The ``n`` rows of a :func:`period_over_period` table with the largest relative change.

    Ranked by ``|change_pct|`` descending (then ``|change|`` descending, then table order).
    Tiny bases are ignored, since a move from 1 to 3 is +200 % but says nothing: a row is
    ranked only if its ``previous`` is at least ``min_base`` (counts: default
    :data:`MIN_BASE` = 20) or ``min_revenue`` CNY (``revenue``: default
    :data:`MIN_REVENUE_BASE` = 100); a ``conversion_rate`` row only if its group's previous
    ``active_customers`` is at least ``min_base`` (and its own previous rate is > 0). Rows
    with NaN ``change_pct`` (previous 0) are never ranked. Same columns as ``table``.
    """
    if table.empty or n <= 0:
        return table.iloc[:0].reset_index(drop=True)
    keys = [column for column in table.columns if column not in CHANGE_COLUMNS]
    active = table[table["metric"] == "active_customers"]
    if keys:
        base_of = {tuple(row[keys]): row["previous"] for _, row in active.iterrows()}
        group = [tuple(row) for row in table[keys].itertuples(index=False, name=None)]
    else:
        base_of = {(): float(active["previous"].iloc[0])} if not active.empty else {}
        group = [()] * len(table)
    base = []
    for metric, previous, key in zip(table["metric"], table["previous"], group, strict=True):
        if metric == "conversion_rate":
            base.append(base_of.get(key, math.nan) >= min_base)
        elif metric == "revenue":
            base.append(previous >= min_revenue)
        else:
            base.append(previous >= min_base)
    keep = pd.Series(base, index=table.index, dtype=bool) & table["change_pct"].notna()
    ranked = table[keep].reset_index(drop=True)
    ranked["_pct"] = ranked["change_pct"].abs()
    ranked["_abs"] = ranked["change"].abs()
    ranked["_pos"] = np.arange(len(ranked))
    ranked = ranked.sort_values(["_pct", "_abs", "_pos"], ascending=[False, False, True])
    return ranked.drop(columns=["_pct", "_abs", "_pos"]).head(n).reset_index(drop=True)
