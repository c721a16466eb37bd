"""Agents: raw input topics -> ingest -> ``<prefix>events`` (keyed by user_id) -> fold -> table
and Redis. Each agent calls a processor and routes its outcome; none dies on a record."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
import redis.asyncio as aioredis

from custpulse.processors.counting import fold_count
from custpulse.processors.ingest import Accepted, Position, Rejected, ingest
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import to_iso
from custpulse.settings import Settings
from custpulse.state.redis_mirror import profile_fields, profile_key, write_profile
from custpulse.state.tables import event_counts_table
from custpulse.streams.metrics import Metrics

log = logging.getLogger("custpulse.agents")


def deadletter_record(
    rejected: Rejected, source: str, position: Position, received_at: datetime
) -> dict[str, Any]:
    """The dead-letter message: reason and position, never the raw payload's values."""
    return {
        "v": 1,
        "reason": {"code": rejected.code, "field": rejected.field, "message": rejected.message},
        "source": source,
        "topic": position.topic,
        "partition": position.partition,
        "offset": position.offset,
        "received_at": to_iso(received_at),
        "payload": None,
    }


def register_agents(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Declare topics, the table and the two agents on ``app``."""
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
    counts = event_counts_table(app, settings)
    zone = settings.zone

    async def dead_letter(rejected: Rejected, source: str, position: Position) -> None:
        metrics.deadlettered.labels(source, rejected.code).inc()
        record = deadletter_record(rejected, source, position, datetime.now(UTC))
        await deadletter_topic.send(key=None, value=json.dumps(record).encode())

    @app.agent(raw_topics, name="ingest")
    async def ingest_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            source = source_of[message.topic]
            metrics.events_in.labels(source).inc()
            position = Position(message.topic, message.partition, message.offset)
            outcome = ingest(event.value, source, position, zone)
            if isinstance(outcome, Accepted):
                canonical = outcome.event
                await events_topic.send(
                    key=canonical.user_id.encode(),
                    value=json.dumps(canonical.to_wire()).encode(),
                )
            else:
                await dead_letter(outcome, source, position)

    @app.agent(events_topic, name="fold")
    async def fold_agent(stream: faust.StreamT) -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            async for event in stream.events():
                started = time.perf_counter()
                message = event.message
                try:
                    canonical = CanonicalEvent.from_wire(json.loads(event.value))
                except (ValueError, KeyError, TypeError):
                    position = Position(message.topic, message.partition, message.offset)
                    await dead_letter(
                        Rejected("bad_canonical_event", None, "not a canonical event"),
                        "events",
                        position,
                    )
                    continue
                state, verdict = fold_count(counts.get(canonical.user_id), canonical)
                if verdict == "accepted":
                    counts[canonical.user_id] = state
                    metrics.accepted.labels(canonical.source).inc()
                else:
                    metrics.duplicates.labels(canonical.source).inc()
                # Mirror also on a duplicate: after a crash the table may hold the event while
                # Redis does not yet. The write sets absolute values, so repeating it is safe.
                await write_profile(
                    client,
                    profile_key(settings, canonical.user_id),
                    profile_fields(state, to_iso(datetime.now(UTC))),
                )
                metrics.fold_seconds.observe(time.perf_counter() - started)
        finally:
            await client.aclose()
