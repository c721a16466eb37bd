"""Wiring: raw input topics -> ingest stage (batch consumer, ``streams.ingest_stage``) ->
envelopes on ``<prefix>events`` (per customer partition) -> fold agent (one Faust event per
envelope) -> table, Redis, alerts. Timers turn deadlines into tick envelopes on the same topic
and check ops alerts. Nothing here dies on a record: processors return outcomes as data."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.types import TP

from custpulse.processors import churn_fold
from custpulse.processors.campaigns import campaign_triggers, load_campaigns
from custpulse.processors.churn_fold import ChurnConfig
from custpulse.processors.clock import Watermark
from custpulse.processors.envelope_fold import DeadLetter, EnvelopeFold, Mirror, value_deadline
from custpulse.processors.health import Health
from custpulse.processors.ingest import IngestConfig, Position
from custpulse.processors.lifecycle import decide, evaluated_at
from custpulse.processors.ops import OpsMonitor
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.schemas import wire
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.envelope import (
    envelopes,
    partition_for,
    tick_bytes,
    tick_records,
    unpack,
)
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.schemas.times import aware_from_iso
from custpulse.settings import Settings
from custpulse.state.deadlines import DeadlineIndex
from custpulse.state.delivery import Delivery
from custpulse.state.redis_client import connect
from custpulse.state.redis_mirror import (
    SEGMENT_FIELDS,
    MirrorCache,
    ProfileWrite,
    profile_fields,
    segment_key,
    write_profiles,
)
from custpulse.state.tables import ProfileStore, profiles_table
from custpulse.streams.admin import consumer_lag
from custpulse.streams.churn_scoring import ModelFollower, ModelHolder
from custpulse.streams.clock_feed import ClockFeed
from custpulse.streams.exact_offsets import AHEAD, BEHIND, ExactOffsetsConsumer, LogOrder
from custpulse.streams.ingest_stage import IngestStage
from custpulse.streams.metrics import Metrics
from custpulse.streams.periodic import (
    OPS_INTERVAL_S,
    QUALITY_PUBLISH_INTERVAL_S,
    ops_records,
    publish_quality,
)
from custpulse.streams.recovery_guard import SeekAfterRecovery

log = logging.getLogger("custpulse.agents")

DEADLINE_INTERVAL_S = 0.5
SAMPLE_INTERVAL_S = 15.0
"""Seconds between samples of consumer lag and segment sizes for the metrics."""
TICK_MAX_DELAY_S = 5.0
"""While the fold has unread messages in a partition of ``<prefix>events`` (a backfill, a
backlog), its due deadlines wait for the fold to catch up (the customers' queued events apply
them on their own), at most this many seconds."""
HEAL_INTERVAL_S = 1.0  # seconds between stall checks of the events partitions
REFETCH_S = 2.0  # at most one re-fetch per events partition in this many seconds
ANNOUNCE_QUEUE = 16
"""Envelopes folded but not yet acknowledged (then the fold waits: back pressure)."""


def ingest_config(settings: Settings) -> IngestConfig:
    """Mappings, zone, secret and limits from settings (raises ConfigError if unusable)."""
    return IngestConfig(
        mappings=load_mappings(settings.mapping),
        zone=settings.zone,
        secret=settings.secret_bytes(),
        secret_version=settings.pii_secret_version,
        max_future_skew=timedelta(seconds=settings.max_future_skew_s),
    )


def new_clock(settings: Settings) -> Watermark:
    """An event-time clock with the settings' lateness, idle mode and idle timeout."""
    return Watermark(timedelta(seconds=settings.allowed_lateness_s), settings.idle_clock,
                     timedelta(seconds=settings.idle_timeout_s))


def register_agents(app: faust.App, settings: Settings, metrics: Metrics,
                    health: Health | None = None) -> None:
    """Declare topics, the table, the agents and the timers on ``app``."""
    health = health if health is not None else Health()

    def out_topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", **kw)

    events_topic = out_topic(settings.events_topic, partitions=settings.partitions)
    deadletter_topic = out_topic(settings.deadletter_topic)
    # alerts and triggers go out through app.producer (see announce); declared here too
    out_topic(settings.segment_changes_topic)
    out_topic(settings.campaign_triggers_topic)
    ops_topic = out_topic(settings.ops_alerts_topic)
    profiles = profiles_table(app, settings)
    store = ProfileStore(profiles, metrics.table_value_bytes.observe)
    library = load_library(settings.segments)
    campaigns = load_campaigns(settings.campaigns)
    # the fold's watermark: every ingest process's reports on <prefix>clock (clock_feed)
    clock = new_clock(settings)
    deadlines = DeadlineIndex()
    ops = OpsMonitor()
    mirrored = MirrorCache()  # what this worker last wrote to Redis: only changes are sent
    folded: dict[int, int] = {}  # per events partition: the offset after the last one folded
    waiting_since: dict[int, float] = {}  # per partition: since when its due ticks wait

    churn = ChurnConfig(settings.churn_horizon_days, settings.churn_threshold,
                        settings.churn_rescore_days)
    folder = EnvelopeFold(library, settings.dedupe_max_ids,
                          timedelta(seconds=settings.freshness_horizon_s),
                          rewrite_duplicates=settings.store == "rocksdb://", churn=churn,
                          zone=settings.zone)
    models = ModelHolder()  # the newest churn model version, followed by Models below

    if settings.runs_ingest:
        ingest_clock = new_clock(settings)  # what this process reads; reported to the feed
        config = ingest_config(settings)
        quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS)

        @app.service
        class Ingest(IngestStage):
            """The batch ingest stage, started and stopped with the worker."""

            def __init__(self, **kwargs: Any) -> None:
                super().__init__(settings=settings, metrics=metrics, config=config,
                                 quality=quality, clock=ingest_clock, ops=ops, **kwargs)

    async def score_unscored(model: Any) -> None:
        """A model (a first one, or one that may score where the last did not): the customers
        without a probability are due now, so the next ticks score them."""
        count = 0
        for n, (user_id, value) in enumerate(store.items()):
            if n % 1000 == 999:
                await asyncio.sleep(0)
            at = evaluated_at((value or {}).get("seg"))
            if at is not None and churn_fold.unscored(value, model.version):
                deadlines.add(user_id, at, partition_for(user_id, settings.partitions))
                count += 1
        if count:
            log.info("churn model version %d: %d customers to score", model.version, count)

    @app.service
    class Models(ModelFollower):
        """The churn model to score with: the newest version on <prefix>churn-models."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings=settings, holder=models, metrics=metrics,
                             on_adopt=score_unscored, **kwargs)

    @app.service
    class Feed(ClockFeed):
        """The shared watermark, read from <prefix>clock."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(settings=settings, clock=clock, **kwargs)

    async def dead_letter(letter: DeadLetter, position: Position) -> Any:
        """Send one dead letter; returns the future of its acknowledgement."""
        metrics.deadlettered.labels(letter.source, letter.code).inc()
        record = deadletter_record(
            letter.code, letter.field, letter.message, letter.source, datetime.now(UTC),
            letter.payload, topic=position.topic, partition=position.partition,
            offset=position.offset,
        )
        return await deadletter_topic.send(key=None, value=json.dumps(record).encode())

    async def announce(client: Any, rounds: list[dict[str, Mirror]]) -> None:
        """Mirror every touched customer of ``rounds`` (consecutive envelopes whose state is
        acknowledged, in order) to Redis in one pipeline, then send their alerts and campaign
        triggers and wait until Kafka has them (all repeat-safe: stable ids)."""
        if not any(rounds):
            return
        # each alert encoded once, for the Redis stream and for Kafka (per mirror: a customer
        # may be in several rounds)
        encoded = {id(m): [wire.dumps(alert) for alert in m.alerts]
                   for mirrors in rounds for m in mirrors.values()}
        await write_profiles(client, [
            ProfileWrite(user_id, m.version, profile_fields(m.counts, m.updated_at, m.view),
                         encoded[id(m)])
            for mirrors in rounds for user_id, m in mirrors.items()
        ], settings, mirrored, metrics)
        # straight to the app's producer (the topics are declared above): Faust's per-message
        # send machinery costs more than the alert itself, and a backfill announces many
        producer = app.producer
        sent = []
        by_group: Counter[str] = Counter()
        now_s = time.time()
        for mirrors in rounds:
            for user_id, m in mirrors.items():
                key = user_id.encode()
                for alert, value in zip(m.alerts, encoded[id(m)], strict=True):
                    by_group[alert["group"]] += 1
                    sent.append(await producer.send(settings.segment_changes_topic, key,
                                                    value, None, None, None))
                    if not alert.get("historical"):
                        moved = aware_from_iso(alert.get("event_time"))
                        if moved is not None:
                            metrics.alert_lag.observe(max(0.0, now_s - moved.timestamp()))
                    for trigger in campaign_triggers(campaigns, alert):
                        metrics.campaign_triggers.labels(
                            str(trigger["action"].get("campaign", "")),
                            "true" if trigger["holdout"] else "false").inc()
                        sent.append(await producer.send(
                            settings.campaign_triggers_topic, key, wire.dumps(trigger),
                            None, None, None))
                for example in m.examples:  # labelled in the fold, re-sent after a redelivery
                    metrics.churn_examples.labels(str(example["label"])).inc()
                    sent.append(await producer.send(settings.churn_examples_topic, key,
                                                    wire.dumps(example), 0, None, None))
        for group, n in by_group.items():
            metrics.segment_changes.labels(group).inc(n)
        for future in sent:
            await future

    @app.agent(events_topic, name="fold")
    async def fold_agent(stream: faust.StreamT) -> None:
        """One Faust event per envelope: fold its records, then one table write, one deadline
        and one mirror per touched customer.

        The delivery protocol (:class:`~custpulse.state.delivery.Delivery`) runs beside the
        fold: it waits until the envelope's changelog writes are acknowledged by Kafka, then
        announces (Redis pipeline, alert sends) and only then acknowledges the envelope to
        Faust, so its offset may be committed. So the fold does not wait for the broker or
        Redis, and at-least-once holds for state, mirror and alerts."""
        client = connect(settings.redis_url)
        manual = stream.noack()

        def finished(item: Any) -> None:
            metrics.fold_seconds.observe(time.perf_counter() - item.started)

        delivery: Delivery[Any, dict[str, Mirror]] = Delivery(
            lambda rounds: announce(client, rounds), manual.ack, max_pending=ANNOUNCE_QUEUE,
            done=finished)

        async def deliver() -> None:
            try:
                await delivery.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing unannounced is acknowledged, so a restart redoes it: stop loudly
                # rather than sit with a growing lag.
                log.error("delivery failed (%s); stopping the worker", type(exc).__name__)
                await app.crash(exc)
                raise

        exact = app.consumer if isinstance(app.consumer, ExactOffsetsConsumer) else None
        order = LogOrder()
        refetched: dict[Any, float] = {}

        async def admit(consumer: ExactOffsetsConsumer, message: Any) -> str:
            """NEXT, BEHIND or AHEAD (see LogOrder); AHEAD also when the resume point of the
            partition cannot be looked up now (the message is fetched again later)."""
            tp = message.tp
            consumer.delivered(tp)
            if order.generation != message.generation_id:
                refetched.clear()
            known = order.generation == message.generation_id and order.expected(tp) is not None
            if known:
                verdict = order.admit(tp, message.offset, message.generation_id, None)
            else:
                try:
                    floor = await consumer.floor(tp)
                except Exception as exc:  # revoked meanwhile, broker unreachable: later
                    log.warning("%s:%d: resume point unknown (%s); reading it again later",
                                tp.topic, tp.partition, type(exc).__name__)
                    return AHEAD
                verdict = order.admit(tp, message.offset, message.generation_id, floor)
            if verdict != AHEAD:
                consumer.admitted(message)
            return verdict

        async def refetch(consumer: ExactOffsetsConsumer, tp: Any) -> None:
            at = time.monotonic()
            if at - refetched.get(tp, -REFETCH_S) < REFETCH_S:
                return  # one re-fetch is on its way
            refetched[tp] = at
            try:
                start = await consumer.floor(tp)  # the log start, if what we wait for expired
                offset = order.expected(tp)
                if offset is None or offset < start:
                    order.skip_to(tp, start)
                    offset = start
                await consumer.refetch(tp, offset)
            except Exception as exc:  # revoked meanwhile, broker unreachable: the heal retries
                log.warning("%s:%d: re-fetch failed (%s)", tp.topic, tp.partition,
                            type(exc).__name__)
                return
            log.info("%s:%d: envelopes after offset %d arrived before it; fetching from it again",
                     tp.topic, tp.partition, offset)

        async def events() -> Any:
            """The stream's events; while the fold waits for the next one, the heal may look."""
            async for event in manual.events():
                if exact is not None:
                    exact.fold_waiting = False
                yield event
                if exact is not None:
                    exact.fold_waiting = True

        task = asyncio.ensure_future(deliver())
        try:
            async for event in events():
                if task.done():
                    task.result()  # the protocol failed: fail the agent with its error
                started = time.perf_counter()
                message = event.message
                if exact is not None:
                    verdict = await admit(exact, message)
                    if verdict == BEHIND:  # a copy: acknowledged after the one already taken
                        await delivery.submit(event, [], {}, started)
                        continue
                    if verdict == AHEAD:  # its predecessors were dropped: read them again
                        exact.forget(message)
                        await refetch(exact, message.tp)
                        continue
                position = Position(message.topic, message.partition, message.offset)
                folded[message.partition] = message.offset + 1
                try:
                    records = unpack(event.value)
                except ValueError:
                    letter = await dead_letter(DeadLetter(
                        "bad_canonical_event", None, "not a canonical event or envelope",
                        "events", 0), position)
                    await delivery.submit(event, [letter], {}, started)
                    continue
                now = datetime.now(UTC)
                result = folder.fold(records, store.get, now, models.current)
                writes = [await dead_letter(letter, position) for letter in result.deadletters]
                writes += [store.put(message.partition, user_id, value)
                           for user_id, value in result.writes.items()]
                for user_id, at in result.deadlines.items():
                    deadlines.add(user_id, at, message.partition)
                for kind, at in result.ops:
                    ops.observe(kind, at)
                for source, n in result.accepted.items():
                    metrics.accepted.labels(source).inc(n)
                now_s = now.timestamp()
                for at in result.event_times:
                    metrics.event_lag.observe(max(0.0, now_s - at.timestamp()))
                for source, n in result.duplicates.items():
                    metrics.duplicates.labels(source).inc(n)
                await delivery.submit(event, writes, result.mirrors, started)
        finally:
            task.cancel()
            await client.aclose()

    SeekAfterRecovery(app).arm()

    @app.timer(HEAL_INTERVAL_S)
    async def heal_partitions() -> None:
        """Fetch again an events partition whose head Faust dropped (see exact_offsets)."""
        consumer = app.consumer
        if not isinstance(consumer, ExactOffsetsConsumer):
            return
        try:
            await consumer.heal()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed look is retried in a second
            log.warning("partition stall check failed (%s: %s)", type(exc).__name__, exc)

    @app.on_partitions_revoked.connect
    async def not_ready(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        health.set_ready(False, "rebalancing")

    readiness: list[asyncio.Future[Any]] = []

    async def ready_when_recovered() -> None:
        await app.tables.wait_until_recovery_completed()
        if any(tp.topic == settings.events_topic for tp in app.consumer.assignment()):
            health.set_ready(True)
        else:
            health.set_ready(False, "no partitions assigned")

    @app.on_rebalance_complete.connect
    async def ready_after_recovery(sender: Any, **kwargs: Any) -> None:
        """Ready once the table recovery is done and partitions are assigned (in a task of
        its own: the signal is sent before recovery completes)."""
        for task in readiness:
            task.cancel()
        readiness[:] = [asyncio.ensure_future(ready_when_recovered())]

    @app.on_rebalance_complete.connect
    async def rebuild_deadlines(sender: Any, **kwargs: Any) -> None:
        """After (re)start or rebalance: the stored next deadline of each assigned customer
        (values written before deadlines were stored are evaluated once)."""
        count = 0
        deadlines.clear()  # what this worker holds now is rebuilt below
        folded.clear()
        for n, (user_id, value) in enumerate(store.items()):
            if n % 1000 == 999:
                await asyncio.sleep(0)  # a large table: let the event loop breathe
            seg = (value or {}).get("seg")
            at = evaluated_at(seg)
            if at is None:
                continue
            if seg is not None and "next_deadline" in seg and (
                    seg.get("rule_version") == library.version):
                deadline = value_deadline(value, churn, datetime.now(UTC) - timedelta(
                    seconds=settings.freshness_horizon_s))
            else:
                deadline = decide(value["profile"], seg, at, library=library,
                                  user_id=user_id, cause="rebuild", event_time=at,
                                  processing_time=at, late=False).deadline
                later = value_deadline(dict(value, seg=None), churn)  # the churn ones
                if later is not None and (deadline is None or later < deadline):
                    deadline = later
            if models.current is not None and churn_fold.unscored(value, models.current.version):
                deadline = at  # not scored by the model held: score it with the next tick
            deadlines.add(user_id, deadline, partition_for(user_id, settings.partitions))
            count += 1
        # What lives now (mostly the recovered table: acyclic state, freed by reference
        # counting when replaced) is left out of every later full collection of the garbage
        # collector; see streams/gc_tuning.py GC_THRESHOLDS.
        gc.freeze()
        log.info("deadline index rebuilt for %d customers", count)

    def unread(partition: int) -> bool:
        """Whether the fold has messages of this events partition still to read (unknown
        until it has folded one since the last rebalance: then ticks go out at once)."""
        if partition not in folded:
            return False
        try:
            end = app.consumer.highwater(TP(settings.events_topic, partition))
        except Exception:  # not assigned (any more), consumer stopping: tick, the fold decides
            return False
        return end is not None and end > folded[partition]

    @app.timer(DEADLINE_INTERVAL_S)
    async def fire_deadlines() -> None:
        """Deadlines the watermark has passed become tick records, sent as envelopes to each
        customer's partition; a tick carries the watermark (``until``), so each named customer
        steps through every deadline up to it in one go. While the fold has unread messages in
        a partition, its ticks wait (at most TICK_MAX_DELAY_S): the customers' queued events
        apply their deadlines themselves, and what is still due afterwards goes in one tick."""
        wall = datetime.now(UTC)
        health.beat(time.monotonic())
        for name, (at, _lagging) in clock.inputs(wall).items():
            metrics.watermark.labels(name).set(at.timestamp())
            metrics.watermark_lag.labels(name).set(max(0.0, (wall - at).total_seconds()))
        watermark = clock.current(wall)
        if watermark is None:
            return
        clock_s = time.monotonic()
        for partition in deadlines.due_partitions(watermark):
            if unread(partition):
                since = waiting_since.setdefault(partition, clock_s)
                if clock_s - since < TICK_MAX_DELAY_S:
                    continue
            waiting_since.pop(partition, None)
            due = deadlines.pop_due(watermark, partition=partition)
            records = tick_records(due, watermark)
            try:
                for envelope in envelopes([(r, tick_bytes(r)) for r in records], 1):
                    await events_topic.send(value=envelope, partition=partition)
            except BaseException:
                for user_id, at in due:  # nothing is lost: they are due again at the next run
                    deadlines.add(user_id, at, partition)
                raise
            metrics.tick_records.inc(len(records))
            metrics.tick_customers.inc(sum(len(r["users"]) for r in records))

    @app.timer(SAMPLE_INTERVAL_S)
    async def sample_gauges() -> None:
        """Consumer lag per topic and partition (kafka-python, in a thread) and segment sizes
        (SCARD of the Redis segment sets), for the metrics."""
        try:
            rows = await asyncio.get_running_loop().run_in_executor(None, consumer_lag,
                                                                    settings)
        except Exception as exc:  # a metric must never stop the worker
            log.warning("consumer lag sample failed (%s)", type(exc).__name__)
        else:
            for row in rows:
                metrics.consumer_lag.labels(row.topic, str(row.partition)).set(row.lag)
            # liveness: this worker's events partitions that lag and do not move
            try:
                mine = {tp.partition for tp in app.consumer.assignment()
                        if tp.topic == settings.events_topic}
            except Exception:  # consumer not started or stopping: nothing to judge
                mine = set()
            now_s = time.monotonic()
            for row in rows:
                if row.topic == settings.events_topic and row.partition in mine:
                    health.watch.observe(row.partition, row.committed, row.end, now_s)
            health.watch.keep_only(frozenset(mine))
            health.check_progress(now_s)
        client = connect(settings.redis_url)
        try:
            for group, _field in SEGMENT_FIELDS:
                spec = library.groups.get(group)
                for rule in spec.rules if spec is not None else ():
                    n = await client.scard(segment_key(settings, group, rule.name))
                    metrics.segment_customers.labels(group, rule.name).set(n)
        except Exception as exc:
            log.warning("segment size sample failed (%s)", type(exc).__name__)
        finally:
            await client.aclose()

    @app.timer(OPS_INTERVAL_S)
    async def check_ops() -> None:
        for key, value in ops_records(ops, clock.current(datetime.now(UTC)), metrics):
            await ops_topic.send(key=key, value=value)

    if settings.runs_ingest:
        @app.timer(QUALITY_PUBLISH_INTERVAL_S)
        async def quality_timer() -> None:
            await publish_quality(settings, metrics, quality)
