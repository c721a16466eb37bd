"""The one settings object: env names, defaults, readable errors."""

from __future__ import annotations

import pytest

from custpulse.errors import ConfigError
from custpulse.settings import load_settings

ENV = ("KAFKA_BOOTSTRAP", "REDIS_URL", "CUSTPULSE_PII_SECRET", "CUSTPULSE_PII_SECRET_FILE", "CUSTPULSE_TOPIC_PREFIX", "CUSTPULSE_PARTITIONS",
       "CUSTPULSE_SOURCE_TZ", "CUSTPULSE_REDIS_PREFIX", "CUSTPULSE_APP_ID", "CUSTPULSE_LOG_LEVEL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    s = load_settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.source_topics() == {"customers": "cp.customers", "behavior": "cp.behavior",
                                 "orders": "cp.orders", "tickets": "cp.tickets"}
    assert s.events_topic == "cp.events" and s.deadletter_topic == "cp.deadletter"
    assert s.redis_key("profile", "U1") == "cp:profile:U1"
    assert str(s.zone) == "Asia/Shanghai"


def test_env_names(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    monkeypatch.setenv("REDIS_URL", "redis://r:6380/1")
    monkeypatch.setenv("CUSTPULSE_TOPIC_PREFIX", "acme.")
    monkeypatch.setenv("CUSTPULSE_PARTITIONS", "8")
    monkeypatch.setenv("CUSTPULSE_LOG_LEVEL", "WARN")
    s = load_settings()
    assert s.kafka_bootstrap == "k1:9092,k2:9092"
    assert s.redis_url == "redis://r:6380/1"
    assert s.topic("orders") == "acme.orders"
    assert s.partitions == 8
    assert s.log_level == "warn"


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        s.partitions = 3


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("CUSTPULSE_PARTITIONS", "zero", "CUSTPULSE_PARTITIONS"),
        ("CUSTPULSE_PARTITIONS", "0", "greater than or equal to 1"),
        ("CUSTPULSE_SOURCE_TZ", "Mars/Base", "unknown time zone"),
        ("CUSTPULSE_TOPIC_PREFIX", "a b", "whitespace"),
        ("CUSTPULSE_LOG_LEVEL", "loud", "CUSTPULSE_LOG_LEVEL"),
    ],
)
def test_bad_values_give_one_sentence(monkeypatch, name, value, words):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert message.endswith("(see docs/contract.md, 'Configuration').")


def test_pii_secret_from_env_or_file(monkeypatch, tmp_path):
    from custpulse.settings import DEV_PII_SECRET

    assert load_settings().uses_dev_secret()
    assert load_settings().secret_bytes() == DEV_PII_SECRET.encode()
    monkeypatch.setenv("CUSTPULSE_PII_SECRET", "s" * 40)
    assert load_settings().secret_bytes() == b"s" * 40
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"from-a-file-0123456789abcdefghijklmnop\n")
    monkeypatch.setenv("CUSTPULSE_PII_SECRET_FILE", str(secret_file))
    s = load_settings()
    assert s.secret_bytes() == b"from-a-file-0123456789abcdefghijklmnop"
    assert not s.uses_dev_secret()
    assert "from-a-file" not in repr(s) and "s" * 40 not in repr(s)


def test_short_or_unreadable_secret_is_one_sentence(monkeypatch, tmp_path):
    for short in ("short", "s" * 31):  # 31 bytes: one short of the 32 an HMAC-SHA256 key needs
        monkeypatch.setenv("CUSTPULSE_PII_SECRET", short)
        with pytest.raises(ConfigError, match="shorter than 32 bytes"):
            load_settings().secret_bytes()
    monkeypatch.setenv("CUSTPULSE_PII_SECRET", "s" * 32)
    assert load_settings().secret_bytes() == b"s" * 32
    monkeypatch.setenv("CUSTPULSE_PII_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CUSTPULSE_PII_SECRET_FILE"):
        load_settings().secret_bytes()
