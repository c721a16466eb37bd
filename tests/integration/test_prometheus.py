"""A real Prometheus (Debian's) scrapes a running worker and trainer on real Kafka and Redis:
every Grafana dashboard query returns data, and every alert rule loads and evaluates (its
expression runs, and each series it reads exists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from custpulse.settings import Settings

from .conftest import ROOT, WorkerProcess, free_port, run_cli, wait_drained

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "custpulse.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"


def _query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _selectors(expr: str) -> set[str]:
    return set(re.findall(r"\b(custpulse_[a-z_]+|up)\b", expr))


def test_every_dashboard_query_and_rule_against_a_live_worker(settings: Settings,
                                                              tmp_path: Path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("Debian's prometheus is not installed: run `make monitoring`")
    data = tmp_path / "gen"
    assert run_cli(settings, "generate", "--customers", "20", "--months", "2", "--seed", "4",
                   "--out", str(data)).returncode == 0
    bad = tmp_path / "bad" / "behavior.jsonl"  # dead letters and a duplicate, so every
    bad.parent.mkdir()                           # labelled family has series
    bad.write_text(json.dumps({"user_id": "U2", "behavior_time": "someday"}) + "\n")
    again = tmp_path / "again" / "orders.jsonl"
    again.parent.mkdir()
    row = json.dumps({"user_id": "D1", "order_time": "2026-11-30 12:00:00", "amount": 10,
                      "order_id": "X1"})
    again.write_text(row + "\n" + row + "\n")
    worker_port, trainer_port, prom_port = free_port(), free_port(), free_port()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.env.update(CUSTPULSE_METRICS_PORT=str(worker_port),
                      CUSTPULSE_FRESHNESS_HORIZON_S=str(400 * 86400),
                      CUSTPULSE_DATA_DIR=str(tmp_path / "worker-data"))
    trainer = WorkerProcess(settings, tmp_path / "trainer.log")
    trainer.env.update(CUSTPULSE_ROLE="trainer", CUSTPULSE_METRICS_PORT=str(trainer_port),
                       CUSTPULSE_DATA_DIR=str(tmp_path / "trainer-data"))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "custpulse-worker",
             "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]},
            {"job_name": "custpulse-trainer",
             "static_configs": [{"targets": [f"127.0.0.1:{trainer_port}"]}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{prom_port}"
    worker.start()
    trainer.start()
    try:
        for folder in (data, bad.parent, again.parent):
            done = run_cli(settings, "import", "--dir", str(folder), "--no-progress",
                           timeout=300)
            assert done.returncode == 0, done.stderr
        wait_drained(settings, worker, timeout=300)
        # both targets up, the sampled gauges (every 15 s) scraped at least twice
        deadline = time.monotonic() + 120
        while True:
            up = _query(base, "up")["data"]["result"] if prom.poll() is None else []
            lag = _query(base, "custpulse_segment_customers")["data"]["result"] if up else []
            if len(up) == 2 and all(r["value"][1] == "1" for r in up) and lag:
                break
            assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, f"targets not scraped: {up}"
            time.sleep(1)
        time.sleep(3)  # a few more samples for rate() windows

        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
        empty = []
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m")
                answer = _query(base, expr)
                assert answer["status"] == "success", (panel["title"], expr, answer)
                if not answer["data"]["result"]:
                    empty.append((panel["title"], expr))
        assert empty == [], f"dashboard queries without data: {empty}"

        rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
        with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as answer:
            loaded = json.loads(answer.read())["data"]["groups"]
        health = {r["name"]: r["health"] for g in loaded for r in g["rules"]}
        assert set(health) == {r["alert"] for r in rules}
        for rule in rules:
            assert _query(base, rule["expr"])["status"] == "success", rule["alert"]
            for name in _selectors(rule["expr"]):
                series = _query(base, f"count({name})")["data"]["result"]
                assert series, (rule["alert"], name)
        deadline = time.monotonic() + 30
        while any(h != "ok" for h in health.values()) and time.monotonic() < deadline:
            time.sleep(1)
            with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as answer:
                loaded = json.loads(answer.read())["data"]["groups"]
            health = {r["name"]: r["health"] for g in loaded for r in g["rules"]}
        assert set(health.values()) == {"ok"}, health
        # a healthy pipeline fires nothing
        with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=10) as answer:
            firing = [a for a in json.loads(answer.read())["data"]["alerts"]
                      if a["state"] == "firing"]
        assert firing == []
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
        trainer.stop()
        worker.stop()
