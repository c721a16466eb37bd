"""``make bench-analyses``: the cost of the analysis path at a realistic size, as ratios
against the least any reader of the state must pay in the same run.

1. Folds a synthetic history (``BENCH_ANALYSES_SEED_CUSTOMERS`` customers, default 300, 14
   months, all four sources) through the pure fold as the worker would (the analysis state
   included), then replicates the values under new user ids up to
   ``BENCH_ANALYSES_CUSTOMERS`` (default 20,000) customers: a year and more of history each.
2. Baseline: ``json.loads`` of every value as the changelog holds it (JSON bytes): what
   reading the state costs before any analysis.
3. Measured: the analysis tables (``build_tables``), the derived tables of ``custpulse
   export``, a Parquet export, the CLV fit and predictions, and the monthly report for role
   ``all`` (content and rendering), each as seconds and as a ratio to the baseline; plus the
   analysis state's share of the value bytes.

Prints a table and writes ``bench-results/analyses.json``. No servers: the reading of the
changelog itself is the broker's cost and is measured by ``make bench``'s table numbers.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from custpulse.processors.analysis_tables import build_tables
from custpulse.processors.campaigns import load_campaigns
from custpulse.processors.replay import folded_values
from custpulse.processors.report import build_report
from custpulse.schemas.segments import load_library
from custpulse.state.exports import write_tables
from custpulse.streams.analysis_cli import export_tables, fit_clv
from custpulse.streams.report_html import write_report

END = datetime(2026, 11, 30, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")


def _seed_values(customers: int) -> dict[str, dict]:
    return folded_values(customers, 14, END, seed=23, zone=ZONE, envelope=500)


def main() -> None:
    seed_n = int(os.environ.get("BENCH_ANALYSES_SEED_CUSTOMERS", "300"))
    total = int(os.environ.get("BENCH_ANALYSES_CUSTOMERS", "20000"))
    t0 = time.perf_counter()
    seed = _seed_values(seed_n)
    fold_s = time.perf_counter() - t0
    raw = {}
    names = sorted(seed)
    for i in range(total):
        source = names[i % len(names)]
        raw[f"B{i:06d}"] = json.dumps(seed[source], ensure_ascii=False).encode()
    value_bytes = sum(len(v) for v in raw.values())
    ana_bytes = sum(len(json.dumps(seed[n].get("ana"), ensure_ascii=False).encode())
                    for n in names) * total / len(names)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    values = {k: json.loads(v) for k, v in raw.items()}
    timings["baseline: json.loads of every value"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tables = build_tables(values, library=load_library(), campaigns=load_campaigns(), zone=ZONE)
    timings["analysis tables (build_tables)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    derived = export_tables(tables)
    timings["derived tables (export)"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_tables(derived, "parquet", Path(tmp) / "parquet", ZONE)
        timings["parquet files"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit, _ = fit_clv(tables["profiles"], 90.0)
        timings["CLV fit and predictions"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = build_report(tables, period="month", role="all", zone=ZONE)
        timings["report content (month, all)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_report(report, Path(tmp) / "report", progress=False)
        timings["report rendering (charts, HTML)"] = time.perf_counter() - t0
    base = timings["baseline: json.loads of every value"]
    rows = {name: {"seconds": round(s, 3), "x_baseline": round(s / base, 2)}
            for name, s in timings.items()}
    out = {"customers": total, "seed_customers": seed_n, "seed_fold_seconds": round(fold_s, 1),
           "daily_rows": len(tables["daily"]), "baskets": len(tables["baskets"]),
           "value_bytes_per_customer": round(value_bytes / total),
           "analysis_state_share_of_value_bytes": round(ana_bytes / value_bytes, 3),
           "clv_converged": fit["converged_bgnbd"], "timings": rows}
    print(f"{total} customers ({seed_n} folded, replicated), {len(tables['daily'])} daily rows, "
          f"{round(value_bytes / total)} bytes per value "
          f"({100 * ana_bytes / value_bytes:.0f}% analysis state)")
    for name, row in rows.items():
        print(f"  {name:<40} {row['seconds']:>8.2f} s  {row['x_baseline']:>7.2f} x baseline")
    Path("bench-results").mkdir(exist_ok=True)
    Path("bench-results/analyses.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
