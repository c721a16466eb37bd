"""Redis stopped for 30 s mid-stream (a Redis server of the test's own, with its append-only
file, so a restart keeps what it held): the outage shows in the metrics, the worker retries and
catches Redis up when it returns, Redis ends equal to the table's state; a worker stopped
during an outage shuts down within a bounded time."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from custpulse.settings import Settings
from custpulse.state.redis_mirror import scan_profiles
from custpulse.state.tables import PROFILES
from custpulse.streams.admin import consumer_lag

from .conftest import CLI, ROOT, WorkerProcess, env_for, free_port, run_cli, wait_drained
from .kafka_read import table_from_changelog


class OwnRedis:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed: run `make stack-up`")
        self.proc = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "own redis-server did not start"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def _mid_stream(settings: Settings, importer: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while sum(r.lag for r in consumer_lag(settings)) == 0:
        assert importer.poll() is None, "the import ended before the pipeline was busy"
        assert time.monotonic() < deadline, "the pipeline never had lag"
        time.sleep(0.5)


def _redis_equals_table(settings: Settings, own: OwnRedis) -> None:
    """Every customer's hash is the table's latest version; the segment sets are the state."""
    mine = settings.model_copy(update={"redis_url": own.url})
    table = table_from_changelog(settings, PROFILES)
    client = redis.Redis.from_url(own.url)
    profiles = scan_profiles(client, mine)
    assert set(profiles) == set(table)
    for user, value in table.items():
        assert int(profiles[user]["version"]) == value["version"], user
    for group, name in (("value", "segment"), ("activity", "activity_segment")):
        want: dict[str, set[str]] = {}
        for user, value in table.items():
            want.setdefault(value["seg"][name], set()).add(user)
        keys = client.keys(mine.redis_key("segment", group, "*"))
        sets = {k.decode().rsplit(":", 1)[1]: {m.decode() for m in client.smembers(k)}
                for k in keys}
        assert {k: v for k, v in sets.items() if v} == want, group
    client.close()


def test_redis_down_30_s_mid_stream_then_back_ends_equal_to_state(
        settings: Settings, tmp_path: Path):
    own = OwnRedis(tmp_path / "redis")
    own.start()
    data = tmp_path / "gen"
    assert run_cli(settings, "generate", "--customers", "300", "--months", "8", "--seed", "21",
                   "--out", str(data), timeout=300).returncode == 0
    port = free_port()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.env.update(REDIS_URL=own.url, CUSTPULSE_METRICS_PORT=str(port))
    worker.start()
    try:
        time.sleep(8)
        importer = subprocess.Popen([CLI, "import", "--dir", str(data), "--no-progress"],
                                    env=env_for(settings), cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        _mid_stream(settings, importer)
        own.stop()
        time.sleep(30)
        errors = _scrape(port).get("custpulse_redis_write_errors_total", 0)
        assert errors > 0  # the outage is visible
        assert worker.proc is not None and worker.proc.poll() is None  # it waits, alive
        own.start()
        out, err = importer.communicate(timeout=600)
        assert importer.returncode == 0, err
        wait_drained(settings, worker, timeout=600)
        assert worker.stop() == 0
        _redis_equals_table(settings, own)
    finally:
        worker.stop()
        own.stop()


def test_a_worker_stopped_during_a_redis_outage_shuts_down_in_bounded_time(
        settings: Settings, tmp_path: Path):
    own = OwnRedis(tmp_path / "redis")
    own.start()
    data = tmp_path / "gen"
    assert run_cli(settings, "generate", "--customers", "100", "--months", "4", "--seed", "22",
                   "--out", str(data), timeout=300).returncode == 0
    port = free_port()
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.env.update(REDIS_URL=own.url, CUSTPULSE_METRICS_PORT=str(port))
    worker.start()
    try:
        _wait_ready(port)
        own.stop()  # Redis goes away first: every announcement from now on retries
        done = run_cli(settings, "import", "--dir", str(data), "--no-progress", timeout=300)
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 120
        while _scrape(port).get("custpulse_redis_write_errors_total", 0) == 0:
            assert time.monotonic() < deadline, "the worker never tried to write to Redis"
            time.sleep(1)
        started = time.monotonic()
        code = worker.stop(signal.SIGTERM, timeout=90)
        took = time.monotonic() - started
        assert took < 60, f"shutdown took {took:.0f} s during the outage"
        assert code is not None
        # Redis back, the worker restarted: what was in flight is delivered again, so Redis
        # catches up with the state
        own.start()
        worker.start()
        wait_drained(settings, worker, timeout=600)
        assert worker.stop() == 0
        _redis_equals_table(settings, own)
    finally:
        worker.stop(signal.SIGKILL)
        own.stop()


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz/ready",
                                        timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the worker never became ready"
        time.sleep(0.5)
