"""Several workers in one group on real Kafka and Redis share the partitions: one SIGKILLed
mid-stream hands its partitions and state to the survivor (changelog recovery), a worker added
mid-stream takes some over; either way every profile ends equal to the pandas reference over
the input files and the Redis segment sets equal the table's state."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import redis

from custpulse.settings import Settings
from custpulse.state.redis_mirror import scan_profiles
from custpulse.state.tables import PROFILES
from custpulse.streams.admin import consumer_lag

from .conftest import CLI, ROOT, WorkerProcess, env_for, run_cli, wait_drained
from .kafka_read import table_from_changelog
from .test_profiles import load, to_cents

CUSTOMERS = 400


def _workers(settings: Settings, tmp_path: Path, n: int) -> list[WorkerProcess]:
    out = []
    for k in range(n):
        folder = tmp_path / f"w{k}"
        folder.mkdir()
        out.append(WorkerProcess(settings, folder / "worker.log"))  # own data dir each
    return out


def _reference(data: Path) -> pd.DataFrame:
    orders = load(data)["orders"]
    paid = orders[~orders.status.isin(["returned", "refunded", "cancelled"])]
    paid = paid.assign(cents=paid.amount.map(to_cents))
    return paid.groupby("user_id").agg(n=("amount", "size"), cents=("cents", "sum"))


def _check(settings: Settings, data: Path) -> None:
    expected = _reference(data)
    table = table_from_changelog(settings, PROFILES)
    client = redis.Redis.from_url(settings.redis_url)
    profiles = scan_profiles(client, settings)
    got = pd.DataFrame({u: {"n": int(p["orders_total"]),
                            "cents": round(float(p["monetary_total"]) * 100)}
                        for u, p in profiles.items() if int(p["orders_total"])}).T.sort_index()
    pd.testing.assert_frame_equal(got[["n", "cents"]], expected[["n", "cents"]].sort_index(),
                                  check_names=False, check_dtype=False)
    assert {u for u, v in table.items() if v["profile"]["orders"]["n"]} == set(expected.index)
    for group, name in (("value", "segment"), ("activity", "activity_segment")):
        want: dict[str, set[str]] = {}
        for user, value in table.items():
            want.setdefault(value["seg"][name], set()).add(user)
        keys = client.keys(settings.redis_key("segment", group, "*"))
        sets = {k.decode().rsplit(":", 1)[1]: {m.decode() for m in client.smembers(k)}
                for k in keys}
        assert {k: v for k, v in sets.items() if v} == want, group
    for user, value in table.items():  # the hashes are the state's latest version
        assert int(profiles[user]["version"]) == value["version"], user
    client.close()


def _import(settings: Settings, data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([CLI, "import", "--dir", str(data), "--no-progress"],
                            env=env_for(settings), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _mid_stream(settings: Settings, importer: subprocess.Popen[str]) -> None:
    """Wait until the pipeline is busy: records sent and not yet all committed."""
    deadline = time.monotonic() + 120
    while True:
        lag = sum(r.lag for r in consumer_lag(settings))
        if lag > 0 and importer.poll() is None:
            return
        assert importer.poll() is None, "the import ended before the pipeline was busy"
        assert time.monotonic() < deadline, "the pipeline never had lag"
        time.sleep(0.5)


def _generate(settings: Settings, tmp_path: Path) -> Path:
    data = tmp_path / "gen"
    assert run_cli(settings, "generate", "--customers", str(CUSTOMERS), "--months", "8",
                   "--seed", "12", "--out", str(data), timeout=300).returncode == 0
    return data


def test_a_worker_killed_mid_stream_hands_its_partitions_to_the_survivor(
        settings: Settings, tmp_path: Path):
    data = _generate(settings, tmp_path)
    first, second = _workers(settings, tmp_path, 2)
    first.start()
    second.start()
    try:
        time.sleep(10)  # both joined: the partitions are shared
        importer = _import(settings, data)
        _mid_stream(settings, importer)
        second.stop(signal.SIGKILL)  # its state is in the changelog only
        out, err = importer.communicate(timeout=600)
        assert importer.returncode == 0, err
        wait_drained(settings, first, timeout=600)
        # stopped before reading: a running worker keeps applying deadlines as the watermark
        # moves, so the table and Redis must be read at rest to be compared
        assert first.stop() == 0
        _check(settings, data)
        assert "Traceback" not in first.log()
    finally:
        first.stop()
        second.stop()


def test_a_worker_added_mid_stream_takes_partitions_and_nothing_is_lost(
        settings: Settings, tmp_path: Path):
    data = _generate(settings, tmp_path)
    first, second, third = _workers(settings, tmp_path, 3)
    first.start()
    second.start()
    try:
        time.sleep(10)
        importer = _import(settings, data)
        _mid_stream(settings, importer)
        third.start()  # a rebalance mid-stream
        out, err = importer.communicate(timeout=600)
        assert importer.returncode == 0, err
        for worker in (first, second, third):
            wait_drained(settings, worker, timeout=600)
        for worker in (first, second, third):  # at rest before reading (see above)
            assert worker.stop() == 0
        _check(settings, data)
        assert "Assigned" in third.log() or "assigned" in third.log()
    finally:
        for worker in (first, second, third):
            worker.stop()
