"""``make bench``: one worker end to end on the local stack, beside raw aiokafka in the same run.

1. Generates synthetic events (behaviour, orders, tickets, customers) and produces them to fresh
   input topics (own prefix, own consumer group, own Redis prefix; removed afterwards).
2. Baseline: raw aiokafka ``getmany`` + ``json.loads`` of those topics (no group commits).
3. End to end: a ``custpulse worker`` that is already up and idle, then the same events
   produced again to its topics; events/s = events / (time from the first produce until the
   group has committed everything, input and internal topics).
4. Latency: events sent at a fixed rate for a fixed time, each from a new customer; for each,
   the time from produce to its first segment-change alert on ``<prefix>segment-changes``.

Prints a table and writes ``bench-results/bench.json``. Bounded: loopback only, fixed counts,
every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient

from custpulse.processors import synthetic
from custpulse.processors.importing import file_event_id
from custpulse.settings import SOURCES, Settings, load_settings
from custpulse.streams.admin import consumer_lag, ensure_topics

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "600"))
MONTHS = int(os.environ.get("BENCH_MONTHS", "3"))
LAT_RATE = float(os.environ.get("BENCH_LATENCY_RATE", "100"))
LAT_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "10"))
TIMEOUT_S = 900
HISTORY_END = datetime(2026, 10, 31, tzinfo=UTC)


def records(settings: Settings) -> list[tuple[str, str, dict]]:
    data = synthetic.generate(CUSTOMERS, MONTHS, HISTORY_END, seed=99)
    out = []
    for source in SOURCES:
        for i, rec in enumerate(data[source]):
            rec = dict(rec, event_id=file_event_id(source, "bench", i))
            out.append((settings.topic(source), str(rec["user_id"]), rec))
    return out


async def produce(settings: Settings, items: list[tuple[str, str, dict]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        for topic, key, rec in items:
            value = json.dumps(rec, ensure_ascii=False).encode()
            await producer.send(topic, value, key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(settings: Settings, expected: int) -> float:
    consumer = AIOKafkaConsumer(*settings.source_topics().values(),
                                bootstrap_servers=settings.kafka_bootstrap,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for msgs in batches.values():
                for msg in msgs:
                    json.loads(msg.value)
                    seen += 1
            if time.perf_counter() - started > TIMEOUT_S:
                raise TimeoutError("raw consume did not finish")
    finally:
        await consumer.stop()
    return time.perf_counter() - started


def env_for(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KAFKA_BOOTSTRAP=settings.kafka_bootstrap, REDIS_URL=settings.redis_url,
               CUSTPULSE_TOPIC_PREFIX=settings.topic_prefix, CUSTPULSE_APP_ID=settings.app_id,
               CUSTPULSE_REDIS_PREFIX=settings.redis_prefix, CUSTPULSE_ENV="dev",
               CUSTPULSE_LOG_LEVEL="warn", CUSTPULSE_DATA_DIR=str(ROOT / ".stack" / "bench-data"))
    return env


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    cli = str(Path(sys.executable).with_name("custpulse"))
    command = [cli, "worker", "--log-level", "info"]
    if os.environ.get("BENCH_PROFILE"):  # cProfile of the worker, written when it stops
        command = [sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], *command]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env_for(settings),  # noqa: S603
                                stdout=out, stderr=subprocess.STDOUT)


def wait_ready(log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
        if "Worker ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError("worker not ready")


def wait_drained(settings: Settings) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if sum(r.lag for r in consumer_lag(settings)) == 0:
            return time.perf_counter()
        time.sleep(0.25)
    raise TimeoutError("worker did not drain")


async def latency(settings: Settings, rate: float, seconds: float) -> list[float]:
    """Produce at ``rate``/s, each event from a brand-new customer (whose first evaluation
    always announces segments); measure produce -> the customer's first alert read back from
    ``<prefix>segment-changes`` by a consumer that was waiting at the end of the topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(settings.segment_changes_topic,
                                bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="latest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    sent: dict[str, float] = {}
    samples: dict[str, float] = {}
    done = asyncio.Event()

    async def listen() -> None:
        deadline = time.monotonic() + seconds + 120
        while time.monotonic() < deadline and not (done.is_set() and len(samples) >= len(sent)):
            batches = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for msgs in batches.values():
                for msg in msgs:
                    user = json.loads(msg.value)["user_id"]
                    if user in sent and user not in samples:
                        samples[user] = now - sent[user]

    listener = asyncio.create_task(listen())
    try:
        n = int(rate * seconds)
        started = time.perf_counter()
        for i in range(n):
            user = f"LAT-{i}"
            # event times continue where the replayed history ends: a steady stream, not a
            # jump of the watermark (which would first fire every customer's deadlines)
            moment = HISTORY_END + timedelta(seconds=i / rate)
            rec = {"user_id": user, "behavior_type": "browse", "event_id": f"lat-{i}",
                   "behavior_time": moment.isoformat(), "channel": "app"}
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[user] = time.perf_counter()
            await producer.send_and_wait(settings.topic("behavior"), json.dumps(rec).encode(),
                                         key=user.encode())
        done.set()
        await listener
    finally:
        await producer.stop()
        await consumer.stop()
    return list(samples.values())


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cleanup(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=settings.redis_prefix + "*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i:i + 1000])
    client.close()
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    ours = [t for t in admin.list_topics()
            if t.startswith((settings.topic_prefix, settings.app_id + "-"))]
    if ours:
        admin.delete_topics(ours)
    admin.close()


def main() -> int:
    tag = "bench" + uuid.uuid4().hex[:6]
    base = load_settings(topic_prefix=f"{tag}.", app_id=f"custpulse-{tag}", redis_prefix=f"{tag}:")
    raw_settings = load_settings(topic_prefix=f"{tag}raw.", app_id=f"custpulse-{tag}raw",
                                 redis_prefix=f"{tag}raw:")
    items = records(base)
    n = len(items)
    print(f"bench: {n} events ({CUSTOMERS} customers, {MONTHS} months), loopback Kafka + Redis")
    log = ROOT / ".stack" / "logs" / "bench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = None
    try:
        ensure_topics(raw_settings)
        raw_items = [(raw_settings.topic(t.split(".", 1)[1]), k, r) for t, k, r in items]
        produce_s = asyncio.run(produce(raw_settings, raw_items))
        raw_s = asyncio.run(raw_consume(raw_settings, n))
        ensure_topics(base)
        worker = start_worker(base, log)
        wait_ready(log, worker)
        t0 = time.perf_counter()
        asyncio.run(produce(base, items))
        t1 = wait_drained(base)
        e2e_s = t1 - t0
        samples = asyncio.run(latency(base, LAT_RATE, LAT_SECONDS))
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        cleanup(base)
        cleanup(raw_settings)
    result = {
        "events": n,
        "producer_events_per_s": round(n / produce_s),
        "raw_aiokafka_consume_events_per_s": round(n / raw_s),
        "end_to_end_events_per_s": round(n / e2e_s),
        "ratio_end_to_end_to_raw": round((n / e2e_s) / (n / raw_s), 4),
        "latency_rate_per_s": LAT_RATE,
        "latency_samples": len(samples),
        "latency_p50_ms": round(statistics.median(samples) * 1000, 1) if samples else None,
        "latency_p99_ms": round(pct(samples, 0.99) * 1000, 1) if samples else None,
        "latency_sent": int(LAT_RATE * LAT_SECONDS),
        "latency_measures": "produce -> first segment-change alert on the topic",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(f"written: {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
