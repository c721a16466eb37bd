"""Ingest and fold as separate processes (``--role ingest`` and ``--role fold``, issue 11):
the same exact profiles as one process, and the fold ticks by the ingest process's watermark,
which reaches it only through ``<prefix>clock``. Also with two fold processes in one group,
sharing the events partitions (each folds its own customers, both use the shared watermark)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient

from custpulse.processors.lifecycle import next_deadline_of
from custpulse.schemas.envelope import unpack
from custpulse.settings import Settings
from custpulse.state.redis_mirror import scan_profiles
from custpulse.state.tables import PROFILES

from .conftest import WorkerProcess, free_port, run_cli, wait_drained
from .kafka_read import read_events, read_topic, table_from_changelog
from .test_ingest_quality import metric_samples
from .test_profiles import expected, load

CUSTOMERS = 80


def passed_deadlines(settings: Settings, watermark: datetime) -> list[str]:
    table = table_from_changelog(settings, PROFILES)
    return [u for u, v in table.items() if (next_deadline_of(v["seg"]) or watermark) < watermark]


def wait_group(settings: Settings, procs: list[WorkerProcess], members: int) -> None:
    """Until every process is ready and the fold group is stable with ``members`` members,
    each holding partitions (so the split is made before any record arrives)."""
    deadline = time.monotonic() + 120
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        while time.monotonic() < deadline:
            ready = all("Worker ready" in p.log() for p in procs)
            (group,) = admin.describe_consumer_groups([settings.app_id])
            if ready and group.state == "Stable" and len(group.members) == members and all(
                    m.member_assignment and m.member_assignment.assignment
                    for m in group.members):
                return
            time.sleep(0.5)
    finally:
        admin.close()
    raise AssertionError("the fold group did not settle:\n" + procs[-1].log()[-3000:])


@pytest.mark.parametrize("roles", [("ingest", "fold"), ("ingest", "fold", "fold")],
                         ids=["one_fold", "two_folds"])
def test_ingest_and_fold_processes_end_exact(settings: Settings, tmp_path: Path,
                                             roles: tuple[str, ...]):
    data = tmp_path / "gen"
    gen = ("--customers", str(CUSTOMERS), "--months", "13", "--seed", "5", "--end", "2026-10-31")
    assert run_cli(settings, "generate", *gen, "--out", str(data)).returncode == 0
    procs = [WorkerProcess(settings, tmp_path / f"{role}{n}.log") for n, role in enumerate(roles)]
    ports = {}
    for n, (role, proc) in enumerate(zip(roles, procs, strict=True)):
        proc.env.update(CUSTPULSE_ROLE=role, CUSTPULSE_IDLE_TIMEOUT_S="3",
                        CUSTPULSE_DATA_DIR=str(tmp_path / f"data{n}"))
        if role == "fold":
            ports[n] = free_port()
            proc.env["CUSTPULSE_METRICS_PORT"] = str(ports[n])
    folds = [procs[n] for n in ports]
    try:
        for proc in folds:  # the folds first: they must learn the watermark later
            proc.start()
        if len(folds) > 1:
            wait_group(settings, folds, len(folds))
        procs[0].start()
        result = run_cli(settings, "import", "--dir", str(data), "--no-progress")
        assert result.returncode == 0, result.stderr
        wait_drained(settings, procs[-1], timeout=300)
        # The watermark at the end: every input idle, so the latest event time of all
        # (lateness 0). Once the inputs are idle (3 s), ticks bring every customer whose
        # deadline it passed up to it: the fold process has the ingest process's watermark
        # only through <prefix>clock.
        watermark = max(datetime.fromisoformat(e["event_time"]) for e in read_events(settings))
        deadline = time.monotonic() + 90
        while (due := passed_deadlines(settings, watermark)) and time.monotonic() < deadline:
            time.sleep(2)
        assert due == [], f"{len(due)} customers with a passed deadline, e.g. {due[:3]}"
        wait_drained(settings, procs[-1], timeout=120)
        for proc in procs:
            assert proc.proc is not None and proc.proc.poll() is None, proc.log()[-3000:]
            assert "Traceback" not in proc.log(), proc.log()[-3000:]
        # each fold process applied its share, and together every record once
        accepted = [sum(v for (name, _), v in metric_samples(port).items()
                        if name == "custpulse_events_accepted_total") for port in ports.values()]
        assert all(n > 0 for n in accepted), accepted
        assert sum(accepted) == len(read_events(settings)), accepted
    finally:
        for proc in procs:
            proc.stop()

    frames = load(data)
    table = table_from_changelog(settings, PROFILES)
    ticked = sum(1 for _, v in read_topic(settings, settings.events_topic)
                 for r in unpack(v) if r.get("kind") == "tick")
    assert ticked > 0
    client = redis.Redis.from_url(settings.redis_url)
    profiles = scan_profiles(client, settings)
    assert len(profiles) == CUSTOMERS
    mismatches = []
    for user, fields in profiles.items():
        as_of = datetime.fromisoformat(fields["as_of"])
        for name, value in expected(frames, user, as_of).items():
            got = float(fields[name]) if "." in fields[name] else int(fields[name])
            if got != value:
                mismatches.append((user, name, got, value))
    assert mismatches == []

    for group, name in (("value", "segment"), ("activity", "activity_segment")):
        want: dict[str, set[str]] = {}
        for user, value in table.items():
            want.setdefault(value["seg"][name], set()).add(user)
        got = {k.decode().rsplit(":", 1)[1]: {m.decode() for m in client.smembers(k)}
               for k in client.keys(settings.redis_key("segment", group, "*"))}
        assert {k: v for k, v in got.items() if v} == want, group
    client.close()
