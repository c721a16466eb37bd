"""Wiring: raw input topics -> ingest stage (batch consumer, ``streams.ingest_stage``) ->
envelopes on ``<prefix>events`` (per customer partition) -> fold agent (one Faust event per
envelope) -> table, Redis, alerts. Timers turn deadlines into tick envelopes on the same topic
and check ops alerts. Nothing here dies on a record: processors return outcomes as data."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import redis.asyncio as aioredis

from custpulse.processors.campaigns import campaign_triggers, load_campaigns
from custpulse.processors.clock import Watermark
from custpulse.processors.envelope_fold import DeadLetter, EnvelopeFold, Mirror
from custpulse.processors.ingest import IngestConfig, Position
from custpulse.processors.lifecycle import decide, evaluated_at
from custpulse.processors.ops import OpsMonitor
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.envelope import (
    TICK_BYTES,
    envelopes,
    partition_for,
    tick_record,
    unpack,
)
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.schemas.times import to_iso
from custpulse.settings import Settings
from custpulse.state.deadlines import DeadlineIndex
from custpulse.state.redis_mirror import (
    profile_fields,
    profile_key,
    write_profiles,
    write_quality,
)
from custpulse.state.tables import profiles_table
from custpulse.streams.ingest_stage import IngestStage
from custpulse.streams.metrics import Metrics

log = logging.getLogger("custpulse.agents")

QUALITY_PUBLISH_INTERVAL_S = 5.0
DEADLINE_INTERVAL_S = 0.5
OPS_INTERVAL_S = 10.0
ANNOUNCE_QUEUE = 16
"""Envelopes folded but not yet announced (then the fold waits: back pressure)."""


def ingest_config(settings: Settings) -> IngestConfig:
    """Mappings, zone, secret and limits from settings (raises ConfigError if unusable)."""
    return IngestConfig(
        mappings=load_mappings(settings.mapping),
        zone=settings.zone,
        secret=settings.secret_bytes(),
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
    )


def register_agents(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Declare topics, the table, the agents and the timers on ``app``."""
    def out_topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", **kw)

    events_topic = out_topic(settings.events_topic, partitions=settings.partitions)
    deadletter_topic = out_topic(settings.deadletter_topic)
    changes_topic = out_topic(settings.segment_changes_topic)
    triggers_topic = out_topic(settings.campaign_triggers_topic)
    ops_topic = out_topic(settings.ops_alerts_topic)
    profiles = profiles_table(app, settings)
    config = ingest_config(settings)
    library = load_library(settings.segments)
    campaigns = load_campaigns(settings.campaigns)
    quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS)
    clock = Watermark(timedelta(seconds=settings.allowed_lateness_s), settings.idle_clock)
    deadlines = DeadlineIndex()
    ops = OpsMonitor()

    folder = EnvelopeFold(library, clock, settings.dedupe_max_ids)

    @app.service
    class Ingest(IngestStage):
        """The batch ingest stage, started and stopped with the worker."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings=settings, metrics=metrics, config=config,
                             quality=quality, clock=clock, ops=ops, **kwargs)

    async def dead_letter(letter: DeadLetter, position: Position) -> None:
        metrics.deadlettered.labels(letter.source, letter.code).inc()
        record = deadletter_record(
            letter.code, letter.field, letter.message, letter.source, datetime.now(UTC),
            letter.payload, topic=position.topic, partition=position.partition,
            offset=position.offset,
        )
        await deadletter_topic.send(key=None, value=json.dumps(record).encode())

    async def state_acknowledged() -> None:
        """Wait until every table write handed to Faust so far is acknowledged by Kafka
        (Faust's own flush gives up on its buffer after 0.1 s without progress)."""
        buffer = app.producer.buffer
        while buffer.size:
            await buffer.flush()
        await app.producer.flush()

    async def announce(client: Any, rounds: list[dict[str, Mirror]]) -> None:
        """Mirror every touched customer of ``rounds`` (consecutive envelopes, in order) to
        Redis in one pipeline, then send their alerts and campaign triggers (all
        repeat-safe)."""
        if not any(rounds):
            return
        if any(m.alerts for mirrors in rounds for m in mirrors.values()):
            # State first: the table's changelog writes are buffered (Faust's send_soon),
            # alerts are not. Wait until the writes are acknowledged, so an alert is never
            # out while the state that decided it could still be lost; after a crash the
            # cause is then a duplicate and re-sends the very same alert.
            await state_acknowledged()
        updated_at = to_iso(datetime.now(UTC))
        await write_profiles(client, [
            (profile_key(settings, user_id),
             profile_fields(m.value["dedupe"] or {"by_source": {}}, updated_at, m.view),
             m.alerts)
            for mirrors in rounds for user_id, m in mirrors.items()
        ], settings)
        for mirrors in rounds:
            for user_id, m in mirrors.items():
                for alert in m.alerts:
                    metrics.segment_changes.labels(alert["group"]).inc()
                    await changes_topic.send(key=user_id.encode(),
                                             value=json.dumps(alert).encode())
                    for trigger in campaign_triggers(campaigns, alert):
                        await triggers_topic.send(key=user_id.encode(),
                                                  value=json.dumps(trigger).encode())

    @app.agent(events_topic, name="fold")
    async def fold_agent(stream: faust.StreamT) -> None:
        """One Faust event per envelope: fold its records, then one table write, one deadline
        and one mirror per touched customer.

        Announcing (waiting for the state to be acknowledged, the Redis pipeline, the alert
        sends) runs beside the fold, in envelope order, for every envelope that has queued up
        meanwhile at once; an envelope is acknowledged to Faust (so its offset may be
        committed) only after its announcement. So the fold does not wait for the broker or
        Redis, and at-least-once still holds."""
        client = aioredis.Redis.from_url(settings.redis_url)
        manual = stream.noack()
        queue: asyncio.Queue[tuple[Any, dict[str, Mirror], float]] = asyncio.Queue(
            maxsize=ANNOUNCE_QUEUE)

        async def announcer() -> None:
            try:
                while True:
                    batch = [await queue.get()]
                    while not queue.empty():
                        batch.append(queue.get_nowait())
                    await announce(client, [mirrors for _, mirrors, _ in batch])
                    for event, _, started in batch:
                        await manual.ack(event)
                        metrics.fold_seconds.observe(time.perf_counter() - started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing unannounced is acknowledged, so a restart redoes it: stop loudly
                # rather than sit with a growing lag.
                log.error("announcing failed (%s); stopping the worker", type(exc).__name__)
                await app.crash(exc)
                raise

        task = asyncio.ensure_future(announcer())
        try:
            async for event in manual.events():
                if task.done():
                    task.result()  # the announcer failed: fail the agent with its error
                started = time.perf_counter()
                message = event.message
                position = Position(message.topic, message.partition, message.offset)
                try:
                    records = unpack(event.value)
                except ValueError:
                    await dead_letter(DeadLetter("bad_canonical_event", None,
                                                 "not a canonical event or envelope",
                                                 "events", 0), position)
                    await queue.put((event, {}, started))
                    continue
                result = folder.fold(records, profiles.get, datetime.now(UTC))
                for letter in result.deadletters:
                    await dead_letter(letter, position)
                for user_id, value in result.writes.items():
                    profiles[user_id] = value
                for user_id, at in result.deadlines.items():
                    deadlines.add(user_id, at)
                for kind, at in result.ops:
                    ops.observe(kind, at)
                for source, n in result.accepted.items():
                    metrics.accepted.labels(source).inc(n)
                for source, n in result.duplicates.items():
                    metrics.duplicates.labels(source).inc(n)
                await queue.put((event, result.mirrors, started))
        finally:
            task.cancel()
            await client.aclose()

    @app.on_rebalance_complete.connect
    async def rebuild_deadlines(sender: Any, **kwargs: Any) -> None:
        """After (re)start or rebalance: one pass over the assigned customers' values."""
        count = 0
        for user_id, value in list(profiles.items()):
            seg = (value or {}).get("seg")
            at = evaluated_at(seg)
            if at is None:
                continue
            decision = decide(value["profile"], seg, at, library=library, user_id=user_id,
                              cause="rebuild", event_time=at, processing_time=at, late=False)
            deadlines.add(user_id, decision.deadline)
            count += 1
        log.info("deadline index rebuilt for %d customers", count)

    @app.timer(DEADLINE_INTERVAL_S)
    async def fire_deadlines() -> None:
        """Due deadlines become ticks, sent as envelopes to each customer's partition."""
        watermark = clock.current(datetime.now(UTC))
        if watermark is None:
            return
        due = deadlines.pop_due(watermark)
        if not due:
            return
        partitions = settings.partitions  # the worker checked the topic has exactly these
        by_partition: dict[int, list[tuple[dict[str, Any], int]]] = {}
        for user_id, at in due:
            by_partition.setdefault(partition_for(user_id, partitions), []).append(
                (tick_record(user_id, at), TICK_BYTES))
        for partition, ticks in sorted(by_partition.items()):
            for envelope in envelopes(ticks, settings.envelope_max_records):
                await events_topic.send(value=envelope, partition=partition)

    @app.timer(OPS_INTERVAL_S)
    async def check_ops() -> None:
        watermark = clock.current(datetime.now(UTC))
        if watermark is None:
            return
        for alert in ops.check(watermark):
            metrics.ops_alerts.labels(alert["kind"]).inc()
            await ops_topic.send(key=alert["kind"].encode(), value=json.dumps(alert).encode())

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
