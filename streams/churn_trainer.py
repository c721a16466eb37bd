"""``custpulse worker --role trainer``: the one trainer of the churn model.

It reads ``<prefix>churn-examples`` (one partition) in consumer group ``<app_id>-churn-trainer``:
with one partition, one member of the group trains and the others wait as standbys. When the
partition is assigned, the trainer restores the newest published version
(:mod:`custpulse.state.churn_models`) and seeks to the examples offset that version has learned
up to, so no example is learned twice and none is skipped, whichever trainer crashed where.
It learns each example (progressive validation: :class:`~custpulse.processors.churn_model.
ChurnModel`) and publishes a new version after ``CUSTPULSE_CHURN_PUBLISH_EVERY`` examples, or
``CUSTPULSE_CHURN_PUBLISH_INTERVAL_S`` after the first unpublished one. A record that is not an
example is skipped and counted (``custpulse_churn_examples_skipped_total``), never learned.
An example of a customer whose example with the same or a later ``labelled_at`` was learned
is a repeat (a worker re-sends the examples of a redelivered record) and is counted in
``custpulse_churn_examples_repeated_total``, not learned; after a takeover the last
``CUSTPULSE_CHURN_DEDUPE_LOOKBACK`` examples before the restart point are read back for this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from mode import Service
from prometheus_client import CollectorRegistry, Counter, Gauge

from custpulse.processors.churn import Example
from custpulse.processors.churn_model import ChurnModel
from custpulse.schemas import wire
from custpulse.settings import Settings
from custpulse.state import churn_models
from custpulse.state.redis_client import connect

log = logging.getLogger("custpulse.trainer")


class TrainerMetrics:
    """The trainer's Prometheus families (one registry per process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.learned = Counter("custpulse_churn_examples_learned", "Churn examples learned.",
                               registry=registry)
        self.skipped = Counter("custpulse_churn_examples_skipped",
                               "Records of the examples topic that are not examples.",
                               registry=registry)
        self.repeated = Counter("custpulse_churn_examples_repeated",
                                "Examples not learned because the customer's example with "
                                "that labelled_at (or a later one) was learned before "
                                "(re-sent after a worker's redelivery).", registry=registry)
        self.version = Gauge("custpulse_churn_model_version", "Newest published model version.",
                             registry=registry)
        self.labels = Gauge("custpulse_churn_model_labels", "Examples the model has learned.",
                            registry=registry)
        self.auc = Gauge("custpulse_churn_model_roc_auc",
                         "Progressive ROC AUC of the churn model (0..1).", registry=registry)
        self.log_loss = Gauge("custpulse_churn_model_log_loss",
                              "Progressive log loss of the churn model.", registry=registry)
        self.positives = Gauge("custpulse_churn_model_positives_share",
                               "Share of churned examples among those learned (0..1).",
                               registry=registry)

    def show(self, status: dict[str, Any]) -> None:
        self.version.set(status["model_version"])
        self.labels.set(status["labels_seen"])
        for gauge, name in ((self.auc, "roc_auc"), (self.log_loss, "log_loss"),
                            (self.positives, "positives_share")):
            if status[name] is not None:
                gauge.set(status[name])


class _Assignment(ConsumerRebalanceListener):
    def __init__(self, trainer: ChurnTrainer) -> None:
        self.trainer = trainer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.trainer.publishing:  # a publish in flight ends first
            self.trainer.assigned = False
            self.trainer.generation += 1

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if not assigned:
            return
        try:
            await self.trainer.take_over()
        except Exception as exc:  # noqa: BLE001 (aiokafka would log it and hold the partition idle)
            log.error("churn trainer cannot restore the newest model (%s): stopping",
                      type(exc).__name__)
            await self.trainer.crash(exc)


class ChurnTrainer(Service):
    def __init__(self, settings: Settings, registry: CollectorRegistry, **kwargs: Any) -> None:
        self.settings = settings
        self.metrics = TrainerMetrics(registry)
        self.model = ChurnModel(settings.churn_min_labels)
        self.offset = 0
        self.published_version = 0
        self.unpublished = 0
        self.first_unpublished = 0.0
        self.assigned = False
        self.generation = 0
        """Counts takeovers and revocations: a batch fetched across one is dropped."""
        self.publishing = asyncio.Lock()
        self.tp = TopicPartition(settings.churn_examples_topic, 0)
        self.seen: dict[str, datetime] = {}
        """Per customer, the newest ``labelled_at`` learned: a customer's labels are made in
        increasing ``labelled_at``, so an example not newer is a re-sent one."""
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.redis: Any = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self.redis = connect(s.redis_url)
        self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all",
                                         max_request_size=8 << 20,
                                         client_id=f"{s.app_id}-churn-trainer")
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, group_id=f"{s.app_id}-churn-trainer",
            enable_auto_commit=False, auto_offset_reset="earliest",
            client_id=f"{s.app_id}-churn-trainer",
            session_timeout_ms=int(s.session_timeout_s * 1000))
        self.consumer.subscribe([s.churn_examples_topic], listener=_Assignment(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        for client in (self.consumer, self.producer):
            if client is not None:
                await client.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def take_over(self) -> None:
        """Restore the newest published version and go on from its offset."""
        message = await churn_models.newest_message(self.settings)
        if message is not None:
            self.model = ChurnModel.from_snapshot(message["model"])
            self.model.min_labels = self.settings.churn_min_labels
            self.offset = int(message["offset"])
        else:
            self.model, self.offset = ChurnModel(self.settings.churn_min_labels), 0
        self.published_version = max(self.published_version, self.model.version)
        self.model.version = self.published_version
        self.unpublished = 0
        self.seen = await self._learned_before(self.offset)
        assert self.consumer is not None
        self.consumer.seek(self.tp, self.offset)
        self.generation += 1
        self.assigned = True
        self.metrics.show(self.model.status())
        log.info("churn trainer took over at version %d, examples offset %d",
                 self.model.version, self.offset)

    async def _learned_before(self, end: int, timeout_s: float = 15.0) -> dict[str, datetime]:
        """The newest ``labelled_at`` per customer among the last ``churn_dedupe_lookback``
        examples before offset ``end`` (those the restored version learned), read on a
        consumer of its own: re-sent examples after the restart point are recognised."""
        start = max(0, end - self.settings.churn_dedupe_lookback)
        seen: dict[str, datetime] = {}
        if start >= end:
            return seen
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                    group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        try:
            await consumer.start()
            consumer.assign([self.tp])
            consumer.seek(self.tp, start)
            while await consumer.position(self.tp) < end:
                batch = await consumer.getmany(self.tp, timeout_ms=int(timeout_s * 1000),
                                               max_records=5000)
                if not batch:
                    raise TimeoutError("reading the examples before the restart point timed out")
                for record in batch.get(self.tp, []):
                    if record.offset >= end:
                        break
                    try:
                        example = Example.from_wire(wire.loads(record.value))
                    except Exception:  # noqa: BLE001, S112 (skipped when it was read the first time)
                        continue
                    if example.user_id not in seen or example.labelled_at > seen[
                            example.user_id]:
                        seen[example.user_id] = example.labelled_at
        finally:
            await consumer.stop()
        return seen

    @Service.task
    async def _train(self) -> None:
        assert self.consumer is not None
        while not self.should_stop:
            generation = self.generation
            batch = await self.consumer.getmany(self.tp, timeout_ms=500, max_records=2000)
            records = batch.get(self.tp, [])
            if not self.assigned or generation != self.generation:
                continue  # fetched across a takeover: its position is not ours
            if records and records[0].offset > self.offset:
                self.consumer.seek(self.tp, self.offset)  # not contiguous: read from ours
                continue
            for record in records:
                if record.offset < self.offset:
                    continue  # already learned by the version restored
                try:
                    example = Example.from_wire(wire.loads(record.value))
                    last = self.seen.get(example.user_id)
                    if last is not None and example.labelled_at <= last:
                        self.metrics.repeated.inc()
                        self.offset = record.offset + 1
                        continue
                    self.model.learn(example)
                except Exception:  # noqa: BLE001 (whatever a record holds, it is not learned)
                    self.metrics.skipped.inc()
                else:
                    self.seen[example.user_id] = example.labelled_at
                    self.metrics.learned.inc()
                    if not self.unpublished:
                        self.first_unpublished = time.monotonic()
                    self.unpublished += 1
                self.offset = record.offset + 1
            if self.unpublished and (
                    self.unpublished >= self.settings.churn_publish_every
                    or time.monotonic() - self.first_unpublished
                    >= self.settings.churn_publish_interval_s):
                await self._publish()

    async def _publish(self) -> None:
        """Publish the model as the next version: on the topic first (the record of truth;
        the version counts as taken once the broker has it), then in Redis (a copy: a
        failure there is fixed by the next version)."""
        assert self.producer is not None
        async with self.publishing:
            if not self.assigned:
                return
            # a number once tried is never used again (the broker may have kept a send whose
            # acknowledgement was lost): versions only go up, possibly with a gap
            self.published_version += 1
            self.model.version = self.published_version
            message = churn_models.model_message(self.model.to_snapshot(), self.offset,
                                                 datetime.now(UTC))
            try:
                data = await churn_models.publish(self.settings, self.producer, message)
            except Exception as exc:  # noqa: BLE001 (Kafka: try again with the next batch)
                log.warning("churn model not published (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                return
            self.unpublished = 0
            self.metrics.show(self.model.status())
        try:
            await churn_models.copy_to_redis(self.settings, self.redis, data)
        except Exception as exc:  # noqa: BLE001
            log.warning("churn model version %d not copied to Redis (%s)",
                        self.published_version, type(exc).__name__)
