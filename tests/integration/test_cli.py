"""The CLI against the real stack, and its one-sentence errors when a server is missing."""

from __future__ import annotations

from custpulse.settings import Settings

from .conftest import run_cli


def _one_sentence(result, *words):
    assert result.returncode == 2, (result.stdout, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("custpulse: ")
    for word in words:
        assert word in err


def test_missing_kafka_is_one_sentence(settings: Settings):
    for command in (["worker"], ["topics"], ["lag"]):
        result = run_cli(settings, *command, KAFKA_BOOTSTRAP="127.0.0.1:1", timeout=60)
        _one_sentence(result, "Cannot reach Kafka at 127.0.0.1:1", "make stack-up")


def test_missing_redis_is_one_sentence(settings: Settings):
    result = run_cli(settings, "worker", REDIS_URL="redis://127.0.0.1:1/0", timeout=60)
    _one_sentence(result, "Cannot reach Redis at redis://127.0.0.1:1/0", "REDIS_URL")


def test_bad_config_is_one_sentence(settings: Settings):
    result = run_cli(settings, "topics", CUSTPULSE_PARTITIONS="many")
    _one_sentence(result, "CUSTPULSE_PARTITIONS")


def test_missing_import_file_is_one_sentence(settings: Settings, tmp_path):
    result = run_cli(settings, "import", "orders", str(tmp_path / "nope.jsonl"))
    _one_sentence(result, "Cannot read", "nope.jsonl")


def test_topics_and_lag_list_our_topics(settings: Settings, tmp_path):
    result = run_cli(settings, "topics", "--create")
    assert result.returncode == 0, result.stderr
    for source in ("customers", "behavior", "orders", "tickets", "events", "deadletter"):
        line = next(x for x in result.stdout.splitlines() if x.startswith(settings.topic(source)))
        assert line.split()[1:] == ["4", "0"]
    data = tmp_path / "t.csv"
    data.write_text("user_id,opened_at\nU1,2024-01-01 10:00:00\nU2,2024-01-02 10:00:00\n")
    assert run_cli(settings, "import", "tickets", str(data)).returncode == 0
    result = run_cli(settings, "topics")
    line = next(x for x in result.stdout.splitlines() if x.startswith(settings.topic("tickets")))
    assert line.split()[1:] == ["4", "2"]
    result = run_cli(settings, "lag")
    assert result.returncode == 0, result.stderr
    assert f"groups {settings.app_id}-ingest (input topics) and {settings.app_id}" in result.stdout
    assert result.stdout.strip().endswith("total lag 2")  # nobody consumed yet


def test_import_creates_missing_topics_with_our_partitions(settings: Settings, tmp_path):
    """A first import into a fresh prefix: the topic it sends to did not exist, and comes out
    with CUSTPULSE_PARTITIONS partitions (created by custpulse, not by the broker)."""
    data = tmp_path / "o.csv"
    data.write_text("user_id,order_id,order_time,amount\nU1,SO1,2024-01-01 10:00:00,5\n")
    result = run_cli(settings, "import", "orders", str(data), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "sent 1," in result.stdout
    topics = run_cli(settings, "topics").stdout.splitlines()
    line = next(x for x in topics if x.startswith(settings.topic("orders")))
    assert line.split()[1:] == ["4", "1"]


def test_import_without_kafka_is_one_sentence(settings: Settings, tmp_path):
    data = tmp_path / "o.csv"
    data.write_text("user_id,order_id,order_time,amount\nU1,SO1,2024-01-01 10:00:00,5\n")
    result = run_cli(settings, "import", "orders", str(data), "--no-progress",
                     KAFKA_BOOTSTRAP="127.0.0.1:1", timeout=90)
    _one_sentence(result, "Cannot reach Kafka at 127.0.0.1:1", "make stack-up")


def test_worker_refuses_the_development_secret_outside_dev(settings: Settings):
    from custpulse.settings import DEV_PII_SECRET

    result = run_cli(settings, "worker", CUSTPULSE_PII_SECRET=DEV_PII_SECRET, CUSTPULSE_ENV="prod")
    _one_sentence(result, "development PII secret", "CUSTPULSE_PII_SECRET", "CUSTPULSE_ENV=dev")


def test_bad_user_mapping_is_one_sentence(settings: Settings, tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("source: orders\nfields: [not, a, mapping]\n")
    data = tmp_path / "o.jsonl"
    data.write_text('{"user_id": "U1", "order_time": "2024-01-01"}\n')
    result = run_cli(settings, "import", "orders", str(data), "--mapping", str(bad))
    _one_sentence(result, "m.yaml")


def test_profile_prints_one_live_profile_with_its_as_of(settings: Settings):
    import json

    import redis

    from custpulse.state.redis_mirror import profile_fields, profile_key

    fields = profile_fields({"by_source": {"orders": 2}, "last_event_time": None},
                            "2026-11-30T00:00:01.000Z",
                            {"as_of": "2026-11-29T10:00:00.000Z", "phone": "136****5863",
                             "segment": "regular", "orders_total": 2})
    client = redis.Redis.from_url(settings.redis_url)
    client.hset(profile_key(settings, "U42"), mapping=fields)
    client.close()
    shown = run_cli(settings, "profile", "U42")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "profile U42 as of 2026-11-29T10:00:00.000Z"
    assert lines[1].split() == ["as_of", "2026-11-29T10:00:00.000Z"]
    assert "136****5863" in shown.stdout and "regular" in shown.stdout
    as_json = json.loads(run_cli(settings, "profile", "U42", "--json").stdout)
    assert as_json["user_id"] == "U42" and as_json["orders_total"] == "2"
    missing = run_cli(settings, "profile", "nobody")
    assert missing.returncode == 1
    assert missing.stderr.startswith("custpulse: no live profile for user id 'nobody'")
    _one_sentence(run_cli(settings, "profile", "U42", REDIS_URL="redis://127.0.0.1:1/0"),
                  "Cannot reach Redis")
