"""Campaign effect: contacted customers against the action's holdout.

Inputs (docs/analysis-tables.md): ``contacts`` (``user_id``, ``at`` UTC, ``action``,
``contacted``: False for a holdout customer, eligible but not contacted) and ``daily``
(``user_id``, ``day`` the local calendar day as a naive midnight in the source zone,
``purchases``, ``events``...).

Definitions:

* **Contact day**: ``at`` converted to ``zone`` (the zone ``daily.day`` is in, i.e.
  ``CUSTPULSE_SOURCE_TZ``), as a local calendar day ``d``.
* **Window**: the local days ``d+1 .. d+window_days`` (``(d, d+window_days]``): strictly
  after the contact day, whose own activity may precede the contact and is left out.
* **Converted**: some ``daily`` row of the customer in the window has ``purchases > 0``.
  **Returned**: some row in the window has ``events > 0`` (the customer came back at all).
* **Observed**: a window is complete when its last day ``d+window_days`` is at most
  ``observed_through`` (default: the last ``day`` in ``daily``, taken as fully observed).
  Incomplete contacts are left out of every rate and counted in ``excluded_incomplete``,
  so recent contacts do not look like non-conversions.
* Each contact counts: a customer contacted twice (or contacted once and held out once)
  contributes two trials. Contacts without ``at``, ``action`` or ``contacted`` are ignored.
* **Interval**: the difference contacted - holdout of two independent proportions with
  **Newcombe's hybrid score interval** (Newcombe 1998, method 10: built from the two
  Wilson score intervals, no continuity correction), 95 % by default. It behaves well for
  small samples and rates near 0 or 1, where the Wald interval under-covers.

Pure: no clock, no Kafka, Redis or Faust.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

COLUMNS = (
    "action",
    "contacted_n",
    "holdout_n",
    "contacted_conversions",
    "holdout_conversions",
    "contacted_conversion_rate",
    "holdout_conversion_rate",
    "conversion_diff",
    "conversion_diff_low",
    "conversion_diff_high",
    "contacted_returns",
    "holdout_returns",
    "contacted_return_rate",
    "holdout_return_rate",
    "return_diff",
    "return_diff_low",
    "return_diff_high",
    "excluded_incomplete",
    "observed_through",
)
"""Columns of :func:`campaign_effect`: counts are contacts, rates and differences are
fractions in 0..1 (differences in -1..1), ``observed_through`` the last local day counted as
observed."""

_COUNTS = (
    "contacted_n",
    "holdout_n",
    "contacted_conversions",
    "holdout_conversions",
    "contacted_returns",
    "holdout_returns",
    "excluded_incomplete",
)


def _empty() -> pd.DataFrame:
    def dtype(column: str) -> str:
        if column == "action":
            return "str"
        if column == "observed_through":
            return "datetime64[ns]"
        return "int64" if column in _COUNTS else "float64"

    return pd.DataFrame({column: pd.Series(dtype=dtype(column)) for column in COLUMNS})


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def _scalar_or_array(values: NDArray[np.float64]) -> NDArray[np.float64] | float:
    return float(values) if values.ndim == 0 else values


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, confidence: float = 0.95
) -> tuple[NDArray[np.float64] | float, NDArray[np.float64] | float]:
    """Wilson score interval ``(low, high)`` for a binomial proportion (no continuity
    correction). Vectorised over arrays; NaN where ``trials`` is 0.

    >>> low, high = wilson_interval(0, 10)
    >>> round(low, 4), round(high, 4)
    (0.0, 0.2775)
    """
    z = _z(confidence)
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At x = 0 (x = n) the lower (upper) bound is exactly 0 (1); clip rounding noise.
    low = np.where(x == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(x == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    return _scalar_or_array(low), _scalar_or_array(high)


def newcombe_interval(
    successes1: ArrayLike,
    trials1: ArrayLike,
    successes2: ArrayLike,
    trials2: ArrayLike,
    confidence: float = 0.95,
) -> tuple[NDArray[np.float64] | float, NDArray[np.float64] | float]:
    """Newcombe's hybrid score interval ``(low, high)`` for ``p1 - p2``, where
    ``p1 = successes1 / trials1`` and ``p2 = successes2 / trials2`` are independent.

    With ``(l1, u1)``, ``(l2, u2)`` the Wilson intervals of the two proportions::

        low  = (p1 - p2) - sqrt((p1 - l1)**2 + (u2 - p2)**2)
        high = (p1 - p2) + sqrt((u1 - p1)**2 + (p2 - l2)**2)

    Vectorised; NaN where either ``trials`` is 0.

    >>> low, high = newcombe_interval(56, 70, 48, 80)  # Newcombe (1998), example (a)
    >>> round(low, 4), round(high, 4)
    (0.0524, 0.3339)
    """
    x1, n1 = np.asarray(successes1, dtype=float), np.asarray(trials1, dtype=float)
    x2, n2 = np.asarray(successes2, dtype=float), np.asarray(trials2, dtype=float)
    l1, u1 = (np.asarray(bound) for bound in wilson_interval(x1, n1, confidence))
    l2, u2 = (np.asarray(bound) for bound in wilson_interval(x2, n2, confidence))
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        difference = p1 - p2
        low = difference - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        high = difference + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    valid = (n1 > 0) & (n2 > 0)
    low = np.where(valid, np.clip(low, -1.0, 1.0), np.nan)
    high = np.where(valid, np.clip(high, -1.0, 1.0), np.nan)
    return _scalar_or_array(low), _scalar_or_array(high)


def _observed_day(value: date | datetime | pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        raise ValueError(f"observed_through must be a local day, got {value!r}")
    return stamp.normalize().as_unit("ns")


def _next_day_with(windows: pd.DataFrame, days: pd.DataFrame) -> pd.Series:
    """For each window row (``user_id``, ``contact_day``), the first day in ``days``
    (``user_id``, ``day``) strictly after ``contact_day`` (NaT when none)."""
    if days.empty or windows.empty:
        return pd.Series(pd.NaT, index=windows.index, dtype="datetime64[ns]")
    left = windows[["user_id", "contact_day"]].reset_index().sort_values("contact_day")
    right = days.sort_values("day")
    matched = pd.merge_asof(
        left,
        right,
        left_on="contact_day",
        right_on="day",
        by="user_id",
        direction="forward",
        allow_exact_matches=False,
    )
    return matched.set_index("index")["day"].reindex(windows.index)


def campaign_effect(
    contacts: pd.DataFrame,
    daily: pd.DataFrame,
    window_days: int = 14,
    *,
    zone: tzinfo | str,
    confidence: float = 0.95,
    observed_through: date | datetime | pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Conversion and return rates of contacted customers against the holdout, per action.

    See the module docstring for the definitions (contact day in ``zone``, window
    ``(d, d+window_days]`` in local days, complete windows only, each contact counts,
    Newcombe hybrid score interval at ``confidence``).

    Columns (:data:`COLUMNS`), one row per action seen in ``contacts`` (sorted by action):
    ``contacted_n`` / ``holdout_n`` (complete contacts per arm), ``*_conversions`` and
    ``*_returns`` (how many of them converted / returned), ``*_conversion_rate`` and
    ``*_return_rate`` (fractions; NaN for an arm with no contact), ``conversion_diff`` and
    ``return_diff`` (contacted - holdout rate) with ``*_low`` / ``*_high`` their interval,
    ``excluded_incomplete`` (contacts of both arms whose window ends after
    ``observed_through``), ``observed_through`` (the last local day counted as observed;
    NaT when ``daily`` is empty and none is given: then every contact is incomplete).
    """
    if int(window_days) != window_days or window_days < 1:
        raise ValueError(f"window_days must be a positive integer, got {window_days!r}")
    _z(confidence)
    if contacts.empty:
        return _empty()
    frame = contacts[["user_id", "at", "action", "contacted"]]
    frame = frame[frame["at"].notna() & frame["action"].notna() & frame["contacted"].notna()]
    if frame.empty:
        return _empty()
    at = pd.to_datetime(frame["at"], utc=True)
    work = pd.DataFrame(
        {
            "user_id": frame["user_id"].astype("str"),
            "action": frame["action"].map(str).astype("str"),
            "contacted": frame["contacted"].astype(bool),
            "contact_day": at.dt.tz_convert(zone)
            .dt.tz_localize(None)
            .dt.normalize()
            .astype("datetime64[ns]"),
        }
    ).reset_index(drop=True)

    rows = pd.DataFrame(
        {
            "user_id": daily["user_id"].astype("str"),
            "day": pd.to_datetime(daily["day"]).dt.normalize().astype("datetime64[ns]"),
            "purchases": pd.to_numeric(daily["purchases"], errors="coerce").fillna(0),
            "events": pd.to_numeric(daily["events"], errors="coerce").fillna(0),
        }
    )
    if observed_through is not None:
        last = _observed_day(observed_through)
    elif rows.empty:
        last = pd.NaT
    else:
        last = pd.Timestamp(rows["day"].max()).as_unit("ns")

    window = pd.Timedelta(days=int(window_days))
    work["window_end"] = work["contact_day"] + window
    if pd.isna(last):
        work["complete"] = False
    else:
        work["complete"] = (work["window_end"] <= last).fillna(False).astype(bool)

    done = work[work["complete"]]
    for flag, column in (("converted", "purchases"), ("returned", "events")):
        days = rows.loc[rows[column] > 0, ["user_id", "day"]].drop_duplicates()
        following = _next_day_with(done, days)
        work[flag] = False
        work.loc[done.index, flag] = following.notna() & (following <= done["window_end"])
    work["converted"] = work["converted"].astype(bool)
    work["returned"] = work["returned"].astype(bool)

    actions = sorted(set(work["action"]))
    excluded = (~work["complete"]).groupby(work["action"]).sum()
    done = work[work["complete"]]
    arms = done.groupby(["action", "contacted"]).agg(
        n=("converted", "size"), conversions=("converted", "sum"), returns=("returned", "sum")
    )

    def arm(is_contacted: bool, column: str) -> NDArray[np.float64]:
        values = [
            arms[column].get((action, is_contacted), 0) if not arms.empty else 0
            for action in actions
        ]
        return np.asarray(values, dtype=float)

    out = pd.DataFrame({"action": pd.Series(actions, dtype="str")})
    n1, n0 = arm(True, "n"), arm(False, "n")
    out["contacted_n"], out["holdout_n"] = n1, n0
    for measure, count in (("conversion", "conversions"), ("return", "returns")):
        x1, x0 = arm(True, count), arm(False, count)
        out[f"contacted_{count}"], out[f"holdout_{count}"] = x1, x0
        with np.errstate(divide="ignore", invalid="ignore"):
            rate1 = np.where(n1 > 0, x1 / n1, np.nan)
            rate0 = np.where(n0 > 0, x0 / n0, np.nan)
        low, high = newcombe_interval(x1, n1, x0, n0, confidence)
        out[f"contacted_{measure}_rate"] = rate1
        out[f"holdout_{measure}_rate"] = rate0
        out[f"{measure}_diff"] = rate1 - rate0
        out[f"{measure}_diff_low"] = low
        out[f"{measure}_diff_high"] = high
    out["excluded_incomplete"] = [int(excluded.get(action, 0)) for action in actions]
    out["observed_through"] = pd.Series([last] * len(actions), dtype="datetime64[ns]")
    for column in _COUNTS:
        out[column] = out[column].astype(np.int64)
    return out[list(COLUMNS)]
