"""The churn trainer on real Kafka and Redis: every example learned once across a SIGKILL,
versions only going up, the model equal to one learned offline on the same examples, and
``custpulse model status --json`` equal to the trainer's Prometheus metrics."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import redis
from aiokafka import AIOKafkaProducer

from custpulse.processors import churn
from custpulse.processors.churn_model import ChurnModel
from custpulse.settings import Settings
from custpulse.state.churn_models import redis_key
from custpulse.streams.admin import ensure_topics

from .conftest import WorkerProcess, free_port, run_cli

N = 3000
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _examples() -> list[churn.Example]:
    rng = random.Random(21)
    out = []
    for n in range(N):
        x = {name: 0.0 for name in churn.FEATURES}
        x.update(recency_days=rng.uniform(0, 120), frequency_30d=float(rng.randint(0, 4)),
                 open_complaints=float(rng.random() < 0.1))
        logit = x["recency_days"] / 20 + 2 * x["open_complaints"] - x["frequency_30d"] - 3
        label = int(rng.random() < 1 / (1 + 2.718281828 ** -logit))
        at = T0 + timedelta(minutes=n)
        out.append(churn.Example(f"U{n % 500}", x, label, at, at))
    return out


async def _send(settings: Settings, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send(settings.churn_examples_topic, value, partition=0)
        await producer.flush()
    finally:
        await producer.stop()


def _status(settings: Settings) -> dict:
    result = run_cli(settings, "model", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait(settings: Settings, proc: WorkerProcess, labels: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        assert proc.proc is not None and proc.proc.poll() is None, proc.log()[-3000:]
        status = _status(settings)
        if status.get("labels_seen", 0) >= labels:
            return status
        time.sleep(0.5)
    raise AssertionError(f"trainer did not reach {labels} labels: {status}\n{proc.log()[-3000:]}")


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()  # noqa: S310
    out = {}
    for line in text.splitlines():
        if line.startswith("custpulse_churn") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_the_trainer_learns_each_example_once_across_a_crash(settings: Settings, tmp_path):
    ensure_topics(settings)
    examples = _examples()
    wire = [json.dumps(e.to_wire()).encode() for e in examples]
    poison = json.dumps(dict(examples[0].to_wire(), features={"recency_days": 1e200}))
    junk = [b"not json", b'{"user_id": "U1"}', b"[" * 5000 + b"]" * 5000,  # hostile producers
            poison.encode(), poison.replace("1e+200", "1" + "0" * 400).encode()]
    first, second = wire[:1800], junk + wire[1800:]
    asyncio.run(_send(settings, first))

    port = free_port()
    trainer = WorkerProcess(settings, tmp_path / "trainer.log")
    trainer.env.update(CUSTPULSE_ROLE="trainer", CUSTPULSE_CHURN_PUBLISH_EVERY="100",
                       CUSTPULSE_CHURN_MIN_LABELS="50", CUSTPULSE_CHURN_PUBLISH_INTERVAL_S="1",
                       CUSTPULSE_METRICS_PORT=str(port))
    trainer.start()
    try:
        before = _wait(settings, trainer, 600)
        trainer.stop(signal.SIGKILL)  # mid-stream: unpublished learning is lost with it
        asyncio.run(_send(settings, second))
        trainer.start()
        status = _wait(settings, trainer, N)
        time.sleep(2)  # one more interval: nothing more to publish
        status = _status(settings)
        metrics = _metrics(port)
    finally:
        trainer.stop()

    assert status["labels_seen"] == N  # each example once: none twice, none skipped
    assert status["model_version"] > before["model_version"]
    assert status["examples_offset"] == N + len(junk)
    # the same examples in the same order, learned offline, give the same model to the bit
    offline = ChurnModel(min_labels=50)
    for example in examples:
        offline.learn(example)
    assert status["weights"] == offline.status()["weights"]
    assert status["intercept"] == offline.status()["intercept"]
    assert status["roc_auc"] == offline.roc_auc() and status["roc_auc"] > 0.75
    assert status["positives_share"] == offline.status()["positives_share"]
    # Redis holds a copy of the newest version
    client = redis.Redis.from_url(settings.redis_url)
    copy = json.loads(client.get(redis_key(settings)))
    client.close()
    assert copy["model"]["version"] == status["model_version"]
    assert copy["offset"] == status["examples_offset"]
    # the trainer's metrics say what the status says
    assert metrics["custpulse_churn_model_version"] == status["model_version"]
    assert metrics["custpulse_churn_model_labels"] == N
    assert abs(metrics["custpulse_churn_model_roc_auc"] - status["roc_auc"]) < 1e-9
    assert abs(metrics["custpulse_churn_model_log_loss"] - status["log_loss"]) < 1e-9
    assert metrics["custpulse_churn_examples_skipped_total"] == len(junk)
