"""Churn end to end on real Kafka and Redis (issue 12): a generated history with a known churn
mechanism is replayed through a worker, which labels examples in the fold and sends them to
``cp.churn-examples``; a trainer learns them and publishes versions; the worker follows the
versions and scores. Afterwards every customer has a score in Redis from a published version,
every example is learned once, each label agrees with the raw history, and
``custpulse model status --json`` says what the trainer's Prometheus metrics say."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from custpulse.processors import churn, synthetic
from custpulse.settings import Settings
from custpulse.state.redis_mirror import scan_profiles

from .conftest import WorkerProcess, free_port, run_cli, wait_drained
from .kafka_read import read_topic

CUSTOMERS = 600
MONTHS = 15
END = datetime(2026, 10, 31, tzinfo=UTC)
TIME_FIELD = {"orders": "order_time", "tickets": "opened_at"}
H = timedelta(days=churn.HORIZON_DAYS)


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()  # noqa: S310
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("custpulse_churn") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _status(settings: Settings) -> dict:
    result = run_cli(settings, "model", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_replay_scores_every_customer_with_a_model_learned_from_its_labels(
        settings: Settings, tmp_path: Path):
    rows, _ = synthetic.churn_history(CUSTOMERS, MONTHS, END, seed=5)
    # Activity from one input, in time order (labels are decided at arrival, like alerts: an
    # input imported after the others would arrive late); tickets after it.
    del rows["behavior"]
    worker_port, trainer_port = free_port(), free_port()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.env.update(CUSTPULSE_IDLE_TIMEOUT_S="2", CUSTPULSE_METRICS_PORT=str(worker_port),
                      CUSTPULSE_DATA_DIR=str(tmp_path / "worker-data"))
    trainer = WorkerProcess(settings, tmp_path / "trainer.log")
    trainer.env.update(CUSTPULSE_ROLE="trainer", CUSTPULSE_METRICS_PORT=str(trainer_port),
                       CUSTPULSE_CHURN_PUBLISH_EVERY="200", CUSTPULSE_CHURN_PUBLISH_INTERVAL_S="1",
                       CUSTPULSE_DATA_DIR=str(tmp_path / "trainer-data"))
    worker.start()
    trainer.start()
    try:
        for source, items in rows.items():
            path = tmp_path / f"{source}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in items))
            result = run_cli(settings, "import", source, str(path), timeout=300)
            assert result.returncode == 0, result.stderr
        wait_drained(settings, worker, timeout=600)
        # the trainer has learned every example sent; then the worker scores with the newest
        # version every customer it had not scored yet
        examples = [json.loads(v) for _, v in read_topic(settings, settings.churn_examples_topic)]
        distinct = {(e["user_id"], e["labelled_at"]) for e in examples}
        deadline = time.monotonic() + 180
        status: dict = {}
        while time.monotonic() < deadline:
            assert trainer.proc is not None and trainer.proc.poll() is None, trainer.log()[-3000:]
            status = _status(settings)
            if status.get("labels_seen") == len(distinct):
                break
            time.sleep(1)
        assert status.get("labels_seen") == len(distinct), status
        time.sleep(2)  # one publish interval more: nothing left to publish
        status = _status(settings)
        profiles: dict = {}
        while time.monotonic() < deadline:
            wait_drained(settings, worker, timeout=300)
            profiles = scan_profiles(redis.Redis.from_url(settings.redis_url), settings)
            if profiles and all(p.get("churn_status") == "scored" for p in profiles.values()):
                break
            time.sleep(1)
        trainer_metrics, worker_metrics = _metrics(trainer_port), _metrics(worker_port)
    finally:
        worker.stop()
        trainer.stop()

    # every customer of the history has a score from a published version (the one the worker
    # held when it last evaluated the customer; it holds the newest now), with its factors
    users = {r["user_id"] for items in rows.values() for r in items}
    assert set(profiles) == users
    not_scored = {u: (p.get("churn_status"), p.get("churn_model_version"))
                  for u, p in profiles.items()
                  if p.get("churn_status") != "scored"
                  or not 1 <= int(p.get("churn_model_version") or 0) <= status["model_version"]}
    assert not not_scored, list(not_scored.items())[:5]
    for profile in profiles.values():
        p = float(profile["churn_probability"])
        assert 0.0 <= p <= 1.0
        assert profile["churn_band"] == ("high" if p >= 0.5 else "low")
        assert len(json.loads(profile["churn_factors"])) == 3
        assert datetime.fromisoformat(profile["churn_scored_at"]) <= datetime.fromisoformat(
            profile["as_of"])

    # labels agree with the raw history: a positive had no activity in the horizon after its
    # last activity, a negative had activity after its scoring and before the horizon
    activity: dict[str, list[datetime]] = {}
    for source in ("orders",):
        for r in rows[source]:
            moment = datetime.fromisoformat(r[TIME_FIELD[source]])  # ingest keeps milliseconds
            activity.setdefault(r["user_id"], []).append(
                moment.replace(microsecond=moment.microsecond // 1000 * 1000))
    # a tick that finds nothing to do re-sends what its cause made (it may be a redelivery):
    # the trainer learns each example once and counts the repeats
    assert trainer_metrics["custpulse_churn_examples_repeated_total"] == len(examples) - len(
        distinct)
    assert sum(e["label"] for e in examples) > 50 and sum(1 - e["label"] for e in examples) > 50
    last: dict[str, str] = {}
    firsts: dict[tuple[str, str], dict] = {}
    for example in examples:  # a repeat is the same example
        first = firsts.setdefault((example["user_id"], example["labelled_at"]), example)
        assert example == first
    for example in firsts.values():
        user = example["user_id"]
        labelled = datetime.fromisoformat(example["labelled_at"])
        scored = datetime.fromisoformat(example["scored_at"])
        assert scored <= labelled
        times = activity[user]
        if example["label"] == 1:
            active = labelled - H
            assert not [t for t in times if active < t < labelled], example
            assert active in times  # the horizon counts from a real activity
        else:
            assert [t for t in times if scored < t <= labelled], example
        assert last.get(user, "") < example["labelled_at"]  # increasing per customer
        last[user] = example["labelled_at"]

    # quality in the open: the model learned from the stream separates churners
    print(json.dumps({"customers": len(profiles), "examples_sent": len(examples),
                      "examples_learned": status["labels_seen"],
                      "positives": sum(e["label"] for e in firsts.values()),
                      "model_version": status["model_version"], "roc_auc": status["roc_auc"],
                      "log_loss": status["log_loss"],
                      "high_risk": sum(p["churn_band"] == "high" for p in profiles.values())}))
    assert status["roc_auc"] > 0.7, status
    assert trainer_metrics["custpulse_churn_model_version"] == status["model_version"]
    assert trainer_metrics["custpulse_churn_model_labels"] == status["labels_seen"]
    assert abs(trainer_metrics["custpulse_churn_model_roc_auc"] - status["roc_auc"]) < 1e-9
    assert abs(trainer_metrics["custpulse_churn_model_log_loss"] - status["log_loss"]) < 1e-9
    assert abs(trainer_metrics["custpulse_churn_model_positives_share"]
               - status["positives_share"]) < 1e-9
    sent = sum(v for k, v in worker_metrics.items()
               if k.startswith("custpulse_churn_examples_sent_total"))
    assert sent == len(examples)
    assert worker_metrics["custpulse_churn_scoring_model_version"] == status["model_version"]
