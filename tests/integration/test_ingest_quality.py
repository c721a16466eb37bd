"""Ingest quality on the real stack: exact outcome counts, no raw PII anywhere past ingest,
exact counts after SIGKILL and redeliveries."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from pathlib import Path

import pandas as pd
import redis
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from custpulse.settings import SOURCES, Settings

from .conftest import WorkerProcess, free_port, run_cli, wait_drained
from .kafka_read import read_events, read_topic
from .test_pipeline import expected_counts, observed_redis, observed_table

GEN = ("--customers", "25", "--months", "2", "--seed", "5", "--end", "2026-10-31")


def raw_pii_values(folder: Path) -> set[str]:
    """Every personal value in the generated files, in the forms a leak would show."""
    values: set[str] = set()
    for line in (folder / "customers.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for name in ("user_name", "phone", "id_number", "email", "address"):
            if rec.get(name):
                values.add(str(rec[name]))
        digits = re.sub(r"\D", "", str(rec.get("phone") or ""))
        values.add(digits[-11:])
    for line in (folder / "tickets.jsonl").read_text().splitlines():
        text = json.loads(line).get("description") or ""
        values.update(re.findall(r"1[3-9]\d{9}", text))
        values.update(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text))
    return {v for v in values if len(v) >= 2}


def metric_samples(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(text) for s in m.samples
    }


def all_bytes_outside_raw_topics(settings: Settings) -> list[tuple[str, str]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    topics = sorted(consumer.topics())
    consumer.close()
    raw = set(settings.source_topics().values())
    ours = [t for t in topics if (t.startswith(settings.topic_prefix) or t.startswith(settings.app_id))
            and t not in raw]
    assert settings.events_topic in ours and settings.deadletter_topic in ours
    assert any(t.endswith("-changelog") for t in ours)
    found = []
    for topic in ours:
        for key, value in read_topic(settings, topic):
            for part in (key, value):
                if part:
                    found.append((topic, part.decode("utf-8", errors="replace")))
    return found


def test_mixed_file_exact_outcomes_and_no_raw_pii_past_ingest(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    data = tmp_path / "gen"
    assert run_cli(settings, "generate", *GEN, "--out", str(data)).returncode == 0
    pii = raw_pii_values(data)
    assert len(pii) > 60
    phone, id_number, email = "13912345678", "11010519491231002X", "li.na@example.cn"
    pii |= {phone, id_number, email, "李娜", "浙江省杭州市西湖区文三路90号"}

    # A hand-made orders file (Chinese source names, traditional and simplified).
    t = "2026-10-20 10:00:00"
    rows = [
        {"客户ID": "U000001", "购买时间": t, "订单金额": "¥1,234.50", "event_id": "m1",
         "备注": f"请联系 {phone} 或 {email}"},                                   # valid, PII in extra
        {"客戶ID": "U000002", "購買時間": t, "訂單金額": "0", "event_id": "m2"},   # valid, zero amount
        {"客户ID": "U000001", "购买时间": t, "订单金额": "1234.5", "event_id": "m1"},  # duplicate id
        {"客户ID": "U000003", "购买时间": t, "订单金额": "-5", "event_id": "m3"},  # negative_amount
        {"购买时间": t, "订单金额": "5", "phone": phone, "event_id": "m4"},        # missing_user_id
        {"客户ID": "U000004", "订单金额": "5", "event_id": "m5"},                  # missing_event_time
        {"客户ID": "U000004", "购买时间": "next tuesday", "event_id": "m6"},        # bad_event_time
        {"客户ID": "U000004", "购买时间": "2099-01-01 00:00:00", "event_id": "m7"},  # future_event_time
        {"客户ID": "U000004", "购买时间": t, "订单金额": "lots", "event_id": "m8",
         "id_number": id_number},                                                   # wrong_type
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.append(f"{{broken json {phone} {id_number}")                              # import dead letter
    lines.append(json.dumps(["not", "an", "object", email]))                        # import dead letter
    orders_extra = tmp_path / "orders_extra.jsonl"
    orders_extra.write_text("\n".join(lines) + "\n")
    tickets = tmp_path / "tickets_extra.jsonl"
    tickets.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"user_id": "U000005", "opened_at": t, "satisfaction": 9, "event_id": "k1",
         "description": f"投訴 {phone}"},                                            # satisfaction_out_of_range
        {"user_id": "U000005", "opened_at": t, "satisfaction": 4, "event_id": "k2",
         "description": f"客户 李娜 电话 +86 139-1234-5678, 证件 {id_number.lower()}"},  # valid
    ]) + "\n")
    customers = tmp_path / "customers_extra.jsonl"
    customers.write_text(json.dumps({
        "客户ID": "U900001", "客户姓名": "李娜", "联系方式": phone, "证件号码": id_number,
        "邮箱": email, "地址": "浙江省杭州市西湖区文三路90号", "注册时间": "2026-01-02 03:04:05",
        "会员等级": "黄金",
    }, ensure_ascii=False) + "\n")

    port = free_port()
    worker.env["CUSTPULSE_METRICS_PORT"] = str(port)
    worker.start()
    for source in SOURCES:
        result = run_cli(settings, "import", source, str(data / f"{source}.jsonl"))
        assert result.returncode == 0, result.stderr
    result = run_cli(settings, "import", "orders", str(orders_extra))
    assert result.returncode == 0, result.stderr
    assert "rows read 11, sent 9, dead-lettered 2, failed 0" in result.stdout
    assert phone not in result.stdout + result.stderr
    assert run_cli(settings, "import", "tickets", str(tickets)).returncode == 0
    assert run_cli(settings, "import", "customers", str(customers)).returncode == 0
    # A re-import of a generated file: every row a duplicate.
    assert run_cli(settings, "import", "behavior", str(data / "behavior.jsonl")).returncode == 0
    wait_drained(settings, worker)

    generated = expected_counts(data)
    n_behavior = int(generated["behavior"].sum())
    samples = metric_samples(port)

    def metric(name, source, **labels):
        key = (name, tuple(sorted({"source": source, **labels}.items())))
        return samples.get(key, 0)

    expected_dead = {
        ("orders", "negative_amount"): 1, ("orders", "missing_user_id"): 1,
        ("orders", "missing_event_time"): 1, ("orders", "bad_event_time"): 1,
        ("orders", "future_event_time"): 1, ("orders", "wrong_type"): 1,
        ("tickets", "satisfaction_out_of_range"): 1,
    }
    dead = {(dict(lbl)["source"], dict(lbl)["reason"]): v for (name, lbl), v in samples.items()
            if name == "custpulse_events_deadlettered_total"}
    assert {k: v for k, v in dead.items() if v} == expected_dead
    assert metric("custpulse_events_duplicate_total", "orders") == 1
    assert metric("custpulse_events_duplicate_total", "behavior") == n_behavior
    assert metric("custpulse_events_accepted_total", "orders") == generated["orders"].sum() + 2
    assert metric("custpulse_events_accepted_total", "tickets") == generated["tickets"].sum() + 1
    assert metric("custpulse_events_accepted_total", "customers") == len(generated) + 1
    for source in SOURCES:  # in = accepted + dead-lettered + duplicates
        dead_n = sum(v for (s, _), v in dead.items() if s == source)
        assert metric("custpulse_events_in_total", source) == (
            metric("custpulse_events_accepted_total", source) + dead_n
            + metric("custpulse_events_duplicate_total", source)
        )

    letters = [json.loads(v) for _, v in read_topic(settings, settings.deadletter_topic)]
    codes = sorted(x["reason"]["code"] for x in letters)
    assert codes == sorted(["negative_amount", "missing_user_id", "missing_event_time",
                            "bad_event_time", "future_event_time", "wrong_type",
                            "satisfaction_out_of_range", "not_json", "not_object"])
    worker_letters = [x for x in letters if x["topic"] is not None]
    assert all(x["offset"] >= 0 and x["payload"] for x in worker_letters)
    import_letters = [x for x in letters if x["file"] is not None]
    assert sorted(x["row"] for x in import_letters) == [10, 11]
    wrong = next(x for x in letters if x["reason"]["code"] == "wrong_type")
    assert wrong["reason"]["field"] == "amount"
    assert "110" in wrong["payload"]["id_number"] and "*" in wrong["payload"]["id_number"]

    profiles = observed_redis(settings)
    assert int(profiles.loc["U000001", "orders"]) == int(generated.loc["U000001", "orders"]) + 1
    assert int(profiles.loc["U900001", "customers"]) == 1

    # The canonical event of the hand-made customer carries masked values and tokens only.
    events = read_events(settings)
    li = next(e for e in events if e["user_id"] == "U900001")["data"]
    assert li["phone"] == "139****5678" and li["user_name"] == "*女士"
    assert li["member_level"] == "gold" and li["phone_token"].startswith("tok_")
    from custpulse.processors.identity import own_event_id

    k2 = own_event_id("tickets", {"event_id": "k2"}, {})  # ids are scoped by source
    ticket = next(e for e in events if e["event_id"] == k2)["data"]
    assert "139****5678" in ticket["description"]

    # No raw personal value anywhere past ingest: topics, Redis, the worker's log.
    leaks = []
    for topic, text in all_bytes_outside_raw_topics(settings):
        leaks += [(topic, v) for v in pii if v in text]
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(match=settings.redis_prefix + "*"):
        kind = client.type(key)
        content = (client.hgetall(key) if kind == b"hash" else client.dump(key)) or b""
        text = key.decode() + json.dumps({k.decode(): v.decode() for k, v in content.items()}
                                         if isinstance(content, dict) else content.hex())
        leaks += [(key.decode(), v) for v in pii if v in text]
    client.close()
    log = worker.log()
    leaks += [("worker log", v) for v in pii if v in log]
    exported = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    leaks += [("metrics", v) for v in pii if v in exported]
    assert leaks == []


def test_sigkill_with_redeliveries_keeps_counts_exact(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    data = tmp_path / "gen"
    gen = ("--customers", "60", "--months", "3", "--seed", "23", "--end", "2026-10-31")
    assert run_cli(settings, "generate", *gen, "--out", str(data)).returncode == 0
    expected = expected_counts(data)
    n_events = int(expected.to_numpy().sum())
    for source in SOURCES:
        assert run_cli(settings, "import", source, str(data / f"{source}.jsonl")).returncode == 0
    # Small polls and envelopes: many of them in flight at the kill, and Redis fills in steps
    # small enough for the kill to land mid-stream (one announcement may cover every queued
    # envelope).
    worker.env.update(CUSTPULSE_BATCH_MAX_RECORDS="100", CUSTPULSE_ENVELOPE_MAX_RECORDS="20")
    worker.start()
    # Kill it hard once it has folded part of the stream (some Redis profiles exist).
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        written = sum(int(client.hget(k, "events_total") or 0)
                      for k in client.scan_iter(match=settings.redis_key("profile", "*")))
        if written > n_events // 5:
            break
        time.sleep(0.05)
    client.close()
    assert 0 < written < n_events, "the kill must land mid-stream"
    worker.stop(signal.SIGKILL)
    # Redeliveries: the same behaviour file again, while the worker is down.
    assert run_cli(settings, "import", "behavior", str(data / "behavior.jsonl")).returncode == 0
    worker.start()
    wait_drained(settings, worker)
    pd.testing.assert_frame_equal(observed_redis(settings)[list(SOURCES)], expected,
                                  check_dtype=False, check_names=False)
    table = observed_table(settings)
    pd.testing.assert_frame_equal(table[list(SOURCES)], expected, check_dtype=False,
                                  check_names=False)
    assert int(table["ids"].sum()) == n_events
    assert read_topic(settings, settings.deadletter_topic) == []

    # Profile values too, as of each profile's as_of.
    from datetime import datetime as _dt

    from .test_profiles import expected as expected_profile
    from .test_profiles import load

    frames = load(data)
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(match=settings.redis_key("profile", "*")):
        fields = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        user = key.decode().rsplit(":", 1)[1]
        for name, value in expected_profile(frames, user, _dt.fromisoformat(fields["as_of"])).items():
            got = float(fields[name]) if "." in fields[name] else int(fields[name])
            assert got == value, (user, name, got, value)
    client.close()

    # Alerts: no id missing (each customer's moves form an unbroken chain from nothing to the
    # segment its profile shows) and duplicates only with the same id and content.
    alerts = [json.loads(v) for _, v in read_topic(settings, settings.segment_changes_topic)]
    first: dict[str, dict] = {}
    for alert in alerts:
        seen = first.setdefault(alert["alert_id"], alert)
        assert {k: v for k, v in seen.items() if k != "processing_time"} == {
            k: v for k, v in alert.items() if k != "processing_time"}
    client = redis.Redis.from_url(settings.redis_url)
    profiles = {k.decode().rsplit(":", 1)[1]: client.hgetall(k)
                for k in client.scan_iter(match=settings.redis_key("profile", "*"))}
    client.close()
    for group, field in (("value", b"segment"), ("activity", b"activity_segment")):
        chains: dict[str, list] = {}
        for alert in first.values():  # topic order within a user's partition = decision order
            if alert["group"] == group:
                chains.setdefault(alert["user_id"], []).append(alert)
        assert set(chains) == set(profiles)
        for user, chain in chains.items():
            assert chain[0]["old"] is None
            for before, after in zip(chain, chain[1:], strict=False):
                assert after["old"] == before["new"], (user, group, chain)
            assert chain[-1]["new"] == profiles[user][field].decode()


def test_user_mapping_for_import_and_worker_and_quality_rates(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    mapping = tmp_path / "shop.yaml"
    mapping.write_text(
        "version: 3\nsource: orders\n"
        "fields:\n  user_id: [cust_no]\n  order_time: [paid_at]\n  amount: [total_fee]\n"
        "  status: [state]\n"
        "values:\n  status: {SUCCESS: paid, REFUND: refunded}\n"
    )
    data = tmp_path / "shop_orders.csv"
    data.write_text(
        "cust_no,paid_at,total_fee,state\n"
        "C2,2026-10-02 08:00:00,\"1,000.00\",SUCCESS\n"
        "C1,2026-10-01 08:00:00,12.5,SUCCESS\n"
        "C1,2026-10-03 08:00:00,12.5,REFUND\n"
    )
    worker.env["CUSTPULSE_MAPPING"] = str(mapping)
    worker.start()
    result = run_cli(settings, "import", "orders", str(data), "--mapping", str(mapping))
    assert result.returncode == 0 and "sent 3, dead-lettered 0" in result.stdout, result
    wait_drained(settings, worker)
    events = read_events(settings)
    # keyed and sorted by the mapped names: C1's first order comes first
    assert [(e["user_id"], e["data"]["amount"], e["data"]["status"]) for e in events
            if e["user_id"] == "C1"] == [("C1", 12.5, "paid"), ("C1", 12.5, "refunded")]
    assert next(e for e in events if e["user_id"] == "C2")["data"]["amount"] == 1000.0
    assert observed_redis(settings)["orders"].to_dict() == {"C1": 2, "C2": 1}
    # Missing rates are tracked and published to Redis (every 5 s).
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + 20
    quality = None
    while time.monotonic() < deadline and quality is None:
        quality = client.hget(settings.redis_key("quality"), "orders")
        time.sleep(0.5)
    client.close()
    assert quality is not None
    stats = json.loads(quality)
    assert stats["channel"]["seen"] == 3 and stats["channel"]["missing_rate"] == 1.0
    assert stats["status"]["missing"] == 0
