"""A real backfill at default settings, with the worker SIGKILLed twice mid-import and
restarted at once: nothing is lost, nothing counts twice, the restarted worker drains.

The history is what a new user brings: ~70,000 orders of ~23,500 customers over 18 months,
Chinese field names, each order with its own order id, sent by the importer. Defaults only
(poll and envelope sizes, dedupe memory, session timeout as shipped): a bug that shows only at
the defaults is the one users hit.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from custpulse.settings import Settings
from custpulse.state.redis_mirror import scan_profiles
from custpulse.state.tables import PROFILES

from .conftest import CLI, ROOT, WorkerProcess, env_for, wait_drained
from .kafka_read import read_events, table_from_changelog

CUSTOMERS = 23_500
ORDERS = 70_000
END = datetime(2026, 10, 31, tzinfo=UTC)
MONTHS = 18


def where(settings: Settings, users: list[str]) -> str:
    """For a failure message: whether the lost customers' orders reached <prefix>events (then
    the fold lost them) or not (the ingest stage did)."""
    on_events = {e["user_id"] for e in read_events(settings)}
    there = sum(u in on_events for u in users)
    return f"{there} of {len(users)} have orders on the events topic"


def order_history(path: Path, seed: int = 7) -> pd.DataFrame:
    """Write ~70k orders (JSON lines, Chinese field names, own order ids) and return them."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, CUSTOMERS, ORDERS)
    users[:CUSTOMERS] = np.arange(CUSTOMERS)  # every customer orders at least once
    span = int(timedelta(days=30 * MONTHS).total_seconds())
    seconds = rng.integers(0, span, ORDERS)
    cents = rng.integers(100, 200_000, ORDERS)
    start = END - timedelta(seconds=span)
    frame = pd.DataFrame({
        "order_id": [f"SO{n:08d}" for n in rng.permutation(ORDERS)],
        "user_id": [f"C{u:06d}" for u in users],
        "at": [start + timedelta(seconds=int(s)) for s in seconds],
        "cents": cents,
    })
    with path.open("w") as out:
        for row in frame.itertuples():
            out.write(json.dumps({
                "订单编号": row.order_id, "客户ID": row.user_id,
                "下单时间": row.at.strftime("%Y-%m-%d %H:%M:%S"),
                "订单金额": f"{row.cents // 100}.{row.cents % 100:02d}", "订单状态": "已支付",
            }, ensure_ascii=False) + "\n")
    return frame


@pytest.mark.timeout(1500)  # a realistic size: 70k orders twice (~550-650 s here); waits inside are bounded
def test_sigkill_twice_during_a_default_size_backfill_loses_nothing(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    orders = tmp_path / "orders.jsonl"
    frame = order_history(orders)
    expected = frame.groupby("user_id").agg(n=("order_id", "size"), cents=("cents", "sum"))
    worker.env["CUSTPULSE_SESSION_TIMEOUT_S"] = "30"  # the shipped default, not the tests' 10
    worker.start()
    time.sleep(8)  # the worker is up and has joined its groups
    importer = subprocess.Popen(
        [CLI, "import", "orders", str(orders), "--no-progress"], env=env_for(settings),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    for at in (4.0, 7.0):
        time.sleep(max(0.0, started + at - time.monotonic()))
        worker.stop(signal.SIGKILL)
        worker.start()
    out, err = importer.communicate(timeout=600)
    assert importer.returncode == 0, err
    assert f"rows read {ORDERS}, sent {ORDERS}, dead-lettered 0, failed 0" in out, out
    wait_drained(settings, worker, timeout=900)

    table = table_from_changelog(settings, PROFILES)
    counts = pd.Series({u: v["dedupe"]["by_source"].get("orders", 0) for u, v in table.items()},
                       name="n").sort_index()
    missing = sorted(set(expected.index) - set(counts.index))
    assert missing == [], f"{len(missing)} customers missing from the table ({where(settings, missing)})"
    diff = (counts - expected["n"]).loc[lambda d: d != 0]
    assert diff.empty, (f"{len(diff)} customers with wrong counts, e.g. {diff.head().to_dict()} "
                        f"({where(settings, list(diff.index))})")

    client = redis.Redis.from_url(settings.redis_url)
    profiles = scan_profiles(client, settings)
    client.close()
    assert len(profiles) == CUSTOMERS
    got = pd.DataFrame({u: {"n": int(p["orders_total"]),
                            "cents": round(float(p["monetary_total"]) * 100)}
                        for u, p in profiles.items()}).T.sort_index()
    pd.testing.assert_frame_equal(got[["n", "cents"]], expected[["n", "cents"]],
                                  check_names=False, check_dtype=False)

    # A full re-import (every order a redelivery): nothing changes, and Redis segment sets
    # are exactly what the table values say.
    result = subprocess.run([CLI, "import", "orders", str(orders), "--no-progress"],
                            env=env_for(settings), cwd=ROOT, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    wait_drained(settings, worker, timeout=900)
    table = table_from_changelog(settings, PROFILES)
    assert sum(v["dedupe"]["by_source"].get("orders", 0) for v in table.values()) == ORDERS
    client = redis.Redis.from_url(settings.redis_url)
    for group, name in (("value", "segment"), ("activity", "activity_segment")):
        want: dict[str, set[str]] = {}
        for user, value in table.items():
            want.setdefault(value["seg"][name], set()).add(user)
        keys = client.keys(settings.redis_key("segment", group, "*"))
        got_sets = {k.decode().rsplit(":", 1)[1]: {m.decode() for m in client.smembers(k)}
                    for k in keys}
        got_sets = {k: v for k, v in got_sets.items() if v}
        assert got_sets.keys() == want.keys(), (group, sorted(got_sets), sorted(want))
        for segment, users in want.items():
            assert got_sets[segment] == users, (group, segment, len(got_sets[segment] ^ users))
    client.close()
