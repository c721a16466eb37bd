"""Reading whole topics back in tests (kafka-python, no consumer group)."""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from custpulse.settings import Settings


def read_topic(settings: Settings, topic: str, timeout: float = 180) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) currently in ``topic``, partition by partition."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout} s")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.key, r.value) for r in records)
        return out
    finally:
        consumer.close()


def read_events(settings: Settings) -> list[dict[str, Any]]:
    """The canonical events on ``<prefix>events``, unpacked from their envelopes (ticks left
    out), partition by partition in log order."""
    from custpulse.schemas.envelope import unpack

    return [record for _, value in read_topic(settings, settings.events_topic)
            for record in unpack(value) if record.get("kind") != "tick"]


def table_from_changelog(settings: Settings, table: str) -> dict[str, Any]:
    """A Faust table as its changelog holds it: the last value per key (None = deleted).
    Keys and values are JSON (Faust's table serializers)."""
    state: dict[str, Any] = {}
    for key, value in read_topic(settings, f"{settings.app_id}-{table}-changelog"):
        assert key is not None
        state[json.loads(key)] = None if value is None else json.loads(value)
    return {k: v for k, v in state.items() if v is not None}


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
