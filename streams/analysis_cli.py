"""``custpulse export``, ``custpulse clv`` and ``custpulse report``: the analyses over the
workers' state (the profiles table, read from its changelog), without re-reading raw events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from custpulse.processors.analysis_tables import build_tables
from custpulse.processors.campaigns import load_campaigns
from custpulse.schemas.segments import load_library
from custpulse.settings import Settings
from custpulse.state.snapshot import read_values


def _bar(progress: bool, desc: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(total=0, desc=desc, unit="rec", file=sys.stderr, leave=False)


def load_tables(settings: Settings, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The analysis tables (docs/analysis-tables.md) of the workers' current state."""
    bar = _bar(progress, "reading the profiles changelog")

    def tell(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        values = read_values(settings, progress=tell)
    finally:
        if bar is not None:
            bar.close()
    return build_tables(values, library=load_library(settings.segments),
                        campaigns=load_campaigns(settings.campaigns), zone=settings.zone)


def export_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables ``custpulse export`` writes: the analysis tables and the aggregates the
    analyses derive from them (daily by dimension, basket item and pair counts, the CLV
    purchase summary)."""
    from custpulse.processors.analyses import basket, clv, descriptive  # noqa: PLC0415

    out = dict(tables)
    out["daily_by_dimension"] = descriptive.daily_by_dimension(tables["daily"],
                                                               tables["profiles"])
    items, pairs = basket.count_tables(tables["baskets"])
    out["basket_items"], out["basket_pairs"] = items, pairs
    out["clv_summary"] = clv.summary(tables["profiles"]).reset_index()
    return out


def export_command(settings: Settings, fmt: str, out: Path, progress: bool = True) -> int:
    from custpulse.state.exports import check_folder, write_tables  # noqa: PLC0415

    check_folder(out)  # before reading the whole state
    tables = export_tables(load_tables(settings, progress))
    for path in write_tables(tables, fmt, out, settings.zone):
        name = path.stem
        print(f"{path}  {len(tables[name])} rows")
    return 0


CLV_FIELDS = ("clv_p_alive", "clv_expected_purchases", "clv_expected_value",
              "clv_horizon_days", "clv_as_of")
"""Profile hash fields ``custpulse clv`` writes (the mirror never writes them, so they stay
until the next fit)."""


def fit_clv(profiles: pd.DataFrame, horizon_days: float) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit BG/NBD and Gamma-Gamma on the profiles' purchase summary (time unit: days) and
    predict each customer over ``horizon_days``: ``(fit report, predictions)``."""
    from custpulse.processors.analyses import clv  # noqa: PLC0415

    table = clv.summary(profiles)
    if table.empty:
        from custpulse.errors import InputError  # noqa: PLC0415

        raise InputError("No customer has an order yet: CLV needs purchase histories; run "
                         "a worker on order data first.")
    bg = clv.fit_bgnbd(table["frequency"], table["recency"], table["T"])
    gg = clv.fit_gamma_gamma(table["frequency"], table["monetary_value"])
    report = clv.fit_report(bg, gg, unit="day")
    as_of = pd.Timestamp(profiles["as_of"].max())
    report.update(horizon_days=float(horizon_days), as_of=as_of.isoformat())
    predictions = clv.predict(table, bg, gg, horizon_days)
    return report, predictions


def write_clv(settings: Settings, predictions: pd.DataFrame, horizon_days: float,
              as_of: str) -> int:
    """Write the predictions into the customers' Redis profile hashes; returns how many."""
    from custpulse.state.redis_mirror import profile_key  # noqa: PLC0415
    from custpulse.streams.admin import check_redis  # noqa: PLC0415

    client = check_redis(settings)
    pipe = client.pipeline(transaction=False)
    n = 0
    for user_id, row in predictions.iterrows():
        fields = {"clv_p_alive": f"{row['p_alive']:.6f}",
                  "clv_expected_purchases": f"{row['expected_purchases']:.6f}",
                  "clv_expected_value": ("" if pd.isna(row["expected_value"])
                                         else f"{row['expected_value']:.2f}"),
                  "clv_horizon_days": f"{horizon_days:g}", "clv_as_of": as_of}
        pipe.hset(profile_key(settings, str(user_id)), mapping=fields)
        n += 1
        if n % 1000 == 0:
            pipe.execute()
    pipe.execute()
    client.close()
    return n


def clv_command(settings: Settings, horizon_days: float, as_json: bool, write: bool,
                progress: bool = True) -> int:
    import json  # noqa: PLC0415

    tables = load_tables(settings, progress)
    report, predictions = fit_clv(tables["profiles"], horizon_days)
    if write:
        report["profiles_written"] = write_clv(settings, predictions, horizon_days,
                                               report["as_of"])
    if as_json:
        print(json.dumps(report, ensure_ascii=False, sort_keys=True))
    else:
        for key in sorted(report):
            print(f"{key:<28} {report[key]}")
    return 0


def report_command(settings: Settings, period: str, role: str, out: Path,
                   end: Any = None, costs: Path | None = None, progress: bool = True) -> int:
    from custpulse.errors import InputError  # noqa: PLC0415
    from custpulse.processors.report import ROLES, build_report, read_cost_file  # noqa: PLC0415
    from custpulse.state.exports import check_folder  # noqa: PLC0415
    from custpulse.streams.report_html import write_report  # noqa: PLC0415

    check_folder(out)  # before reading the whole state
    cost_table = None
    if costs is not None:
        try:
            cost_table = read_cost_file(costs)
        except (OSError, ValueError) as exc:
            raise InputError(f"Cannot read the cost file {costs}: {exc}") from exc
    tables = load_tables(settings, progress)
    if role not in ROLES:
        raise InputError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
    for one in [role]:
        try:
            report = build_report(tables, period=period, role=one, zone=settings.zone,
                                  end_day=end, costs=cost_table)
        except ValueError as exc:
            raise InputError(f"Cannot build the report: {exc}.") from exc
        try:
            page, summary = write_report(report, out, progress)
        except OSError as exc:
            raise InputError(f"Cannot write the report into {out}: "
                             f"{exc.strerror or exc}.") from exc
        print(f"{page}\n{summary}")
        for line in report.conclusions[:3]:
            print(f"  - {line}")
    return 0
