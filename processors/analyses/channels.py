"""Channel performance and return on spend: traffic, orders, revenue and cost per channel.

Inputs: the ``daily`` table (docs/analysis-tables.md; ``day`` is the naive local calendar
day, money CNY) and a costs table (``read_costs``: columns ``channel``, ``cost`` in CNY and
``period``). Output of ``channel_roi``, one row per channel over the local days
``[start, end]`` (both inclusive; ``None`` leaves that side open):

- ``uv``: distinct customers with any activity (a row with a positive ``events``,
  ``browse``, ``add_to_cart``, ``purchases`` or ``returns``);
- ``click``: behaviour records, ``sum(browse + add_to_cart)``;
- ``order``: purchases, ``sum(purchases)``;
- ``buyers``: distinct customers with ``purchases > 0``;
- ``conversion_rate``: ``buyers / uv`` (NaN when ``uv`` is 0);
- ``revenue``: ``sum(revenue)`` in CNY, summed in whole cents;
- ``cost``: sum of the channel's cost rows that apply to the window, in CNY; **NaN** when
  no costs are given or the channel has no applicable cost row (an unknown cost is not a
  zero cost);
- ``roi``: ``(revenue - cost) / cost``; NaN when the cost is NaN or 0.

A cost row applies to the window when it has no ``period``, or its period (a month
``YYYY-MM`` or a day ``YYYY-MM-DD``, local) lies inside ``[start, end]``; a period outside the
window is left out, and a period only partly inside raises ValueError (costs are not
prorated: pass whole periods or split the costs first). Every channel with activity in the
window or an applicable cost row has a row (a channel with a positive cost but no activity
has zeros and ``roi = -1``). Rows are sorted by revenue descending, then channel name.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROI_COLUMNS = [
    "channel", "uv", "click", "order", "buyers", "conversion_rate", "revenue", "cost", "roi",
]
COST_COLUMNS = ["channel", "cost", "period"]
HEADERS = {
    "channel": "channel",
    "渠道": "channel",
    "cost": "cost",
    "成本": "cost",
    "费用": "cost",
    "period": "period",
    "周期": "period",
}
_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_DAY = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T]00:00(?::00)?)?$")

DayLike = date | datetime | pd.Timestamp | str


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NaT:
        return True
    return isinstance(value, str) and not value.strip()


def _cost_value(value: Any, where: str) -> float:
    if _blank(value):
        raise ValueError(f"{where} has no cost.")
    if isinstance(value, bool):
        raise ValueError(f"{where} has a cost that is not a number: {value!r}.")
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:
        text = str(value).strip().replace(",", "").lstrip("¥￥").strip()
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{where} has a cost that is not a number: {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{where} has a cost that is not a finite number: {value!r}.")
    if number < 0:
        raise ValueError(f"{where} has a negative cost: {value!r}.")
    return number


def _period_value(value: Any, where: str) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, datetime | date):
        return f"{value:%Y-%m-%d}"
    text = str(value).strip()
    m = _MONTH.match(text)
    if m and 1 <= int(m.group(2)) <= 12:
        return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"
    m = _DAY.match(text)
    if m:
        try:
            return f"{date(int(m.group(1)), int(m.group(2)), int(m.group(3))):%Y-%m-%d}"
        except ValueError:
            pass
    raise ValueError(f"{where} has a period that is neither YYYY-MM nor YYYY-MM-DD: {value!r}.")


def _channel_value(value: Any, where: str) -> str:
    if _blank(value):
        raise ValueError(f"{where} has no channel.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def normalize_costs(frame: pd.DataFrame, source: str = "the costs table") -> pd.DataFrame:
    """A costs table with English or Chinese headers as columns ``channel`` (str), ``cost``
    (float CNY, >= 0) and ``period`` (``"YYYY-MM"``, ``"YYYY-MM-DD"`` or missing).

    Headers are matched ignoring case and surrounding spaces; other columns are dropped and
    blank rows skipped. Costs may carry thousands separators and a leading ¥. Raises
    ValueError (one sentence naming ``source`` and the row) for a missing channel or cost
    column, an empty or non-numeric or negative cost, an empty channel or a bad period.
    """
    names: dict[str, Any] = {}
    for column in frame.columns:
        key = HEADERS.get(str(column).strip().lstrip("\ufeff").lower())
        if key is None:
            continue
        if key in names:
            raise ValueError(
                f"{source} has two {key} columns, {names[key]!r} and {column!r}."
            )
        names[key] = column
    for key, accepted in (("channel", "channel or 渠道"), ("cost", "cost, 成本 or 费用")):
        if key not in names:
            raise ValueError(f"{source} has no {key} column (expected a header {accepted}).")
    channels: list[str] = []
    costs: list[float] = []
    periods: list[str | None] = []
    for i, raw in enumerate(frame.itertuples(index=False, name=None)):
        record = dict(zip(frame.columns, raw, strict=True))
        values = {key: record[column] for key, column in names.items()}
        if all(_blank(v) for v in values.values()):
            continue
        where = f"row {i + 2} of {source}"  # row 1 is the header
        channels.append(_channel_value(values["channel"], where))
        costs.append(_cost_value(values["cost"], where))
        periods.append(_period_value(values.get("period"), where))
    return pd.DataFrame(
        {
            "channel": pd.Series(channels, dtype=str),
            "cost": pd.Series(costs, dtype="float64"),
            "period": pd.Series(periods, dtype=str),  # None: missing
        }
    )


def read_costs(path: str | Path) -> pd.DataFrame:
    """Read a costs file: ``.csv`` (UTF-8, with or without a BOM) or ``.xlsx`` (first sheet).

    Returns ``normalize_costs`` of its content (columns ``channel``, ``cost``, ``period``).
    Raises ValueError with one sentence for an unreadable file, a missing column or a bad
    value.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValueError(f"costs file {path.name} is neither .csv nor .xlsx.")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        else:
            frame = pd.read_excel(path, engine="openpyxl", dtype=object)
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise ValueError(f"costs file {path.name} is not UTF-8 text.") from None
    except pd.errors.EmptyDataError:
        raise ValueError(f"costs file {path.name} is empty.") from None
    except Exception as exc:  # pandas parser, openpyxl and zipfile errors of a broken file
        kind = "CSV" if suffix == ".csv" else "xlsx workbook"
        raise ValueError(
            f"costs file {path.name} is not a readable {kind} ({type(exc).__name__})."
        ) from exc
    return normalize_costs(frame, f"costs file {path.name}")


def _day(value: DayLike | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        raise ValueError(f"{name} must be a naive local date, got {value!r}.")
    return stamp.normalize()


def _period_bounds(period: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    if len(period) == 7:
        p = pd.Period(period, freq="M")
        return p.start_time.normalize(), p.end_time.normalize()
    day = pd.Timestamp(period)
    return day, day


def _applicable_costs(
    costs: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.DataFrame:
    keep: list[bool] = []
    for channel, period in zip(costs["channel"], costs["period"], strict=True):
        if _blank(period):
            keep.append(True)
            continue
        first, last = _period_bounds(str(period))
        after_start = start is None or first >= start
        before_end = end is None or last <= end
        if after_start and before_end:
            keep.append(True)
        elif (end is not None and first > end) or (start is not None and last < start):
            keep.append(False)
        else:
            raise ValueError(
                f"the cost of {channel!r} for {period} is only partly inside the window; "
                "pass whole periods or split the costs first."
            )
    return costs[pd.Series(keep, index=costs.index, dtype=bool)]


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "channel": pd.Series([], dtype=str),
            **{c: pd.Series([], dtype="int64") for c in ("uv", "click", "order", "buyers")},
            **{c: pd.Series([], dtype="float64") for c in ROI_COLUMNS[5:]},
        }
    )


def channel_roi(
    daily: pd.DataFrame,
    costs: pd.DataFrame | None = None,
    start: DayLike | None = None,
    end: DayLike | None = None,
) -> pd.DataFrame:
    """Per-channel traffic, orders, revenue, cost and ROI over local days ``[start, end]``.

    ``costs``: as returned by ``read_costs`` (or any table ``normalize_costs`` accepts).
    ``start``/``end``: naive local dates (the day of a naive datetime), inclusive, ``None``
    for no bound. Columns ``ROI_COLUMNS``; see the module docstring for the definitions.
    """
    lo, hi = _day(start, "start"), _day(end, "end")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {lo.date()} is after end {hi.date()}.")
    cost_table = None if costs is None else normalize_costs(costs)
    if cost_table is not None:
        cost_table = _applicable_costs(cost_table, lo, hi)

    d = daily
    if len(d):
        day = pd.to_datetime(d["day"])
        if getattr(day.dt, "tz", None) is not None:
            raise ValueError("daily.day must be naive local days, not tz-aware times.")
        inside = pd.Series(True, index=d.index)
        if lo is not None:
            inside &= day >= lo
        if hi is not None:
            inside &= day <= hi
        d = d[inside]
    rows: dict[str, dict[str, Any]] = {}
    if len(d):
        channel = d["channel"].fillna("unknown").astype(str)
        counts = {c: d[c].fillna(0) for c in ("events", "browse", "add_to_cart", "purchases",
                                              "returns") if c in d.columns}
        active = pd.Series(False, index=d.index)
        for values in counts.values():
            active |= values > 0
        cents = np.round(d["revenue"].fillna(0.0).to_numpy(dtype="float64") * 100)
        frame = pd.DataFrame(
            {
                "channel": channel.to_numpy(),
                "uv": d["user_id"].where(active).to_numpy(),
                "buyers": d["user_id"].where(counts["purchases"] > 0).to_numpy(),
                "click": (counts["browse"] + counts["add_to_cart"]).to_numpy(),
                "order": counts["purchases"].to_numpy(),
                "cents": cents.astype("int64"),
            }
        )
        grouped = frame.groupby("channel").agg(
            uv=("uv", "nunique"),
            buyers=("buyers", "nunique"),
            click=("click", "sum"),
            order=("order", "sum"),
            cents=("cents", "sum"),
        )
        for name, g in grouped.iterrows():
            rows[str(name)] = {
                "uv": int(g["uv"]),
                "click": int(g["click"]),
                "order": int(g["order"]),
                "buyers": int(g["buyers"]),
                "revenue": int(g["cents"]) / 100,
            }
    cost_of: dict[str, float] = {}
    if cost_table is not None:
        for name, values in cost_table.groupby("channel")["cost"]:
            cost_of[str(name)] = math.fsum(values)
    for name in cost_of:
        rows.setdefault(name, {"uv": 0, "click": 0, "order": 0, "buyers": 0, "revenue": 0.0})
    if not rows:
        return _empty()
    records = []
    for name, r in rows.items():
        cost = cost_of.get(name, math.nan)
        records.append(
            {
                "channel": name,
                **r,
                "conversion_rate": r["buyers"] / r["uv"] if r["uv"] else math.nan,
                "cost": cost,
                "roi": (r["revenue"] - cost) / cost if cost > 0 else math.nan,
            }
        )
    records.sort(key=lambda r: (-r["revenue"], r["channel"]))
    out = pd.DataFrame.from_records(records, columns=ROI_COLUMNS)
    return out.astype(
        {"channel": str, "uv": "int64", "click": "int64", "order": "int64", "buyers": "int64",
         "conversion_rate": "float64", "revenue": "float64", "cost": "float64",
         "roi": "float64"}
    )
