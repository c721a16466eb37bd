"""Exact counts under real delivery, on the real Kafka and Redis: foreign producers without keys
that send an order again, a re-exported / Excel re-saved import file, and a multi-file backfill
against the same events sent interleaved in event time (docs/contract.md, "Identity of an
event", "Delivery", "Event time")."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaAdminClient, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from custpulse.processors.importing import parse_rows, prepare
from custpulse.schemas.mapping import load_mapping
from custpulse.settings import SOURCES, Settings
from custpulse.state.redis_mirror import decode_profile
from custpulse.state.tables import PROFILES
from custpulse.streams.admin import consumer_lag, ensure_topics

from .conftest import (
    TEST_SECRET,
    WorkerProcess,
    free_port,
    isolated_settings,
    run_cli,
    wait_drained,
)
from .kafka_read import end_offsets, read_events, read_topic, table_from_changelog
from .test_pipeline import observed_redis, observed_table

# ---------------------------------------------------------------------------------- helpers

def plain_producer(settings: Settings) -> KafkaProducer:
    """A foreign producer: plain kafka-python, JSON values, nothing of ours."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all",
        value_serializer=lambda v: json.dumps(v, ensure_ascii=False).encode(),
    )


def send_all(settings: Settings, messages: list[tuple[str, bytes | None, dict[str, Any]]]) -> None:
    """(topic, key, value) in order, each a new message, all acknowledged."""
    producer = plain_producer(settings)
    try:
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in messages]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=10)
    finally:
        producer.close(timeout=10)


def profile(settings: Settings, user_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return decode_profile(client.hgetall(settings.redis_key("profile", user_id)))
    finally:
        client.close()


def metric_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def per_source(samples: dict, name: str, source: str) -> float:
    """Sum of the samples ``name`` whose label ``source`` is ``source`` (over other labels)."""
    return sum(v for (n, labels), v in samples.items()
               if n == name and ("source", source) in labels)


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, bom: bool = False,
              newline: str = "\n") -> Path:
    text = newline.join(",".join(cells) for cells in [header, *rows]) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def import_ok(settings: Settings, *args: str) -> str:
    result = run_cli(settings, "import", *args, "--no-progress")
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(predicate, timeout: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited ({worker.proc.returncode}):\n{worker.log()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout} s:\n{worker.log()[-3000:]}")


def ingest_ready(settings: Settings) -> bool:
    """The worker's ingest group has joined (it has a committed offset or an assignment on the
    raw topics); approximated by the group being known to the broker with members."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        (group,) = admin.describe_consumer_groups([settings.ingest_group])
        if group.state != "Stable":
            return False
        topics = set()
        for member in group.members:
            assignment = member.member_assignment
            for topic, _ in getattr(assignment, "assignment", []) or []:
                topics.add(topic)
        return set(settings.source_topics().values()) <= topics
    except Exception:  # noqa: BLE001 - not there yet
        return False
    finally:
        admin.close()


def fold_ready(settings: Settings) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        (group,) = admin.describe_consumer_groups([settings.app_id])
        return group.state == "Stable" and bool(group.members)
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()


def wait_ready(settings: Settings, worker: WorkerProcess, timeout: float = 90) -> None:
    wait_for(lambda: ingest_ready(settings) and fold_ready(settings), timeout,
             "worker ready (ingest and fold groups stable)", worker)


def wait_alerts_settled(settings: Settings, worker: WorkerProcess, quiet_s: float = 6,
                        timeout: float = 90) -> None:
    """Drained, and the segment-change topic has not grown for ``quiet_s`` seconds (the idle
    timeout lets the watermark reach the end of the data, whose ticks come after the drain)."""
    wait_drained(settings, worker)
    deadline = time.monotonic() + timeout
    last = sum(end_offsets(settings, settings.segment_changes_topic).values())
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1)
        now = sum(end_offsets(settings, settings.segment_changes_topic).values())
        lag = sum(r.lag for r in consumer_lag(settings))
        if now != last or lag:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
    raise AssertionError(f"segment changes still growing after {timeout} s")


# ------------------------------------------------------------ 1. foreign producer, no keys

def test_a_foreign_producer_without_keys_and_with_redelivered_orders_counts_exactly(
    settings: Settings, worker: WorkerProcess
):
    so1 = {"订单编号": "SO1", "客户ID": "C1", "下单时间": "2026-10-01 10:00:00",
           "订单金额": "1299.00", "订单状态": "已支付"}
    orders = [
        so1,
        dict(so1),                        # its order system sends it again: a new message
        {**so1, "订单金额": "1299"},       # again, the amount written differently
        {"订单编号": "SO2", "客户ID": "C1", "下单时间": "2026-10-03 12:30:00",
         "订单金额": "88.50", "订单状态": "已支付"},
        {"订单编号": "1001", "客户ID": "C1", "下单时间": "2026-10-05 09:00:00",
         "订单金额": "100", "订单状态": "已支付"},
        # own event_id "1001" (no order number) for another customer
        {"event_id": "1001", "客户ID": "C3", "下单时间": "2026-10-05 09:00:00", "订单金额": "20"},
    ]
    tickets = [
        {"工单编号": "1001", "客户ID": "C1", "创建时间": "2026-10-06 09:00:00", "问题类型": "咨询",
         "满意度": "5"},
        {"event_id": "1001", "客户ID": "C3", "创建时间": "2026-10-06 09:00:00", "问题类型": "物流"},
    ]
    # a keyless behaviour event with no id at all, sent twice: named by log position, it
    # counts twice (nothing tells it from a genuine repeat; docs/contract.md "Log position")
    browse = {"客户ID": "C1", "行为类型": "浏览", "行为时间": "2026-10-02 08:00:00", "渠道": "APP"}

    ensure_topics(settings)  # the topics exist before the foreign producer writes
    port = free_port()
    worker.env["CUSTPULSE_METRICS_PORT"] = str(port)
    worker.start()
    send_all(settings, [(settings.topic("orders"), None, v) for v in orders]
             + [(settings.topic("tickets"), None, v) for v in tickets]
             + [(settings.topic("behavior"), None, browse)] * 2)
    wait_drained(settings, worker)

    assert read_topic(settings, settings.deadletter_topic) == []
    events = read_events(settings)
    ids = defaultdict(list)
    for e in events:
        ids[(e["source"], e["user_id"])].append(e["event_id"])
    c1_orders = ids[("orders", "C1")]
    assert len(c1_orders) == 5 and len(set(c1_orders)) == 3, c1_orders
    assert all(i.startswith("orders:k:") for i in c1_orders)
    assert ids[("tickets", "C1")][0].startswith("tickets:k:")
    c3 = ids[("orders", "C3")] + ids[("tickets", "C3")]
    assert len(c3) == 2 and c3[0].startswith("orders:k:") and c3[1].startswith("tickets:k:")
    browse_ids = ids[("behavior", "C1")]
    assert len(set(browse_ids)) == 2 and all(i.startswith("behavior:o:") for i in browse_ids)

    # Redis
    p1 = profile(settings, "C1")
    assert (p1["orders_total"], p1["events_orders"]) == ("3", "3"), p1
    assert float(p1["monetary_total"]) == 1299 + 88.5 + 100, p1["monetary_total"]
    assert (p1["events_tickets"], p1["tickets_total"]) == ("1", "1"), p1
    assert (p1["events_behavior"], p1["events_total"]) == ("2", "6"), p1
    p3 = profile(settings, "C3")
    assert (p3["events_orders"], p3["events_tickets"], p3["events_total"]) == ("1", "1", "2"), p3
    assert p3["orders_total"] == "1" and float(p3["monetary_total"]) == 20.0, p3

    # The table (changelog)
    table = table_from_changelog(settings, PROFILES)
    assert set(table) == {"C1", "C3"}
    assert table["C1"]["dedupe"]["by_source"] == {"orders": 3, "tickets": 1, "behavior": 2}
    assert len(table["C1"]["dedupe"]["ids"]) == 6
    assert table["C3"]["dedupe"]["by_source"] == {"orders": 1, "tickets": 1}
    assert len(table["C3"]["dedupe"]["ids"]) == 2

    # Metrics: in = accepted + dead-lettered + duplicates, per source
    samples = metric_samples(port)
    expected = {"orders": (6, 4, 2), "tickets": (2, 2, 0), "behavior": (2, 2, 0)}
    for source, (n_in, n_accepted, n_duplicate) in expected.items():
        got = tuple(per_source(samples, f"custpulse_events_{name}_total", source)
                    for name in ("in", "accepted", "duplicate", "deadlettered"))
        assert got == (n_in, n_accepted, n_duplicate, 0), (source, got)
        assert got[0] == got[1] + got[2] + got[3]


# ----------------------------------------------- 2. re-exported / re-saved import file

def test_a_reexported_file_with_appended_rows_imports_only_the_new_rows(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    header = ["客户ID", "下单时间", "订单金额", "订单状态", "渠道"]
    first = [
        ["A", "2026-10-01 10:00:00", "1299.00", "已支付", "APP"],
        ["A", "2026-10-02 11:30:00", "88.50", "已支付", "APP"],
        ["B", "2026-10-01 10:00:00", "1299.00", "已支付", "网页"],
        ["B", "2026-10-03 09:15:00", "20.00", "已支付", "网页"],
        ["B", "2026-10-03 09:15:00", "20.00", "已支付", "网页"],  # two identical rows: two orders
    ]
    # Excel's "CSV UTF-8" re-save: BOM, CRLF, trailing zeros and seconds gone, 2026/10/1 dates
    resaved = [
        ["A", "2026/10/1 10:00", "1299", "已支付", "APP"],
        ["A", "2026/10/2 11:30", "88.5", "已支付", "APP"],
        ["B", "2026/10/1 10:00", "1299", "已支付", "网页"],
        ["B", "2026/10/3 9:15", "20", "已支付", "网页"],
        ["B", "2026/10/3 9:15", "20", "已支付", "网页"],
        # appended: a new order of A, and a third identical row of B (a third order)
        ["A", "2026/10/4 8:00", "15", "已支付", "APP"],
        ["B", "2026/10/3 9:15", "20", "已支付", "网页"],
    ]
    worker.start()
    path = write_csv(tmp_path / "orders.csv", header, first)
    out = import_ok(settings, "orders", str(path))
    assert "rows read 5, sent 5, dead-lettered 0, failed 0" in out, out
    wait_drained(settings, worker)

    def money(user: str) -> float:
        return float(profile(settings, user)["monetary_total"])

    view = observed_redis(settings)
    assert view["orders"].to_dict() == {"A": 2, "B": 3}
    assert (money("A"), money("B")) == (1387.5, 1339.0)
    assert observed_table(settings)["ids"].to_dict() == {"A": 2, "B": 3}

    # The same file again: nothing changes.
    import_ok(settings, "orders", str(path))
    wait_drained(settings, worker)
    assert observed_redis(settings)["orders"].to_dict() == {"A": 2, "B": 3}

    export = write_csv(tmp_path / "orders_reexport.csv", header, resaved, bom=True,
                       newline="\r\n")
    out = import_ok(settings, "orders", str(export))
    assert "rows read 7, sent 7, dead-lettered 0, failed 0" in out, out
    wait_drained(settings, worker)
    after = observed_redis(settings)
    assert after["orders"].to_dict() == {"A": 3, "B": 4}  # exactly the 2 appended rows
    assert int(after["total"].sum()) == int(view["total"].sum()) + 2
    assert (money("A"), money("B")) == (1402.5, 1359.0)
    table = observed_table(settings)
    assert table["ids"].to_dict() == {"A": 3, "B": 4}
    assert table["orders"].to_dict() == {"A": 3, "B": 4}
    # On the wire: 5 + 5 + 7 events, 7 distinct ids, all content ids
    events = read_events(settings)
    assert len(events) == 17
    assert len({e["event_id"] for e in events}) == 7
    assert all(e["event_id"].startswith("orders:c:") for e in events)
    assert read_topic(settings, settings.deadletter_topic) == []


# ---------------------- 3. multi-file import vs. the same events interleaved by event time

@pytest.fixture
def other_settings(stack: Settings) -> Iterator[Settings]:
    """A second, separate test prefix (topics, groups, Redis keys), cleaned up like
    ``settings``."""
    yield from isolated_settings()


def importer_records(settings: Settings, folder: Path) -> list[tuple[str, Any]]:
    """(source, prepared row) of every file of ``folder``, as ``custpulse import`` reads them:
    the same records (content ids written into ``event_id``), keys and event times."""
    out = []
    for source in SOURCES:
        path = folder / f"{source}.jsonl"
        rows = prepare(parse_rows(path.read_bytes(), "jsonl"), load_mapping(source),
                       settings.zone, keep_order=True, secret=TEST_SECRET.encode())
        # the secret the CLI and the workers run with (env_for): ids hash personal values as
        # tokens under it
        assert all(r.ok and r.event_time is not None and r.key for r in rows), source
        out += [(source, r) for r in rows]
    return out


def alerts_by_customer(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Segment-change alerts per customer in topic order (keyed by user id: one partition per
    customer), without ``processing_time``."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, value in read_topic(settings, settings.segment_changes_topic):
        alert = json.loads(value)
        assert key.decode() == alert["user_id"]
        alert.pop("processing_time")
        out[alert["user_id"]].append(alert)
    return dict(out)


def test_sources_imported_one_after_another_through_multi_file_import_give_the_same_alerts_as_interleaved(  # noqa: E501
    settings: Settings, other_settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    data = tmp_path / "gen"
    result = run_cli(settings, "generate", "--customers", "15", "--months", "3", "--seed", "4",
                     "--end", "2026-10-31", "--out", str(data))
    assert result.returncode == 0, result.stderr
    records = importer_records(settings, data)
    n_events = len(records)
    assert n_events > 500

    (tmp_path / "b").mkdir()
    worker_b = WorkerProcess(other_settings, tmp_path / "b" / "worker.log")
    for w in (worker, worker_b):
        w.env["CUSTPULSE_IDLE_TIMEOUT_S"] = "2"
    try:
        worker.start()
        worker_b.start()
        wait_ready(settings, worker)
        wait_ready(other_settings, worker_b)

        # (a) all four files in one multi-file command, merged by event time by the importer
        out = import_ok(settings, *(f"{s}={data / f'{s}.jsonl'}" for s in SOURCES))
        assert out.count("failed 0") == 4, out
        wait_alerts_settled(settings, worker)

        # (b) the same records, interleaved in event time, straight to the raw topics by a plain
        # producer, keyed by user id (stable: equal times in source order, then file order)
        order = sorted(range(n_events), key=lambda i: (
            records[i][1].event_time.timestamp(), SOURCES.index(records[i][0]), i))
        send_all(other_settings, [
            (other_settings.topic(records[i][0]), records[i][1].key.encode(),
             records[i][1].record) for i in order])
        wait_alerts_settled(other_settings, worker_b)
    finally:
        worker_b.stop()

    # both counted every event once
    counts_a, counts_b = observed_table(settings), observed_table(other_settings)
    assert int(counts_a["ids"].sum()) == n_events
    assert counts_a.equals(counts_b)
    assert read_topic(settings, settings.deadletter_topic) == []
    assert read_topic(other_settings, other_settings.deadletter_topic) == []

    a, b = alerts_by_customer(settings), alerts_by_customer(other_settings)
    assert sum(map(len, a.values())) > len(a) > 0
    differing = {}
    for user in sorted(set(a) | set(b)):
        xs, ys = a.get(user, []), b.get(user, [])
        if xs != ys:
            first = next((i for i, (x, y) in enumerate(zip(xs, ys, strict=False)) if x != y),
                         min(len(xs), len(ys)))
            differing[user] = {
                "alerts": (len(xs), len(ys)), "first_difference_at": first,
                "a": brief(xs[first]) if first < len(xs) else None,
                "b": brief(ys[first]) if first < len(ys) else None,
                "late": (sum(x["late"] for x in xs), sum(y["late"] for y in ys)),
            }
    assert not differing, (
        f"{len(differing)} of {len(set(a) | set(b))} customers get other alerts; customers "
        f"whose events reach the fold out of event-time order: (a) {out_of_order(settings)}, "
        f"(b) {out_of_order(other_settings)}\n"
        + json.dumps(differing, ensure_ascii=False, indent=1)[:6000])


def brief(alert: dict[str, Any]) -> str:
    return (f"{alert['group']} {alert['old']}->{alert['new']} at {alert['event_time']} "
            f"cause {alert['cause'][:20]} late={alert['late']}")


def out_of_order(settings: Settings) -> int:
    """Customers whose events arrive at the fold (on ``<prefix>events``, in log order) with an
    event earlier than the one before it."""
    times: dict[str, list[str]] = defaultdict(list)
    for event in read_events(settings):
        times[event["user_id"]].append(event["event_time"])
    return sum(any(b < a for a, b in zip(ts, ts[1:], strict=False)) for ts in times.values())
