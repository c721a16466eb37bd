"""``make bench``: one worker end to end on the local stack, beside raw aiokafka in the same run.

1. Generates synthetic events (behaviour, orders, tickets, customers) and produces them to fresh
   input topics (own prefix, own consumer group, own Redis prefix; removed afterwards).
2. Baseline: raw aiokafka ``getmany`` + ``json.loads`` of those topics (no group commits).
3. End to end: a ``custpulse worker`` that is already up and idle, then the same events
   produced again to its topics; events/s = events / (time from the first produce until the
   group has committed everything, input and internal topics).
4. Latency: events sent at fixed rates (1,000 and 5,000 per second by default) for a fixed
   time, each from a new customer; for each, the time from produce to its first segment-change
   alert on ``<prefix>segment-changes``.
5. Backfill: a purchase history (``BENCH_BACKFILL_CUSTOMERS`` customers, default 23,000, over
   18 months, ~70,000 order rows with Chinese column names) written as a CSV and imported with
   ``custpulse import`` into a fresh, idle worker; the time from the import's start until every
   customer's profile is in Redis and the pipeline has no lag; the import alone; the tick
   records and customers ticked on ``<prefix>events``; bytes per customer in the table
   (changelog value) and in Redis (``MEMORY USAGE`` of the profile hash).

Prints a table and writes ``bench-results/bench.json``. Bounded: loopback only, fixed counts,
every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import csv
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
from typing import Any

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient

from custpulse.processors import synthetic
from custpulse.processors.importing import file_event_id
from custpulse.schemas.envelope import unpack
from custpulse.settings import SOURCES, Settings, load_settings
from custpulse.streams.admin import consumer_lag, ensure_topics

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "600"))
MONTHS = int(os.environ.get("BENCH_MONTHS", "3"))
LAT_RATES = [float(r) for r in os.environ.get("BENCH_LATENCY_RATES", "1000,5000").split(",")]
LAT_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "3"))
BACKFILL_CUSTOMERS = int(os.environ.get("BENCH_BACKFILL_CUSTOMERS", "23000"))
BACKFILL_MONTHS = 18
TIMEOUT_S = 900
TICK_SETTLE_S = 7.0
"""After the backfill: longer than the worker's TICK_MAX_DELAY_S."""
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


DEPLOYMENTS = {name: roles for name, roles in {
    "one": ("all",), "two": ("ingest", "fold"), "three": ("ingest", "fold", "fold"),
}.items() if name in os.environ.get("BENCH_DEPLOYMENTS", "one,two,three").split(",")}
"""A worker deployment on this machine: one process (ingest and fold), two (one per core), or
three (an ingest process and two fold processes sharing the events partitions: the fold is the
stage that needs the cores); ``BENCH_DEPLOYMENTS=two,three`` measures only the named ones."""


def start_workers(settings: Settings, log: Path, deployment: str) -> list[Any]:
    """The processes of ``deployment``, each logging to ``<log>-<role>.log``, once ready."""
    procs = []
    for n, role in enumerate(DEPLOYMENTS[deployment]):
        path = log.with_name(f"{log.stem}-{role}{n}.log")
        procs.append((start_worker(settings, path, role), path))
    for proc, path in procs:
        wait_ready(path, proc)
    return [proc for proc, _ in procs]


def start_worker(settings: Settings, log: Path, role: str = "all") -> subprocess.Popen[bytes]:
    cli = str(Path(sys.executable).with_name("custpulse"))
    command = [cli, "worker", "--log-level", "info", "--role", role]
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


async def latency(settings: Settings, rate: float, seconds: float, tag: str) -> list[float]:
    """Produce at ``rate``/s, each event from a brand-new customer (whose first evaluation
    always announces segments); measure produce -> the customer's first alert read back from
    ``<prefix>segment-changes`` by a consumer that was waiting at the end of the topic. Sends
    are paced in 1 ms steps and not awaited one by one (the producer batches, linger 0)."""
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
        deadline = time.monotonic() + seconds + 180
        while time.monotonic() < deadline and not (done.is_set() and len(samples) >= len(sent)):
            batches = await consumer.getmany(timeout_ms=20)
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
        pending = []
        for i in range(n):
            user = f"LAT-{tag}-{i}"
            # event times continue where the replayed history ends: a steady stream, not a
            # jump of the watermark (which would first fire every customer's deadlines)
            moment = HISTORY_END + timedelta(seconds=i / rate)
            rec = {"user_id": user, "behavior_type": "browse", "event_id": f"lat-{tag}-{i}",
                   "behavior_time": moment.isoformat(), "channel": "app"}
            delay = started + i / rate - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            sent[user] = time.perf_counter()
            pending.append(await producer.send(settings.topic("behavior"),
                                               json.dumps(rec).encode(), key=user.encode()))
        await asyncio.gather(*pending)
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


def write_history(path: Path) -> tuple[int, int]:
    """The backfill CSV (UTF-8, Chinese column names); returns (rows, customers)."""
    rows = synthetic.purchase_history(BACKFILL_CUSTOMERS, BACKFILL_MONTHS, HISTORY_END, seed=11)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows), len({row["客户ID"] for row in rows})


def redis_profiles(settings: Settings, client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=settings.redis_key("profile", "*"), count=10_000))


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every message of ``topic`` from the beginning up to its end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    out: list[Any] = []
    try:
        # <prefix>events and the table changelog both have CUSTPULSE_PARTITIONS partitions
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        started = time.monotonic()
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            if time.monotonic() - started > 120:
                raise TimeoutError(f"reading {topic} did not finish")
            for msgs in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    return out


def backfill(tag: str, log: Path, deployment: str = "one") -> dict[str, Any]:
    """The backfill scenario (see the module doc) on one worker deployment."""
    tag = f"{tag}{deployment}"
    settings = load_settings(topic_prefix=f"{tag}bf.", app_id=f"custpulse-{tag}bf",
                             redis_prefix=f"{tag}bf:")
    path = ROOT / ".stack" / "bench-backfill-orders.csv"
    rows, customers = write_history(path)
    client = redis.Redis.from_url(settings.redis_url)
    workers: list[Any] = []
    try:
        ensure_topics(settings)
        workers = start_workers(settings, log, deployment)
        cli = str(Path(sys.executable).with_name("custpulse"))
        t0 = time.perf_counter()
        subprocess.run([cli, "import", "orders", str(path), "--no-progress"],  # noqa: S603
                       env=env_for(settings), check=True, timeout=TIMEOUT_S,
                       stdout=subprocess.DEVNULL)
        imported = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("backfill did not finish")
            if len(redis_profiles(settings, client)) >= customers and sum(
                    r.lag for r in consumer_lag(settings)) == 0:
                break
            time.sleep(0.1)
        live = time.perf_counter()
        time.sleep(TICK_SETTLE_S)  # deadlines that waited for the backlog go out now
        wait_drained(settings)
        messages = asyncio.run(read_topic(settings, settings.events_topic))
        tick_records = ticked = events = 0
        for msg in messages:
            for record in unpack(msg.value):
                if record.get("kind") == "tick":
                    tick_records += 1
                    ticked += len(record.get("users") or [record.get("user_id")])
                else:
                    events += 1
        changelog = asyncio.run(read_topic(settings, f"{settings.app_id}-profiles-changelog"))
        latest = {msg.key: len(msg.value or b"") for msg in changelog}
        keys = redis_profiles(settings, client)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
            pipe.hget(key, "events_orders")
        answers = pipe.execute()
        hash_bytes = [b or 0 for b in answers[0::2]]
        orders_seen = sum(int(n or 0) for n in answers[1::2])
        every_key = list(client.scan_iter(match=settings.redis_prefix + "*", count=10_000))
        pipe = client.pipeline(transaction=False)
        for key in every_key:
            pipe.memory_usage(key, samples=0)
        all_bytes = sum(b or 0 for b in pipe.execute())
    finally:
        client.close()
        for worker in workers:
            stop_worker(worker)
        cleanup(settings)
    return {
        "backfill_rows": rows,
        "backfill_customers": customers,
        "backfill_months": BACKFILL_MONTHS,
        "backfill_import_s": round(imported - t0, 2),
        "backfill_import_rows_per_s": round(rows / (imported - t0)),
        "backfill_import_to_last_profile_live_s": round(live - t0, 2),
        "backfill_rows_per_s_end_to_end": round(rows / (live - t0)),
        "backfill_orders_in_redis_profiles": orders_seen,
        "backfill_events_on_events_topic": events,
        "backfill_tick_records": tick_records,
        "backfill_customers_ticked": ticked,
        "table_bytes_per_customer_mean": round(statistics.mean(latest.values())),
        "table_bytes_per_customer_max": max(latest.values()),
        "redis_profile_hash_bytes_mean": round(statistics.mean(hash_bytes)),
        "redis_bytes_per_customer_all_keys": round(all_bytes / customers),
    }


def import_alone(tag: str) -> dict[str, Any]:
    """``custpulse import`` of the backfill CSV with no worker running: the import rate alone."""
    settings = load_settings(topic_prefix=f"{tag}imp.", app_id=f"custpulse-{tag}imp",
                             redis_prefix=f"{tag}imp:")
    path = ROOT / ".stack" / "bench-backfill-orders.csv"
    rows, _ = write_history(path)
    cli = str(Path(sys.executable).with_name("custpulse"))
    try:
        ensure_topics(settings)
        t0 = time.perf_counter()
        subprocess.run([cli, "import", "orders", str(path), "--no-progress"],  # noqa: S603
                       env=env_for(settings), check=True, timeout=TIMEOUT_S,
                       stdout=subprocess.DEVNULL)
        took = time.perf_counter() - t0
    finally:
        cleanup(settings)
    return {"import_alone_rows": rows, "import_alone_s": round(took, 2),
            "import_alone_rows_per_s": round(rows / took)}


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()


def main() -> int:
    tag = "bench" + uuid.uuid4().hex[:6]
    if os.environ.get("BENCH_ONLY") == "backfill":  # iterate on the backfill alone
        for deployment in DEPLOYMENTS:
            result = backfill(tag, ROOT / ".stack" / "logs" / "bench-backfill-worker.log",
                              deployment)
            for key, value in result.items():
                print(f"{deployment:<4} {key:<40}  {value}")
        return 0
    base = load_settings(topic_prefix=f"{tag}.", app_id=f"custpulse-{tag}", redis_prefix=f"{tag}:")
    raw_settings = load_settings(topic_prefix=f"{tag}raw.", app_id=f"custpulse-{tag}raw",
                                 redis_prefix=f"{tag}raw:")
    items = records(base)
    n = len(items)
    print(f"bench: {n} events ({CUSTOMERS} customers, {MONTHS} months), loopback Kafka + Redis")
    log = ROOT / ".stack" / "logs" / "bench-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"events": n}
    try:
        ensure_topics(raw_settings)
        raw_items = [(raw_settings.topic(t.split(".", 1)[1]), k, r) for t, k, r in items]
        produce_s = asyncio.run(produce(raw_settings, raw_items))
        raw_s = asyncio.run(raw_consume(raw_settings, n))
    finally:
        cleanup(raw_settings)
    result["producer_events_per_s"] = round(n / produce_s)
    result["raw_aiokafka_consume_events_per_s"] = round(n / raw_s)
    for deployment, roles in DEPLOYMENTS.items():
        print(f"bench: end to end, {len(roles)} worker process(es): {', '.join(roles)}")
        settings = load_settings(topic_prefix=f"{tag}{deployment}.",
                                 app_id=f"custpulse-{tag}{deployment}",
                                 redis_prefix=f"{tag}{deployment}:")
        dep_items = [(settings.topic(t.split(".", 1)[1]), k, r) for t, k, r in items]
        workers: list[Any] = []
        latencies: dict[float, list[float]] = {}
        try:
            ensure_topics(settings)
            workers = start_workers(settings, log, deployment)
            t0 = time.perf_counter()
            asyncio.run(produce(settings, dep_items))
            e2e_s = wait_drained(settings) - t0
            for rate in LAT_RATES:
                print(f"bench: latency at {rate:.0f} events/s for {LAT_SECONDS:.0f} s")
                latencies[rate] = asyncio.run(latency(settings, rate, LAT_SECONDS,
                                                      f"{rate:.0f}"))
                wait_drained(settings)
        finally:
            for worker in workers:
                stop_worker(worker)
            cleanup(settings)
        result[f"{deployment}_end_to_end_events_per_s"] = round(n / e2e_s)
        result[f"{deployment}_ratio_end_to_end_to_raw"] = round((n / e2e_s) / (n / raw_s), 4)
        for rate, samples in latencies.items():
            key = f"{deployment}_latency_{rate:.0f}_per_s"
            result[f"{key}_sent"] = int(rate * LAT_SECONDS)
            result[f"{key}_samples"] = len(samples)
            result[f"{key}_p50_ms"] = (round(statistics.median(samples) * 1000, 1)
                                       if samples else None)
            result[f"{key}_p99_ms"] = round(pct(samples, 0.99) * 1000, 1) if samples else None
    result["latency_measures"] = "produce -> first segment-change alert on the topic"
    result.update(import_alone(tag))
    result["deployments"] = {d: list(r) for d, r in DEPLOYMENTS.items()}
    for deployment in DEPLOYMENTS:
        print(f"bench: backfill of {BACKFILL_CUSTOMERS} customers over {BACKFILL_MONTHS} "
              f"months, deployment {deployment}")
        part = backfill(tag, ROOT / ".stack" / "logs" / "bench-backfill-worker.log", deployment)
        result.update({(k if k.startswith(("table_", "redis_")) and deployment == "one"
                        else f"{deployment}_{k}"): v for k, v in part.items()})
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
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
