"""Time-driven transitions, segment-change alerts, campaign triggers on the real stack."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from custpulse.processors.campaigns import in_holdout
from custpulse.settings import Settings
from custpulse.state.redis_mirror import decode_profile

from .conftest import WorkerProcess, run_cli, wait_drained
from .kafka_read import read_topic

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_a_customer_who_does_nothing_moves_once_per_threshold(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    behavior = [{"user_id": "A", "behavior_type": "browse", "channel": "APP",
                 "behavior_time": (T + timedelta(hours=h)).isoformat()} for h in (0, 2, 4)]
    orders = [{"user_id": "A", "order_id": "O1", "amount": 2000, "status": "paid",
               "order_time": (T + timedelta(hours=4)).isoformat()}]
    # Inputs idle for 2 s stop holding the watermark back; moves of this year's history count
    # as fresh here (by default they are historical and trigger no campaign).
    worker.env.update(CUSTPULSE_IDLE_TIMEOUT_S="2", CUSTPULSE_FRESHNESS_HORIZON_S=str(400 * 86400))
    worker.start()
    for source, rows in (("behavior", behavior), ("orders", orders)):
        assert run_cli(settings, "import", source, str(write(tmp_path / f"{source}.jsonl", rows))
                       ).returncode == 0
    wait_drained(settings, worker)
    # Another customer's event 200 days later moves the watermark; A does nothing.
    clock = [{"user_id": "B", "behavior_type": "login",
              "behavior_time": (T + timedelta(days=200)).isoformat()}]
    assert run_cli(settings, "import", "behavior", str(write(tmp_path / "clock.jsonl", clock))
                   ).returncode == 0
    wait_drained(settings, worker)

    alerts = [json.loads(v) for _, v in read_topic(settings, settings.segment_changes_topic)]
    mine = [a for a in alerts if a["user_id"] == "A"]
    by_id = Counter(a["alert_id"] for a in mine)
    assert all(n == 1 for n in by_id.values()), by_id  # no redelivery here: exactly once
    timed = [(a["group"], a["old"], a["new"]) for a in mine if a["cause"].startswith("timer:")]
    assert [m for m in timed if m[0] == "activity"] == [
        ("activity", "active", "regular"), ("activity", "regular", "silent"),
        ("activity", "silent", "sleeping"), ("activity", "sleeping", "churned")]
    assert [m for m in timed if m[0] == "value"] == [
        ("value", "potential", "regular"), ("value", "regular", "churn_risk"),
        ("value", "churn_risk", "churned")]
    sleeping = next(a for a in mine if a["new"] == "sleeping")
    # fired at the deadline in event time (90 days after the last activity), not at the jump
    assert sleeping["event_time"] == (T + timedelta(hours=4, days=90)).isoformat(
        timespec="milliseconds")
    assert sleeping["late"] is False and "inactive_days" in sleeping["traits"]
    assert sleeping["rule_version"] == 1

    # Redis: the profile, the segment sets and the alert stream agree.
    client = redis.Redis.from_url(settings.redis_url)
    profile = decode_profile(client.hgetall(settings.redis_key("profile", "A")))
    assert (profile["segment"], profile["activity_segment"]) == ("churned", "churned")
    assert profile["frequency_30d"] == "0" and profile["orders_total"] == "1"
    assert client.sismember(settings.redis_key("segment", "value", "churned"), "A")
    assert not client.sismember(settings.redis_key("segment", "value", "potential"), "A")
    stream = client.xrange(settings.redis_key("alerts"))
    stream_ids = {json.loads(f[b"alert"])["alert_id"] for _, f in stream}
    assert set(by_id) <= stream_ids
    client.close()

    # Campaign triggers: entering potential, churn_risk, silent -> sleeping; holdout per customer.
    triggers = [json.loads(v) for _, v in read_topic(settings, settings.campaign_triggers_topic)]
    names = sorted(t["trigger"] for t in triggers if t["user_id"] == "A")
    assert names == ["churn_risk_winback", "new_potential_coupon", "sleeping_reactivation"]
    for t in triggers:
        assert t["holdout"] == in_holdout(t["user_id"], t["action"]["campaign"], 0.1)


def test_a_dead_letter_spike_raises_one_ops_alert(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    import time

    steady = [{"user_id": f"C{i % 7}", "behavior_type": "browse", "channel": "web",
               "behavior_time": (T + timedelta(seconds=3 * i)).isoformat()}
              for i in range(70 * 20)]  # 70 minutes of event time, 20 events a minute
    bad = [{"behavior_type": "browse", "behavior_time": T.isoformat()} for _ in range(100)]
    after = [{"user_id": "C0", "behavior_type": "login",
              "behavior_time": (T + timedelta(minutes=72)).isoformat()}]
    worker.start()
    for name, rows in (("steady", steady), ("bad", bad), ("after", after)):
        path = write(tmp_path / f"{name}.jsonl", rows)
        assert run_cli(settings, "import", "behavior", str(path), "--keep-order").returncode == 0
        wait_drained(settings, worker)
    deadline = time.monotonic() + 40
    alerts: list[dict] = []
    while time.monotonic() < deadline and not alerts:
        alerts = [json.loads(v) for _, v in read_topic(settings, settings.ops_alerts_topic)]
        time.sleep(1)
    time.sleep(12)  # one more check: the same window must not fire again
    alerts = [json.loads(v) for _, v in read_topic(settings, settings.ops_alerts_topic)]
    spikes = [a for a in alerts if a["kind"] == "deadletter_spike"]
    assert len(spikes) == 1, alerts
    assert spikes[0]["detail"]["window"]["deadletter"] == 100
    assert spikes[0]["value"] >= 0.5
