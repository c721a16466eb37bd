"""Agents: raw input topics -> ingest -> ``<prefix>events`` (keyed by user_id) -> fold -> table
and Redis. Each agent calls a processor and routes its outcome; none dies on a record."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import redis.asyncio as aioredis

from custpulse.processors.clock import Watermark
from custpulse.processors.counting import fold_count
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.profile import fold_profile, profile_view
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.times import to_iso
from custpulse.settings import Settings
from custpulse.state.redis_mirror import (
    profile_fields,
    profile_key,
    write_profile,
    write_quality,
)
from custpulse.state.tables import profiles_table
from custpulse.streams.metrics import Metrics

log = logging.getLogger("custpulse.agents")

QUALITY_PUBLISH_INTERVAL_S = 5.0


def ingest_config(settings: Settings) -> IngestConfig:
    """Mappings, zone, secret and limits from settings (raises ConfigError if unusable)."""
    return IngestConfig(
        mappings=load_mappings(settings.mapping),
        zone=settings.zone,
        secret=settings.secret_bytes(),
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
    )


def register_agents(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Declare topics, the table, the two agents and the quality timer on ``app``."""
    source_of = {topic: source for source, topic in settings.source_topics().items()}
    raw_topics = app.topic(
        *source_of, key_serializer="raw", value_serializer="raw", allow_empty=True
    )
    events_topic = app.topic(
        settings.events_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    deadletter_topic = app.topic(
        settings.deadletter_topic, key_serializer="raw", value_serializer="raw"
    )
    profiles = profiles_table(app, settings)
    clock = Watermark(timedelta(seconds=settings.allowed_lateness_s), settings.idle_clock)
    config = ingest_config(settings)
    quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS)

    async def dead_letter(
        code: str, field: str | None, message: str, source: str, position: Position,
        payload: Any,
    ) -> None:
        metrics.deadlettered.labels(source, code).inc()
        record = deadletter_record(
            code, field, message, source, datetime.now(UTC), payload,
            topic=position.topic, partition=position.partition, offset=position.offset,
        )
        await deadletter_topic.send(key=None, value=json.dumps(record).encode())

    @app.agent(raw_topics, name="ingest")
    async def ingest_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            source = source_of[message.topic]
            metrics.events_in.labels(source).inc()
            position = Position(message.topic, message.partition, message.offset)
            outcome = ingest(event.value, source, position, config, datetime.now(UTC), quality)
            if isinstance(outcome, Accepted):
                canonical = outcome.event
                await events_topic.send(
                    key=canonical.user_id.encode(),
                    value=json.dumps(canonical.to_wire(), ensure_ascii=False).encode(),
                )
            else:
                await dead_letter(
                    outcome.code, outcome.field, outcome.message, source, position,
                    outcome.payload,
                )

    @app.agent(events_topic, name="fold")
    async def fold_agent(stream: faust.StreamT) -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            async for event in stream.events():
                started = time.perf_counter()
                message = event.message
                position = Position(message.topic, message.partition, message.offset)
                try:
                    canonical = CanonicalEvent.from_wire(json.loads(event.value))
                except (ValueError, KeyError, TypeError, AttributeError):
                    await dead_letter(
                        "bad_canonical_event", None, "not a canonical event", "events",
                        position, None,
                    )
                    continue
                value = profiles.get(canonical.user_id) or {"dedupe": None, "profile": None}
                state, verdict = fold_count(value["dedupe"], canonical, settings.dedupe_max_ids)
                clock.observe(canonical.event_time)
                as_of = clock.current(datetime.now(UTC)) or canonical.event_time
                profile = value["profile"]
                if verdict == "accepted":
                    profile = fold_profile(profile, canonical, as_of)
                    profiles[canonical.user_id] = {"dedupe": state, "profile": profile}
                    metrics.accepted.labels(canonical.source).inc()
                elif verdict == "duplicate":
                    metrics.duplicates.labels(canonical.source).inc()
                else:
                    await dead_letter(
                        "beyond_dedupe_horizon", "event_id",
                        "event is older than the ids remembered for this customer",
                        canonical.source, position, canonical.to_wire(),
                    )
                # Mirror also on a duplicate: after a crash the table may hold the event while
                # Redis does not yet. The write sets absolute values, so repeating it is safe.
                await write_profile(
                    client,
                    profile_key(settings, canonical.user_id),
                    profile_fields(
                        state, to_iso(datetime.now(UTC)), profile_view(profile, as_of)
                    ),
                )
                metrics.fold_seconds.observe(time.perf_counter() - started)
        finally:
            await client.aclose()

    @app.timer(QUALITY_PUBLISH_INTERVAL_S)
    async def publish_quality() -> None:
        snapshot = quality.snapshot()
        for source, fields in snapshot.items():
            for name, stats in fields.items():
                rate = stats.get("missing_rate")
                if isinstance(rate, int | float):
                    metrics.missing_rate.labels(source, name).set(rate)
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await write_quality(client, settings, snapshot)
        finally:
            await client.aclose()
