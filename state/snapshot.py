"""The profiles table as a snapshot: the latest value of every customer, read from the
table's changelog topic (``<app_id>-profiles-changelog``), which is what the workers recover
from. Reading needs no worker and no consumer group; it sees what the workers have written
(acknowledged by Kafka) up to the moment the read started (the end offsets then)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from custpulse.errors import ServiceUnavailable
from custpulse.settings import Settings
from custpulse.state.tables import PROFILES
from custpulse.streams.admin import kafka_consumer, kafka_unreachable


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-{PROFILES}-changelog"


def read_values(settings: Settings, timeout_s: float = 600.0,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """user_id -> the customer's latest table value (a deleted key is left out).
    ``progress(read, total)`` is told how many changelog records are read so far.
    Raises :class:`ServiceUnavailable` with one sentence when Kafka cannot be read."""
    topic = changelog_topic(settings)
    state: dict[str, Any] = {}
    with kafka_consumer(settings) as consumer:
        try:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise ServiceUnavailable(
                    f"The profiles changelog {topic} does not exist on {settings.kafka_bootstrap}:"
                    " run a worker (custpulse worker) on some input first, or check "
                    "CUSTPULSE_APP_ID.")
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            start = {tp: consumer.position(tp) for tp in tps}
            total = sum(end[tp] - start[tp] for tp in tps)
            done = 0
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"Could not read {topic} to its end within {timeout_s:.0f} s: the "
                        "broker is slow or the topic is very large; try again or raise the "
                        "timeout.")
                for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                    for r in records:
                        if r.offset >= end[tp] or r.key is None:
                            continue
                        key = json.loads(r.key)
                        state[key] = None if r.value is None else json.loads(r.value)
                    done += len(records)
                if progress is not None:
                    progress(min(done, total), total)
        except KafkaError as exc:
            raise kafka_unreachable(settings) from exc
    return {k: v for k, v in state.items() if v is not None}
