"""Customer satisfaction (CSAT) from the ``tickets`` table (docs/analysis-tables.md).

Input: one row per live ticket with ``user_id``, ``ticket``, ``opened_at`` (UTC),
``closed_at``, ``issue_type`` (str or None), ``is_complaint`` (bool), ``satisfaction``
(1..5 or NaN: not rated) and ``handling_minutes`` (minutes, float or NaN).

Conventions used by every function here:

* **CSAT**: ``csat_mean`` is the mean of the ratings given (unrated tickets left out);
  ``satisfied_share`` is the usual CSAT score, the share of *rated* tickets rated 4 or 5
  (``satisfaction >= 4``, :data:`SATISFIED_AT`). Both are NaN when nothing was rated.
* A missing ``is_complaint`` counts as not a complaint; a missing ``issue_type`` (None, NaN
  or blank) is reported as ``"unknown"``.
* Times: ``opened_at`` is an instant (UTC). Window bounds are aware datetimes compared as
  instants; calendar periods (:func:`complaint_trend`) are taken in the zone given.
* Empty input gives an empty table with the documented columns.

Pure: no clock, no Kafka, Redis or Faust.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

SATISFIED_AT = 4.0
"""A rating at or above this (on the 1..5 scale) is "satisfied" (CSAT convention: 4 or 5)."""

UNKNOWN = "unknown"

CSAT_COLUMNS = (
    "issue_type",
    "tickets",
    "rated",
    "csat_mean",
    "satisfied_share",
    "complaints",
    "handling_minutes_mean",
)
BAND_COLUMNS = (
    "band",
    "lower_minutes",
    "upper_minutes",
    "tickets",
    "rated",
    "csat_mean",
    "satisfied_share",
)
TREND_COLUMNS = ("period", "complaints", "tickets", "complaint_rate")

DEFAULT_BANDS: tuple[float, ...] = (0, 30, 60, 240, 1440, math.inf)
"""Handling-time band edges in minutes: [0, 30), [30, 60), [60, 240), [240, 1440), [1440, inf)."""


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman rank correlation between two columns.

    ``rho`` and ``pvalue`` (two-sided, scipy's) are NaN when fewer than 3 pairs are
    available or either side is constant; ``n`` is the number of pairs used.
    """

    rho: float
    pvalue: float
    n: int


_TEXT_COLUMNS = {"issue_type", "band"}
_COUNT_COLUMNS = {"tickets", "rated", "complaints"}


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    """An empty table with the columns' usual dtypes (text, int64 counts, float, day)."""

    def dtype(column: str) -> str:
        if column in _TEXT_COLUMNS:
            return "str"
        if column in _COUNT_COLUMNS:
            return "int64"
        if column == "period":
            return "datetime64[ns]"
        return "float64"

    return pd.DataFrame({column: pd.Series(dtype=dtype(column)) for column in columns})


def _labels(values: pd.Series, missing: str) -> pd.Series:
    """Text labels: None, NaN and blank strings become ``missing``."""
    out = values.astype(object)
    blank = out.isna() | out.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    return out.where(~blank, missing).map(str).astype("str")


def _flags(values: pd.Series) -> pd.Series:
    """Booleans with missing values as False."""
    return values.astype("boolean").fillna(False).astype(bool)


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def _instants(values: pd.Series) -> pd.Series:
    """UTC-aware instants (naive values are read as UTC, the table's convention)."""
    return pd.to_datetime(values, utc=True)


def _aware(value: datetime | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{name} must be an aware datetime (got {value!r})")
    return pd.Timestamp(value).tz_convert("UTC")


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    num = numerator.astype(float)
    den = denominator.astype(float)
    return (num / den).where(den > 0, np.nan)


def _opened_between(
    tickets: pd.DataFrame, start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    lower, upper = _aware(start, "start"), _aware(end, "end")
    if lower is None and upper is None:
        return tickets
    opened = _instants(tickets["opened_at"])
    keep = pd.Series(True, index=tickets.index)
    if lower is not None:
        keep &= opened >= lower
    if upper is not None:
        keep &= opened < upper
    return tickets[keep.fillna(False).astype(bool)]


def csat_by_issue(
    tickets: pd.DataFrame, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """CSAT per issue type, worst first.

    Tickets are those opened in ``[start, end)`` (``opened_at`` compared as instants; both
    bounds optional, aware datetimes, a naive one raises ``ValueError``). With a bound given,
    tickets without ``opened_at`` are left out; with no bounds every ticket counts.

    Columns: ``issue_type`` (``"unknown"`` when missing), ``tickets`` (count), ``rated``
    (tickets with a satisfaction rating), ``csat_mean`` (mean rating, 1..5),
    ``satisfied_share`` (share of rated tickets rated >= 4, 0..1), ``complaints`` (tickets
    with ``is_complaint``), ``handling_minutes_mean`` (mean of the known handling times, in
    minutes; NaN when none). Rows sorted by ``csat_mean`` ascending (NaN last), then
    ``issue_type``.
    """
    frame = _opened_between(tickets, start, end)
    if frame.empty:
        return _empty(CSAT_COLUMNS)
    rating = _numbers(frame["satisfaction"])
    work = pd.DataFrame(
        {
            "issue_type": _labels(frame["issue_type"], UNKNOWN),
            "rating": rating,
            "rated": rating.notna().astype(int),
            "satisfied": (rating >= SATISFIED_AT).astype(int),
            "complaint": _flags(frame["is_complaint"]).astype(int),
            "handling": _numbers(frame["handling_minutes"]),
        }
    )
    groups = work.groupby("issue_type", sort=True)
    out = pd.DataFrame(
        {
            "tickets": groups.size().astype(int),
            "rated": groups["rated"].sum().astype(int),
            "csat_mean": groups["rating"].mean(),
            "satisfied": groups["satisfied"].sum(),
            "complaints": groups["complaint"].sum().astype(int),
            "handling_minutes_mean": groups["handling"].mean(),
        }
    )
    out["satisfied_share"] = _ratio(out["satisfied"], out["rated"])
    out = out.rename_axis("issue_type").reset_index()
    out = out.sort_values(["csat_mean", "issue_type"], na_position="last", kind="mergesort")
    return out[list(CSAT_COLUMNS)].reset_index(drop=True)


def _band_label(lower: float, upper: float) -> str:
    return f"[{lower:g}, {upper:g})"


def handling_vs_satisfaction(
    tickets: pd.DataFrame, bands: Sequence[float] = DEFAULT_BANDS
) -> pd.DataFrame:
    """Satisfaction per handling-time band.

    ``bands`` are increasing edges in minutes; band *i* is ``[bands[i], bands[i+1])``
    (left-closed, right-open; the last edge may be ``inf``). Tickets without a handling time
    or outside every band (e.g. negative) are left out. Every band is listed (in order) even
    when it has no ticket, unless ``tickets`` is empty (then the table is empty).

    Columns: ``band`` (label such as ``"[30, 60)"``), ``lower_minutes``, ``upper_minutes``,
    ``tickets``, ``rated``, ``csat_mean``, ``satisfied_share`` (as in :func:`csat_by_issue`).
    """
    edges = np.asarray([float(edge) for edge in bands], dtype=float)
    if edges.size < 2 or np.isnan(edges).any() or not np.all(np.diff(edges) > 0):
        raise ValueError(f"bands must be at least two increasing edges, got {tuple(bands)!r}")
    if tickets.empty:
        return _empty(BAND_COLUMNS)
    minutes = _numbers(tickets["handling_minutes"]).to_numpy()
    rating = _numbers(tickets["satisfaction"]).to_numpy()
    index = np.searchsorted(edges, minutes, side="right") - 1
    inside = ~np.isnan(minutes) & (index >= 0) & (index < edges.size - 1)
    rows = []
    for i in range(edges.size - 1):
        members = inside & (index == i)
        ratings = rating[members]
        ratings = ratings[~np.isnan(ratings)]
        rows.append(
            {
                "band": _band_label(edges[i], edges[i + 1]),
                "lower_minutes": float(edges[i]),
                "upper_minutes": float(edges[i + 1]),
                "tickets": int(members.sum()),
                "rated": int(ratings.size),
                "csat_mean": float(ratings.mean()) if ratings.size else math.nan,
                "satisfied_share": (
                    float((ratings >= SATISFIED_AT).mean()) if ratings.size else math.nan
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(BAND_COLUMNS))


def handling_satisfaction_correlation(tickets: pd.DataFrame) -> RankCorrelation:
    """Spearman rank correlation between ``handling_minutes`` and ``satisfaction``.

    Uses the tickets that have both (``scipy.stats.spearmanr``, ties get average ranks).
    A negative ``rho`` means longer handling goes with lower ratings.
    """
    if tickets.empty:
        return RankCorrelation(math.nan, math.nan, 0)
    minutes = _numbers(tickets["handling_minutes"])
    rating = _numbers(tickets["satisfaction"])
    both = minutes.notna() & rating.notna() & np.isfinite(minutes)
    x, y = minutes[both].to_numpy(), rating[both].to_numpy()
    n = int(x.size)
    if n < 3 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return RankCorrelation(math.nan, math.nan, n)
    result = stats.spearmanr(x, y)
    return RankCorrelation(float(result.statistic), float(result.pvalue), n)


def _local_days(instants: pd.Series, zone: tzinfo | str) -> pd.Series:
    """Local calendar day (naive midnight, ns) of UTC instants in ``zone``."""
    local = instants.dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
    return local.astype("datetime64[ns]")


def complaint_trend(
    tickets: pd.DataFrame, zone: tzinfo | str, freq: Literal["W", "M"] = "W"
) -> pd.DataFrame:
    """Complaints opened per local calendar period.

    ``opened_at`` is converted to ``zone`` (e.g. ``ZoneInfo("Asia/Shanghai")``); a ticket
    belongs to the local week (``freq="W"``: Monday 00:00 to the next Monday, local) or the
    local calendar month (``freq="M"``) it was opened in. Tickets without ``opened_at`` are
    left out.

    Columns: ``period`` (the period's first local day, naive midnight like ``daily.day``),
    ``complaints`` (tickets with ``is_complaint``), ``tickets`` (all tickets opened),
    ``complaint_rate`` (complaints / tickets, NaN for a period without tickets). Periods run
    from the first to the last with a ticket, gaps included (zero counts), in order.
    """
    if freq not in ("W", "M"):
        raise ValueError(f"freq must be 'W' or 'M', got {freq!r}")
    if tickets.empty:
        return _empty(TREND_COLUMNS)
    opened = _instants(tickets["opened_at"])
    known = opened.notna()
    if not known.any():
        return _empty(TREND_COLUMNS)
    days = _local_days(opened[known], zone)
    if freq == "W":
        starts = days - pd.to_timedelta(days.dt.day_of_week, unit="D")
    else:
        starts = days - pd.to_timedelta(days.dt.day - 1, unit="D")
    work = pd.DataFrame(
        {"period": starts, "complaint": _flags(tickets["is_complaint"][known]).astype(int)}
    )
    groups = work.groupby("period")
    counts = pd.DataFrame({"complaints": groups["complaint"].sum(), "tickets": groups.size()})
    every = pd.date_range(
        counts.index.min(), counts.index.max(), freq="W-MON" if freq == "W" else "MS"
    ).astype("datetime64[ns]")
    counts = counts.reindex(every, fill_value=0).astype(int)
    counts["complaint_rate"] = _ratio(counts["complaints"], counts["tickets"])
    out = counts.rename_axis("period").reset_index()
    out["period"] = out["period"].astype("datetime64[ns]")
    return out[list(TREND_COLUMNS)]
