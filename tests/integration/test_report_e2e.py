"""End to end on the real servers: a generated history (14 months, all four sources) through a
worker on Kafka and Redis, then ``custpulse export`` (every format reads back equal to the
state), ``custpulse clv --json`` (fitted, written into the Redis profile hashes) and
``custpulse report`` (five parts, every chart, rendered by headless Chromium to a PNG that is
not blank; the summary CSV has the seed's columns)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from PIL import Image

from custpulse.processors.report import SUMMARY_COLUMNS
from custpulse.settings import Settings
from custpulse.state.exports import FORMATS, file_form, read_table
from custpulse.state.redis_mirror import profile_key
from custpulse.streams.analysis_cli import export_tables, load_tables

from .conftest import ROOT, WorkerProcess, run_cli, wait_drained

CUSTOMERS = 200
ARTIFACTS = ROOT / ".stack" / "e2e"
"""Where the rendered page is kept after the run (for people to look at)."""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Debian's chromium is not installed: run `make browser` (scripts/browser.sh)")


def _screenshot(page: Path, png: Path) -> None:
    subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1200,7000", f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=120)


@pytest.fixture
def history(settings: Settings, worker: WorkerProcess, tmp_path: Path) -> Settings:
    data = tmp_path / "gen"
    gen = ("--customers", str(CUSTOMERS), "--months", "14", "--seed", "5", "--end",
           "2026-11-30")
    assert run_cli(settings, "generate", *gen, "--out", str(data)).returncode == 0
    # a backfill: moves of the last 400 days count as fresh, so they send campaign triggers
    worker.env["CUSTPULSE_FRESHNESS_HORIZON_S"] = str(400 * 86400)
    worker.start()
    done = run_cli(settings, "import", "--dir", str(data), "--no-progress", timeout=600)
    assert done.returncode == 0, done.stderr
    wait_drained(settings, worker, timeout=600)
    # The worker keeps re-evaluating customers as their deadlines pass the watermark; the
    # commands below read the state it left (they need no worker), so it stops first and
    # every read sees the same state.
    assert worker.stop() == 0, worker.log()[-3000:]
    return settings


def test_history_to_exports_clv_and_a_rendered_report(history: Settings, tmp_path: Path):
    settings = history
    state = export_tables(load_tables(settings, progress=False))
    assert len(state["profiles"]) == CUSTOMERS
    for name in ("daily", "tickets", "baskets", "segment_changes", "contacts",
                 "daily_by_dimension", "basket_pairs", "clv_summary"):
        assert len(state[name]) > 0, name

    # exports: every table, every format, reads back equal to the state
    for fmt in FORMATS:
        out = tmp_path / f"export-{fmt}"
        done = run_cli(settings, "export", "--format", fmt, "--out", str(out), "--no-progress",
                       timeout=600)
        assert done.returncode == 0, done.stderr
        for name, frame in state.items():
            back = read_table(out / f"{name}.{fmt}", settings.zone, file_form(frame))
            pd.testing.assert_frame_equal(back, file_form(frame), check_dtype=False,
                                          check_exact=False, rtol=1e-12)

    # CLV: one JSON object, written back into the profiles
    done = run_cli(settings, "clv", "--json", "--no-progress", timeout=600)
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    for key in ("r", "alpha", "a", "b", "p", "q", "gamma", "log_likelihood_bgnbd",
                "log_likelihood_gamma_gamma", "customers", "time_unit"):
        assert key in fit, key
    assert fit["time_unit"] == "day" and fit["converged_bgnbd"]
    assert fit["customers"] == len(state["clv_summary"])
    assert all(fit[k] > 0 for k in ("r", "alpha", "a", "b", "p", "q", "gamma"))
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    some = state["clv_summary"]["user_id"].iloc[0]
    fields = client.hgetall(profile_key(settings, some))
    client.close()
    assert 0.0 <= float(fields["clv_p_alive"]) <= 1.0
    assert float(fields["clv_expected_purchases"]) >= 0.0
    assert fields["clv_horizon_days"] == "90"
    assert fields["as_of"]  # the mirrored profile is still there, CLV beside it

    # the report: five parts, every chart, offline, rendered to a PNG that is not blank
    out = tmp_path / "report"
    done = run_cli(settings, "report", "--period", "month", "--role", "all", "--out", str(out),
                   "--no-progress", timeout=600)
    assert done.returncode == 0, done.stderr
    pages = sorted(out.glob("report-all-month-*.html"))
    summaries = sorted(out.glob("report-all-month-*-summary.csv"))
    assert len(pages) == len(summaries) == 1
    page = pages[0].read_text(encoding="utf-8")
    for section in ("core-conclusion", "key-metrics", "breakdown", "problem-diagnosis",
                    "suggestions"):
        body = re.search(rf"<section id='{section}'>(.*?)</section>", page, re.S)
        assert body and body.group(1).strip(), section
    kinds = set(re.findall(r"data-kind='(\w+)'><img alt='[^']*' src='data:image/png;base64,",
                           page))
    assert kinds == {"line", "pie", "heatmap", "funnel"}
    assert not re.search(r"(src|href)=['\"]?https?:", page)
    summary = pd.read_csv(summaries[0], encoding="utf-8-sig")
    assert tuple(summary.columns) == SUMMARY_COLUMNS and len(summary) > 0
    png = tmp_path / "report.png"
    _screenshot(pages[0], png)
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 7000)
    pixels = np.asarray(image.resize((120, 700))).reshape(-1, 3)
    ink = float((pixels.min(axis=1) < 235).mean())
    assert ink > 0.05, f"the rendered page is nearly blank ({ink:.1%} non-white)"
    assert len({tuple(p) for p in pixels}) > 200  # charts and text, not one flat colour
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, ARTIFACTS / "report-all-month.png")
    shutil.copy(pages[0], ARTIFACTS / pages[0].name)
    (ARTIFACTS / "conclusions.txt").write_text(done.stdout, encoding="utf-8")
