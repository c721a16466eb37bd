"""Generate -> import -> worker -> table and Redis, checked against pandas over the same files."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pandas as pd
import redis
from prometheus_client.parser import text_string_to_metric_families

from custpulse.settings import SOURCES, Settings
from custpulse.state.redis_mirror import scan_profiles
from custpulse.state.tables import PROFILES

from .conftest import WorkerProcess, free_port, run_cli, wait_drained
from .kafka_read import end_offsets, read_topic, table_from_changelog

GEN = ("--customers", "40", "--months", "3", "--seed", "11", "--end", "2026-10-31")


def expected_counts(folder: Path) -> pd.DataFrame:
    """Independent reference: rows per user and source, straight from the files."""
    frames = []
    for source in SOURCES:
        df = pd.read_json(folder / f"{source}.jsonl", lines=True, dtype={"user_id": str})
        frames.append(df.assign(source=source)[["user_id", "source"]])
    rows = pd.concat(frames)
    table = rows.groupby(["user_id", "source"]).size().unstack(fill_value=0)
    return table.reindex(columns=list(SOURCES), fill_value=0)


def observed_redis(settings: Settings) -> pd.DataFrame:
    client = redis.Redis.from_url(settings.redis_url)
    profiles = scan_profiles(client, settings)
    client.close()
    df = pd.DataFrame(
        {u: {s: int(p[f"events_{s}"]) for s in SOURCES} | {"total": int(p["events_total"])}
         for u, p in profiles.items()}
    ).T.sort_index()
    df.index.name = "user_id"
    return df


def observed_table(settings: Settings) -> pd.DataFrame:
    table = table_from_changelog(settings, PROFILES)
    df = pd.DataFrame(
        {u: {s: v["dedupe"]["by_source"].get(s, 0) for s in SOURCES}
         | {"ids": len(v["dedupe"]["ids"])}
         for u, v in table.items()}
    ).T.sort_index()
    df.index.name = "user_id"
    return df


def import_all(settings: Settings, folder: Path) -> None:
    for source in SOURCES:
        result = run_cli(settings, "import", source, str(folder / f"{source}.jsonl"))
        assert result.returncode == 0, result.stderr
        assert "failed 0" in result.stdout, result.stdout


def test_every_generated_event_counted_once_in_table_and_redis(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    data = tmp_path / "gen"
    result = run_cli(settings, "generate", *GEN, "--out", str(data))
    assert result.returncode == 0, result.stderr
    expected = expected_counts(data)
    n_events = int(expected.to_numpy().sum())
    assert n_events > 1000 and len(expected) == 40

    # Straight to the topics first: the same bytes a file holds, so the same event ids.
    result = run_cli(settings, "generate", *GEN, "--to-topics", "--no-progress")
    assert result.returncode == 0, result.stderr
    worker.start()
    wait_drained(settings, worker)

    redis_view = observed_redis(settings)
    pd.testing.assert_frame_equal(redis_view[list(SOURCES)], expected, check_dtype=False,
                                  check_names=False)
    assert (redis_view["total"] == expected.sum(axis=1)).all()
    table_view = observed_table(settings)
    pd.testing.assert_frame_equal(table_view[list(SOURCES)], expected, check_dtype=False,
                                  check_names=False)
    assert (table_view["ids"] == expected.sum(axis=1)).all()
    changelog = f"{settings.app_id}-{PROFILES}-changelog"
    writes_before = sum(end_offsets(settings, changelog).values())
    # Envelopes: one table write per customer changed by an envelope (plus time-driven
    # re-evaluations), not one per event; none for duplicates.
    assert len(expected) <= writes_before < n_events

    # The same data again, this time through files: nothing changes.
    import_all(settings, data)
    wait_drained(settings, worker)
    pd.testing.assert_frame_equal(observed_redis(settings), redis_view)
    pd.testing.assert_frame_equal(observed_table(settings), table_view)
    assert sum(end_offsets(settings, changelog).values()) == writes_before
    assert read_topic(settings, settings.deadletter_topic) == []

    # Restart: state comes back from the changelog; a new file adds exactly its rows.
    assert worker.stop() == 0
    extra = tmp_path / "extra.jsonl"
    first_user = expected.index[0]
    rows = [
        {"user_id": first_user, "order_time": "2026-10-30 12:00:00", "amount": 10, "order_id": "X1"},
        # the same order again (its order system redelivers it): its business key counts once
        {"user_id": first_user, "order_time": "2026-10-30 12:00:00", "amount": 10, "order_id": "X1"},
        {"user_id": first_user, "order_time": "2026-10-30 13:00:00", "amount": 10},
        {"user_id": first_user, "order_time": "2026-10-30 13:00:00", "amount": 10},
        {"user_id": "NEW-1", "order_time": "2026-10-30T20:13:20Z", "amount": 0},
    ]
    extra.write_text("".join(json.dumps(r) + "\n" for r in rows))
    worker.start()
    result = run_cli(settings, "import", "orders", str(extra))
    assert result.returncode == 0 and "rows read 5, sent 5, dead-lettered 0, failed 0" in result.stdout
    run_cli(settings, "import", "orders", str(extra))  # a repeat of the whole file
    wait_drained(settings, worker)
    after = observed_redis(settings)
    # X1 once, and the two identical rows without an order id are two orders
    assert int(after.loc[first_user, "orders"]) == int(expected.loc[first_user, "orders"]) + 3
    assert int(after.loc["NEW-1", "total"]) == 1
    assert int(after["total"].sum()) == n_events + 4
    assert int(observed_table(settings)["ids"].sum()) == n_events + 4


def test_bad_records_go_to_the_dead_letter_topic_with_reasons(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    lines = [
        json.dumps({"user_id": "U1", "behavior_time": "2026-01-01 10:00:00", "phone": "13800138000"}),
        json.dumps({"behavior_time": "2026-01-01 10:00:00", "phone": "13800138000"}),
        json.dumps({"user_id": "U2", "behavior_time": "someday", "phone": "13800138000"}),
        json.dumps({"user_id": "U3"}),
        "{not json 13800138000",
    ]
    path = tmp_path / "behavior.jsonl"
    path.write_text("\n".join(lines) + "\n")
    port = free_port()
    worker.env["CUSTPULSE_METRICS_PORT"] = str(port)
    worker.start()
    result = run_cli(settings, "import", "behavior", str(path))
    assert result.returncode == 0  # the unparseable row is dead-lettered by the importer
    assert "rows read 5, sent 4, dead-lettered 1, failed 0" in result.stdout
    assert "row 5: not_json" in result.stderr and "13800138000" not in result.stderr
    wait_drained(settings, worker)
    letters = [json.loads(v) for _, v in read_topic(settings, settings.deadletter_topic)]
    assert sorted(x["reason"]["code"] for x in letters) == [
        "bad_event_time", "missing_event_time", "missing_user_id", "not_json",
    ]
    for letter in letters:
        if letter["reason"]["code"] == "not_json":
            assert (letter["topic"], letter["file"], letter["row"]) == (None, "behavior.jsonl", 5)
        else:
            assert letter["topic"] == settings.topic("behavior") and letter["offset"] >= 0
        assert "13800138000" not in json.dumps(letter)
    assert observed_redis(settings)["total"].to_dict() == {"U1": 1}
    assert "13800138000" not in worker.log()

    # Counters add up: in = accepted + dead-lettered + duplicates.
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "13800138000" not in text
    samples = {
        (m.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(text) for s in m.samples
    }
    src = (("source", "behavior"),)
    assert samples[("custpulse_events_in", src)] == 4
    assert samples[("custpulse_events_accepted", src)] == 1
    dead = sum(v for (name, labels), v in samples.items()
               if name == "custpulse_events_deadlettered" and ("source", "behavior") in labels)
    assert dead == 3
    assert samples.get(("custpulse_events_duplicate", src), 0) == 0


def test_rocksdb_store_keeps_exact_counts_across_a_restart(
    settings: Settings, worker: WorkerProcess, tmp_path: Path
):
    data = tmp_path / "gen"
    gen = ("--customers", "15", "--months", "2", "--seed", "8", "--end", "2026-10-31")
    assert run_cli(settings, "generate", *gen, "--out", str(data)).returncode == 0
    expected = expected_counts(data)
    worker.env["CUSTPULSE_STORE"] = "rocksdb://"
    worker.start()
    for source in ("customers", "behavior"):
        assert run_cli(settings, "import", source, str(data / f"{source}.jsonl")).returncode == 0
    wait_drained(settings, worker)
    assert worker.stop() == 0
    assert any((tmp_path / "data").rglob("*.sst")) or any((tmp_path / "data").rglob("CURRENT"))
    worker.start()
    for source in SOURCES:  # customers and behaviour again (repeats) plus the rest
        assert run_cli(settings, "import", source, str(data / f"{source}.jsonl")).returncode == 0
    wait_drained(settings, worker)
    pd.testing.assert_frame_equal(observed_redis(settings)[list(SOURCES)], expected,
                                  check_dtype=False, check_names=False)
