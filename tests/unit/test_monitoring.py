"""Monitoring as code: the Prometheus config and alert rules pass promtool's checks, and each
alert fires on the series that mean trouble and stays quiet on healthy ones (promtool's rule
unit tests, deploy/prometheus/rules_test.yml). Every metric a rule reads is one the worker
exports. promtool comes from Debian's prometheus package (`make monitoring`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from custpulse.streams.metrics import create_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run `make monitoring` (scripts/monitoring.sh)")
    return path


@pytest.mark.parametrize("args", [["check", "config", "prometheus.yml"],
                                  ["check", "rules", "rules.yml"],
                                  ["test", "rules", "rules_test.yml"]])
def test_promtool_accepts_the_config_and_the_rules_behave(args):
    done = subprocess.run([_promtool(), *args], cwd=DEPLOY, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_and_reads_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "rules.yml").read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((DEPLOY / "rules_test.yml").read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"]
              if case.get("exp_alerts")}
    assert {r["alert"] for r in rules} == tested
    registry = CollectorRegistry()
    create_metrics(registry)
    # names as exposed: a counter ``x`` is ``x_total``; histograms add _bucket/_sum/_count
    declared = {"up"}
    for family in registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        declared |= {family.name + s for s in suffixes.get(family.type, ("",))}
    used = {m for r in rules for m in re.findall(r"\b(custpulse_[a-z_]+|up)\b", r["expr"])}
    assert used and used <= declared, used - declared
