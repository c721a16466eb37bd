"""Integration tier: the real local Kafka and Redis (``make stack-up``), never mocks.

Each test gets its own topic prefix, consumer group (app id) and Redis prefix, so tests do not
see each other's data; topics and keys are removed afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient

from custpulse.settings import Settings, load_settings
from custpulse.streams.admin import consumer_lag

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("custpulse"))
TEST_SECRET = "integration-" + uuid.uuid4().hex


def _reachable(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack() -> Settings:
    base = load_settings()
    redis_hostport = base.redis_url.split("//", 1)[1].split("/", 1)[0].split("@")[-1]
    missing = [
        name
        for name, hp in (("Kafka", base.kafka_bootstrap.split(",")[0]), ("Redis", redis_hostport))
        if not _reachable(hp)
    ]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not running: run `make stack-up` first", False)
    return base


@pytest.fixture
def settings(stack: Settings) -> Iterator[Settings]:
    yield from isolated_settings()


def isolated_settings() -> Iterator[Settings]:
    """Settings with a fresh topic prefix, app id and Redis prefix; afterwards their Redis keys
    and topics are removed (a generator for fixtures: ``yield from isolated_settings()``)."""
    tag = "it" + uuid.uuid4().hex[:8]
    s = load_settings(topic_prefix=f"{tag}.", app_id=f"custpulse-{tag}", redis_prefix=f"{tag}:")
    yield s
    client = redis.Redis.from_url(s.redis_url)
    keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    ours = [t for t in admin.list_topics() if t.startswith((f"{tag}.", f"custpulse-{tag}-"))]
    if ours:
        admin.delete_topics(ours)
    admin.close()


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        REDIS_URL=settings.redis_url,
        CUSTPULSE_TOPIC_PREFIX=settings.topic_prefix,
        CUSTPULSE_APP_ID=settings.app_id,
        CUSTPULSE_REDIS_PREFIX=settings.redis_prefix,
        CUSTPULSE_PARTITIONS=str(settings.partitions),
        PYTHONUNBUFFERED="1",
        CUSTPULSE_PII_SECRET=TEST_SECRET,
        CUSTPULSE_SESSION_TIMEOUT_S="10",
    )
    env.update(extra)
    return env


def run_cli(settings: Settings, *args: str, timeout: float = 120, **env: str):
    return subprocess.run(
        [CLI, *args], env=env_for(settings, **env), capture_output=True, text=True,
        timeout=timeout, cwd=ROOT, check=False,
    )


class WorkerProcess:
    """``custpulse worker`` as a child process, its output in a log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.env.setdefault("CUSTPULSE_DATA_DIR", str(self.log_path.parent / "data"))
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [CLI, "worker"], env=env_for(self.settings, **self.env), stdout=log, stderr=subprocess.STDOUT,
            cwd=ROOT, start_new_session=True,
        )
        log.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker.log")
    yield proc
    proc.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_drained(settings: Settings, worker: WorkerProcess, timeout: float = 180) -> None:
    """Wait until the worker's group has committed every input and internal message.

    Offsets are committed only after the producer flushed what processing sent, so zero lag on
    the input topics and on ``<prefix>events`` means every message is folded and mirrored.
    """
    deadline = time.monotonic() + timeout
    lag = None
    lagging: list = []
    quiet = 0
    while time.monotonic() < deadline:
        if worker.proc is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited ({worker.proc.returncode}):\n{worker.log()[-3000:]}")
        rows = consumer_lag(settings)
        lag = sum(r.lag for r in rows)
        lagging = [(r.topic, r.partition, r.committed, r.end) for r in rows if r.lag]
        # Zero twice, 1.5 s apart: the deadline timer (every 0.5 s) may still add ticks.
        quiet = quiet + 1 if lag == 0 else 0
        if quiet >= 2:
            return
        time.sleep(1.5 if lag == 0 else 0.5)
    raise AssertionError(f"not drained after {timeout} s (lag {lag} in {lagging}):\n"
                         f"{worker.log()[-3000:]}")
