"""The churn model a fold worker scores with: the newest version published on
``<prefix>churn-models``, followed while the worker runs.

At start the worker reads the newest published version (if any); then it follows the topic
from its end and adopts each newer version. A version is adopted only if it is higher than the
one held, so a worker never goes back a version (an older record read late, a compaction, a
second trainer's stale write). Until a version arrives the worker scores nothing and keeps
the scores already in state (see :mod:`custpulse.processors.churn_fold`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from custpulse.processors.churn_model import ChurnModel
from custpulse.schemas import wire
from custpulse.settings import Settings
from custpulse.state import churn_models

log = logging.getLogger("custpulse.churn")

RETRY_S = 5.0


class ModelHolder:
    """The model the fold scores with (None: none yet). ``adopt`` never goes back."""

    def __init__(self) -> None:
        self.current: ChurnModel | None = None

    def adopt(self, message: Any) -> bool:
        """Take the model of a published message if it is newer; False if it is not (or is
        not a model message: logged, never raised)."""
        try:
            model = ChurnModel.from_snapshot(message["model"])
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            log.warning("a churn model record could not be read (%s); ignored",
                        type(exc).__name__)
            return False
        if self.current is not None and model.version <= self.current.version:
            return False
        self.current = model
        return True


class ModelFollower(Service):
    """Reads the newest model version at start, then follows ``<prefix>churn-models``."""

    def __init__(self, *, settings: Settings, holder: ModelHolder, metrics: Any,
                 on_adopt: Callable[[ChurnModel], Awaitable[None]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self.on_adopt = on_adopt
        """Called with the first version adopted that scores (the worker then schedules the
        customers it has not scored)."""

    async def _adopt(self, message: Any) -> None:
        before = self.holder.current
        if message is not None and self.holder.adopt(message):
            model = self.holder.current
            assert model is not None
            self.metrics.churn_model_version.set(model.version)
            log.info("scoring churn with model version %d", model.version)
            ready = model.labels >= model.min_labels
            # once a version scores, every customer evaluated from then on is scored: only
            # the first such version needs the customers evaluated before it to be due
            if self.on_adopt is not None and ready and (
                    before is None or before.labels < before.min_labels):
                await self.on_adopt(model)

    @Service.task
    async def _follow(self) -> None:
        topic = self.settings.churn_models_topic
        while not self.should_stop:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                enable_auto_commit=False, max_partition_fetch_bytes=16 << 20)
            try:
                await consumer.start()
                if topic not in (await consumer._client.fetch_all_metadata()  # noqa: SLF001
                                 ).topics():
                    await asyncio.sleep(RETRY_S)  # not created yet: nothing published
                    continue
                tp = TopicPartition(topic, 0)
                consumer.assign([tp])
                end = (await consumer.end_offsets([tp]))[tp]
                await self._adopt(await churn_models.newest_before(consumer, tp, end))
                consumer.seek(tp, end)
                while not self.should_stop:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    for record in batch.get(tp, []):
                        if record.key == churn_models.MODEL_KEY and record.value:
                            try:
                                message = wire.loads(record.value)
                            except ValueError:
                                log.warning("a churn model record is not JSON; ignored")
                                continue
                            await self._adopt(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker away: try again (the held model stays)
                log.warning("following %s failed (%s); again in %.0f s", topic,
                            type(exc).__name__, RETRY_S)
                await asyncio.sleep(RETRY_S)
            finally:
                await consumer.stop()
