"""Kafka and Redis administration with kafka-python and redis-py: reachability checks with
one-sentence errors, topic creation with explicit partitions and config, message counts, lag."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    KafkaError,
    TopicAlreadyExistsError,
)

from custpulse.errors import ConfigError, ServiceUnavailable
from custpulse.settings import Settings

if TYPE_CHECKING:
    import redis

logging.getLogger("kafka").setLevel(logging.CRITICAL)

DAY_MS = 24 * 3600 * 1000

TOPIC_CONFIG: dict[str, dict[str, str]] = {
    "source": {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete"},
    # envelopes: up to ~512 KB of records, a single large record alone (see ingest_stage)
    "events": {"retention.ms": str(7 * DAY_MS), "cleanup.policy": "delete",
               "max.message.bytes": str(8 * 1024 * 1024)},
    "deadletter": {"retention.ms": str(30 * DAY_MS), "cleanup.policy": "delete"},
    "alerts": {"retention.ms": str(30 * DAY_MS), "cleanup.policy": "delete"},
    # the newest report per input is all that counts (schemas/clock_report.py)
    "clock": {"cleanup.policy": "compact", "segment.ms": str(3_600_000),
              "min.cleanable.dirty.ratio": "0.1"},
    # churn model versions: the newest per key is all that counts (a snapshot is ~10 KB)
    "models": {"cleanup.policy": "compact", "segment.ms": str(3_600_000),
               "min.cleanable.dirty.ratio": "0.1", "max.message.bytes": str(8 * 1024 * 1024)},
}



def kafka_unreachable(settings: Settings) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Cannot reach Kafka at {settings.kafka_bootstrap}: start it with `make stack-up` "
        "(or docker compose up kafka) or point KAFKA_BOOTSTRAP at a running broker."
    )


def redis_unreachable(settings: Settings) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Cannot reach Redis at {settings.redis_url}: start it with `make stack-up` "
        "(or docker compose up redis) or point REDIS_URL at a running server."
    )


def _servers(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()]


@contextmanager
def kafka_admin(settings: Settings) -> Iterator[KafkaAdminClient]:
    """An admin client, or :class:`ServiceUnavailable` if no broker answers within ~10 s."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=_servers(settings),
            client_id="custpulse-admin",
            request_timeout_ms=10_000,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise kafka_unreachable(settings) from exc
    try:
        yield admin
    finally:
        admin.close()


@contextmanager
def kafka_consumer(settings: Settings) -> Iterator[KafkaConsumer]:
    """A group-less consumer used only for metadata and offsets."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=_servers(settings),
            client_id="custpulse-admin",
            enable_auto_commit=False,
            request_timeout_ms=15_000,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise kafka_unreachable(settings) from exc
    try:
        yield consumer
    finally:
        consumer.close()


def check_redis(settings: Settings) -> redis.Redis:
    """A connected Redis client, or :class:`ServiceUnavailable`."""
    import redis  # noqa: PLC0415 (here: an import does not need it, ~40 ms of start-up)

    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise redis_unreachable(settings) from exc
    return client


def wanted_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic custpulse creates, with its config."""
    topics = {name: TOPIC_CONFIG["source"] for name in settings.source_topics().values()}
    topics[settings.events_topic] = TOPIC_CONFIG["events"]
    topics[settings.deadletter_topic] = TOPIC_CONFIG["deadletter"]
    for name in (settings.segment_changes_topic, settings.campaign_triggers_topic,
                 settings.ops_alerts_topic):
        topics[name] = TOPIC_CONFIG["alerts"]
    topics[settings.clock_topic] = TOPIC_CONFIG["clock"]
    topics[settings.churn_examples_topic] = TOPIC_CONFIG["alerts"]
    topics[settings.churn_models_topic] = TOPIC_CONFIG["models"]
    return topics


def ensure_topics(settings: Settings) -> list[str]:
    """Create our topics that do not exist yet; return the names created.

    Existing topics are left alone (partition counts are never changed behind your back).
    """
    single = {settings.clock_topic, settings.churn_examples_topic, settings.churn_models_topic}
    with kafka_admin(settings) as admin:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, 1 if name in single else settings.partitions,
                     settings.replication_factor, topic_configs=cfg)
            for name, cfg in wanted_topics(settings).items()
            if name not in existing
        ]
        created: list[str] = []
        for topic in missing:
            try:
                admin.create_topics([topic], timeout_ms=15_000)
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        _wait_visible(admin, [t.name for t in missing])
    return created


def _wait_visible(admin: KafkaAdminClient, names: list[str], timeout: float = 15.0) -> None:
    """Wait until new topics show in metadata with leaders (creation is asynchronous)."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for meta in admin.describe_topics(sorted(pending)):
            parts = meta.get("partitions") or []
            if meta.get("error_code", 0) == 0 and parts and all(p["leader"] >= 0 for p in parts):
                pending.discard(meta["topic"])
        if pending:
            time.sleep(0.1)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    messages: int


def describe_topics(settings: Settings) -> list[TopicInfo]:
    """Our topics (names starting with the topic prefix or the app id) and message counts.

    The count is end offset minus beginning offset summed over partitions: retained records.
    """
    with kafka_consumer(settings) as consumer:
        names = sorted(
            t
            for t in consumer.topics()
            if t.startswith(settings.topic_prefix) or t.startswith(settings.app_id + "-")
        )
        infos = []
        for name in names:
            tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
            begin = consumer.beginning_offsets(tps)
            end = consumer.end_offsets(tps)
            infos.append(TopicInfo(name, len(tps), sum(end[tp] - begin[tp] for tp in tps)))
    return infos


def _group_offsets(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    # The group coordinator may still be loading (first use of __consumer_offsets): retry.
    for attempt in range(20):
        try:
            return admin.list_consumer_group_offsets(group)
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            if attempt == 19:
                raise
            time.sleep(0.5)
    return {}


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int
    lag: int


def consumer_lag(settings: Settings, group: str | None = None) -> list[PartitionLag]:
    """Lag per partition. Default: the whole pipeline, i.e. the ingest group
    (``<app_id>-ingest``) on the input topics and the Faust group (``<app_id>``) on
    ``<prefix>events``. With ``group``: that group on the topics it has committed offsets for
    plus our input topics and ``<prefix>events``. A partition without a committed offset lags
    by all its records."""
    if group is None:
        sources = set(settings.source_topics().values())
        return ([r for r in _group_lag(settings, settings.ingest_group, sources)
                 if r.topic in sources]
                + [r for r in _group_lag(settings, settings.app_id, {settings.events_topic})
                   if r.topic == settings.events_topic])
    return _group_lag(settings, group,
                      set(settings.source_topics().values()) | {settings.events_topic})


def _group_lag(settings: Settings, group: str, topics: set[str]) -> list[PartitionLag]:
    with kafka_admin(settings) as admin:
        committed = {tp: meta.offset for tp, meta in _group_offsets(admin, group).items()}
    with kafka_consumer(settings) as consumer:
        topics = topics | {tp.topic for tp in committed}
        tps = [
            TopicPartition(t, p)
            for t in sorted(topics)
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        end = consumer.end_offsets(tps)
        begin = consumer.beginning_offsets(tps)
    rows = []
    for tp in tps:
        done = committed.get(tp)
        start = done if done is not None and done >= 0 else begin[tp]
        rows.append(PartitionLag(tp.topic, tp.partition, done, end[tp], max(0, end[tp] - start)))
    return rows


def check_events_partitions(settings: Settings) -> None:
    """Raise :class:`ConfigError` unless ``<prefix>events`` has ``CUSTPULSE_PARTITIONS``
    partitions: the ingest stage places customers by that count, and the table's changelog
    must match it."""
    with kafka_consumer(settings) as consumer:
        found = consumer.partitions_for_topic(settings.events_topic) or set()
    if found and len(found) != settings.partitions:
        raise ConfigError(
            f"Topic {settings.events_topic} has {len(found)} partitions but "
            f"CUSTPULSE_PARTITIONS is {settings.partitions}: set CUSTPULSE_PARTITIONS="
            f"{len(found)} (or use a new CUSTPULSE_TOPIC_PREFIX and CUSTPULSE_APP_ID)."
        )
