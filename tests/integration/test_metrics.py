"""``/metrics`` of a running worker on real Kafka and Redis after a known input: every family
is there, by Prometheus conventions, with the values the input implies, and no label carries a
value from a record."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families

from custpulse.processors.campaigns import load_campaigns
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES, Settings
from custpulse.state.redis_mirror import SEGMENT_FIELDS, segment_key

from .conftest import WorkerProcess, free_port, run_cli, wait_drained
from .kafka_read import read_topic

FAMILIES = {
    "custpulse_events_in": "counter", "custpulse_events_accepted": "counter",
    "custpulse_events_deadlettered": "counter", "custpulse_events_duplicate": "counter",
    "custpulse_event_lag_seconds": "histogram", "custpulse_alert_lag_seconds": "histogram",
    "custpulse_fold_seconds": "histogram",
    "custpulse_watermark_timestamp_seconds": "gauge", "custpulse_watermark_lag_seconds": "gauge",
    "custpulse_consumer_lag_messages": "gauge", "custpulse_segment_customers": "gauge",
    "custpulse_segment_changes": "counter", "custpulse_campaign_triggers": "counter",
    "custpulse_ops_alerts": "counter", "custpulse_churn_scoring_model_version": "gauge",
    "custpulse_redis_write_errors": "counter", "custpulse_redis_write_retries": "counter",
    "custpulse_table_value_bytes": "histogram",
}


def _scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {m.name: m for m in text_string_to_metric_families(text)}, text


def _sum(family, name: str | None = None, **labels: str) -> float:
    return sum(s.value for s in family.samples
               if (name is None or s.name == name)
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_every_family_with_the_values_of_a_known_input(
        settings: Settings, worker: WorkerProcess, tmp_path: Path):
    data = tmp_path / "gen"
    assert run_cli(settings, "generate", "--customers", "30", "--months", "3", "--seed", "9",
                   "--out", str(data)).returncode == 0
    bad = tmp_path / "bad" / "behavior.jsonl"
    bad.parent.mkdir()
    bad.write_text("\n".join([
        json.dumps({"behavior_time": "2026-01-01 10:00:00", "phone": "13800138000"}),
        json.dumps({"user_id": "U2", "behavior_time": "someday"}),
        json.dumps({"user_id": "U3"}),
    ]) + "\n")
    again = tmp_path / "again" / "orders.jsonl"  # one order its system sends twice
    again.parent.mkdir()
    row = {"user_id": "DUP-1", "order_time": "2026-11-30 12:00:00", "amount": 10,
           "order_id": "X-DUP"}
    again.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    port = free_port()
    worker.env.update(CUSTPULSE_METRICS_PORT=str(port),
                      CUSTPULSE_FRESHNESS_HORIZON_S=str(400 * 86400))  # moves count as fresh
    worker.start()
    for folder in (data, bad.parent, again.parent):
        done = run_cli(settings, "import", "--dir", str(folder), "--no-progress", timeout=300)
        assert done.returncode == 0, done.stderr
    wait_drained(settings, worker, timeout=300)

    # the sampled gauges (every 15 s) catch up with the drained pipeline
    deadline = time.monotonic() + 90
    while True:
        families, text = _scrape(port)
        lag = families.get("custpulse_consumer_lag_messages")
        if lag is not None and lag.samples and all(s.value == 0 for s in lag.samples):
            break
        assert time.monotonic() < deadline, "consumer lag was never sampled at 0"
        time.sleep(2)

    # health: ready (recovered, partitions assigned) and live (beating, nothing stalled)
    for path in ("/healthz/ready", "/healthz/live"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            assert answer.status == 200, path
            body = json.loads(answer.read())
            assert body.get("ready", body.get("live")) is True, (path, body)

    for name, kind in FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
    # counters add up, per source: in = accepted + dead-lettered + duplicates
    for source in SOURCES:
        seen = _sum(families["custpulse_events_in"], source=source)
        parts = (_sum(families["custpulse_events_accepted"], source=source)
                 + _sum(families["custpulse_events_deadlettered"], source=source)
                 + _sum(families["custpulse_events_duplicate"], source=source))
        assert seen == parts, (source, seen, parts)
    assert _sum(families["custpulse_events_deadlettered"], source="behavior") == 3
    assert _sum(families["custpulse_events_duplicate"], source="orders") == 1
    accepted = _sum(families["custpulse_events_accepted"])
    assert _sum(families["custpulse_event_lag_seconds"],
                "custpulse_event_lag_seconds_count") == accepted > 0
    alerts = [json.loads(v) for _, v in read_topic(settings, settings.segment_changes_topic)]
    assert _sum(families["custpulse_segment_changes"]) == len(alerts) > 0
    fresh = [a for a in alerts if not a["historical"]]  # (CRM records dated years back are not)
    assert _sum(families["custpulse_alert_lag_seconds"],
                "custpulse_alert_lag_seconds_count") == len(fresh) > 0
    assert _sum(families["custpulse_campaign_triggers"]) > 0
    written = _sum(families["custpulse_table_value_bytes"], "custpulse_table_value_bytes_count")
    assert written >= 31
    assert _sum(families["custpulse_redis_write_errors"]) == 0
    # watermark per input, behind the wall clock by a known amount (the history ends today)
    marks = {s.labels["input"]: s.value for s in
             families["custpulse_watermark_timestamp_seconds"].samples}
    assert marks and all(v > 1.7e9 for v in marks.values())
    lags = [s.value for s in families["custpulse_watermark_lag_seconds"].samples]
    assert lags and all(v >= 0 for v in lags)
    # segment sizes are the Redis segment sets
    client = redis.Redis.from_url(settings.redis_url)
    library = load_library()
    for group, _field in SEGMENT_FIELDS:
        for rule in library.groups[group].rules:
            size = client.scard(segment_key(settings, group, rule.name))
            assert _sum(families["custpulse_segment_customers"], group=group,
                        segment=rule.name) == size
    assert sum(client.scard(segment_key(settings, "value", r.name))
               for r in library.groups["value"].rules) == 31
    client.close()
    # no label value comes from a record
    allowed = (set(SOURCES) | {"true", "false"} | {str(p) for p in range(64)}
               | {t.action.get("campaign") for t in load_campaigns().triggers}
               | {r.name for g in library.groups.values() for r in g.rules}
               | set(library.groups) | {"churn", "high", "low"}
               | {f"tag:{r.name}" for r in library.tags.rules}
               | {sc.name for sc in library.scores})
    for family in families.values():
        if not family.name.startswith("custpulse_"):
            continue  # the client library's process and platform collectors
        for sample in family.samples:
            for key, value in sample.labels.items():
                if key in ("le", "reason", "topic", "input", "kind", "error", "field", "label"):
                    continue  # bucket bounds and our own codes and names
                assert value in allowed, (family.name, key, value)
    for sample in families["custpulse_consumer_lag_messages"].samples:
        assert sample.labels["topic"].startswith(settings.topic_prefix)
    assert "13800138000" not in text and "DUP-1" not in text and "X-DUP" not in text
