"""Agents: raw input topics -> ingest -> ``<prefix>events`` (keyed by user_id) -> fold -> table,
Redis, alerts. Timers turn deadlines into ticks on the same topic and check ops alerts. Each
agent calls processors and routes their outcomes; none dies on a record."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import redis.asyncio as aioredis

from custpulse.processors.campaigns import campaign_triggers, load_campaigns
from custpulse.processors.clock import Watermark
from custpulse.processors.counting import fold_count
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.lifecycle import decide, evaluated_at, resend
from custpulse.processors.ops import OpsMonitor
from custpulse.processors.profile import fold_profile
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.schemas.times import parse_time, to_iso
from custpulse.settings import Settings
from custpulse.state.deadlines import DeadlineIndex
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
DEADLINE_INTERVAL_S = 0.5
OPS_INTERVAL_S = 10.0


def ingest_config(settings: Settings) -> IngestConfig:
    """Mappings, zone, secret and limits from settings (raises ConfigError if unusable)."""
    return IngestConfig(
        mappings=load_mappings(settings.mapping),
        zone=settings.zone,
        secret=settings.secret_bytes(),
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
    )


def tick_message(user_id: str, deadline: datetime) -> bytes:
    """A time-driven re-evaluation request on ``<prefix>events`` (keyed by user_id)."""
    # full microsecond precision: a deadline may sit 1 us after a threshold
    return json.dumps({"v": 2, "kind": "tick", "user_id": user_id,
                       "deadline": deadline.astimezone(UTC).isoformat()}).encode()


def register_agents(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Declare topics, the table, the agents and the timers on ``app``."""
    source_of = {topic: source for source, topic in settings.source_topics().items()}
    raw_topics = app.topic(
        *source_of, key_serializer="raw", value_serializer="raw", allow_empty=True
    )

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
            now = datetime.now(UTC)
            outcome = ingest(event.value, source, position, config, now, quality)
            # Data-quality rates are counted where the stream is in event time: the watermark.
            at = clock.current(now) or now
            ops.observe("in", at)
            if isinstance(outcome, Accepted):
                canonical = outcome.event
                await events_topic.send(
                    key=canonical.user_id.encode(),
                    value=json.dumps(canonical.to_wire(), ensure_ascii=False).encode(),
                )
            else:
                ops.observe("deadletter", at)
                await dead_letter(
                    outcome.code, outcome.field, outcome.message, source, position,
                    outcome.payload,
                )

    async def announce(client: Any, user_id: str, value: dict[str, Any], view: dict[str, Any],
                       alerts: list[dict[str, Any]]) -> None:
        """Mirror to Redis, then send alerts and campaign triggers (all repeat-safe)."""
        await write_profile(
            client, profile_key(settings, user_id),
            profile_fields(value["dedupe"] or {"by_source": {}}, to_iso(datetime.now(UTC)), view),
            alerts, settings,
        )
        for alert in alerts:
            metrics.segment_changes.labels(alert["group"]).inc()
            await changes_topic.send(key=user_id.encode(), value=json.dumps(alert).encode())
            for trigger in campaign_triggers(campaigns, alert):
                await triggers_topic.send(key=user_id.encode(),
                                          value=json.dumps(trigger).encode())

    async def on_event(client: Any, canonical: CanonicalEvent, position: Position) -> None:
        user_id = canonical.user_id
        value = profiles.get(user_id) or {"dedupe": None, "profile": None, "seg": None}
        state, verdict = fold_count(value["dedupe"], canonical, settings.dedupe_max_ids)
        if verdict == "beyond_horizon":
            await dead_letter(
                "beyond_dedupe_horizon", "event_id",
                "event is older than the ids remembered for this customer",
                canonical.source, position, canonical.to_wire(),
            )
            return
        if verdict == "duplicate":
            metrics.duplicates.labels(canonical.source).inc()
            # A redelivery after a crash: re-send what this event decided (same alert ids)
            # and re-mirror; nothing else changes.
            seg = value.get("seg")
            before = evaluated_at(seg) or canonical.event_time
            decision = decide(value["profile"], seg, before, library=library, user_id=user_id,
                              cause=canonical.event_id, event_time=canonical.event_time,
                              processing_time=datetime.now(UTC), late=True)
            await announce(client, user_id, value, decision.view, resend(seg, canonical.event_id))
            return
        metrics.accepted.labels(canonical.source).inc()
        previous = evaluated_at(value.get("seg"))
        late = clock.is_late(canonical.event_time, datetime.now(UTC)) or (
            previous is not None and canonical.event_time <= previous)
        clock.observe(canonical.event_time)
        as_of = max(x for x in (clock.current(datetime.now(UTC)), previous,
                                canonical.event_time) if x is not None)
        profile = fold_profile(value["profile"], canonical, as_of)
        decision = decide(profile, value.get("seg"), as_of, library=library, user_id=user_id,
                          cause=canonical.event_id, event_time=canonical.event_time,
                          processing_time=datetime.now(UTC), late=late)
        value = {"dedupe": state, "profile": profile, "seg": decision.seg}
        profiles[user_id] = value
        deadlines.add(user_id, decision.deadline)
        _observe_ops(canonical)
        await announce(client, user_id, value, decision.view, decision.alerts)

    def _observe_ops(canonical: CanonicalEvent) -> None:
        data = canonical.data
        if canonical.source == "tickets" and (
                data.get("is_complaint") is True or data.get("issue_type") == "complaint"):
            ops.observe("complaint", canonical.event_time)
        elif canonical.source == "behavior" and data.get("behavior_type") == "add_to_cart":
            ops.observe("add_to_cart", canonical.event_time)
        elif canonical.source == "orders" and data.get("status") not in (
                "returned", "refunded", "cancelled"):
            ops.observe("order", canonical.event_time)

    async def on_tick(client: Any, user_id: str, deadline: datetime) -> None:
        value = profiles.get(user_id)
        if value is None:
            return
        seg = value.get("seg")
        cause = f"timer:{deadline.astimezone(UTC).isoformat()}"
        previous = evaluated_at(seg)
        if previous is not None and deadline <= previous:
            # Already evaluated at or after this deadline (maybe by this very tick before a
            # crash): re-send what it decided, if anything, and keep the next deadline known.
            alerts = resend(seg, cause)
            if alerts:
                decision = decide(value["profile"], seg, previous, library=library,
                                  user_id=user_id, cause=cause, event_time=deadline,
                                  processing_time=datetime.now(UTC), late=False)
                await announce(client, user_id, value, decision.view, alerts)
            return
        decision = decide(value["profile"], seg, deadline, library=library, user_id=user_id,
                          cause=cause, event_time=deadline, processing_time=datetime.now(UTC),
                          late=False)
        value = dict(value, seg=decision.seg)
        profiles[user_id] = value
        deadlines.add(user_id, decision.deadline)
        await announce(client, user_id, value, decision.view, decision.alerts)

    @app.agent(events_topic, name="fold")
    async def fold_agent(stream: faust.StreamT) -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            async for event in stream.events():
                started = time.perf_counter()
                message = event.message
                position = Position(message.topic, message.partition, message.offset)
                try:
                    wire = json.loads(event.value)
                    if isinstance(wire, dict) and wire.get("kind") == "tick":
                        moment = parse_time(wire["deadline"], UTC)
                        if moment is None:
                            raise ValueError("bad tick")
                        await on_tick(client, str(wire["user_id"]), moment)
                        continue
                    canonical = CanonicalEvent.from_wire(wire)
                except (ValueError, KeyError, TypeError, AttributeError):
                    await dead_letter(
                        "bad_canonical_event", None, "not a canonical event", "events",
                        position, None,
                    )
                    continue
                await on_event(client, canonical, position)
                metrics.fold_seconds.observe(time.perf_counter() - started)
        finally:
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
        watermark = clock.current(datetime.now(UTC))
        if watermark is None:
            return
        for user_id, at in deadlines.pop_due(watermark):
            await events_topic.send(key=user_id.encode(), value=tick_message(user_id, at))

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
