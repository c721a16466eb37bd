"""``custpulse worker --role ingest``: the ingest stage as a process of its own, without Faust.

It reads the raw topics (consumer group ``<app_id>-ingest``, shared with every other process
that runs the ingest stage), sends envelopes to ``<prefix>events``, reports its inputs on
``<prefix>clock``, publishes data quality to Redis and checks dead-letter spikes among what it
read. Fold processes (``--role fold``) do the rest; so one ingest and one fold process keep two
cores busy.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from mode import Service

from custpulse.processors.ops import OpsMonitor
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.settings import Settings
from custpulse.streams.agents import ingest_config, new_clock
from custpulse.streams.ingest_stage import IngestStage
from custpulse.streams.metrics import Metrics
from custpulse.streams.periodic import (
    OPS_INTERVAL_S,
    QUALITY_PUBLISH_INTERVAL_S,
    ops_records,
    publish_quality,
)

log = logging.getLogger("custpulse.ingest")


class IngestWorker(Service):
    """The ingest stage plus its periodic work (quality, ops alerts from what it read)."""

    def __init__(self, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        self.settings = settings
        self.metrics = metrics
        self.quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS)
        self.ops = OpsMonitor()
        self.stage = IngestStage(settings=settings, metrics=metrics,
                                 config=ingest_config(settings), quality=self.quality,
                                 clock=new_clock(settings), ops=self.ops)
        super().__init__(**kwargs)

    async def on_first_start(self) -> None:
        await self.add_runtime_dependency(self.stage)

    async def on_started(self) -> None:
        self.log.info("Worker ready (role ingest)")

    @Service.timer(QUALITY_PUBLISH_INTERVAL_S)
    async def _quality(self) -> None:
        await publish_quality(self.settings, self.metrics, self.quality)

    @Service.timer(OPS_INTERVAL_S)
    async def _ops(self) -> None:
        watermark = self.stage.clock.current(datetime.now(UTC))
        for key, value in ops_records(self.ops, watermark, self.metrics):
            try:
                await self.stage.send(self.settings.ops_alerts_topic, key, value)
            except KafkaError as exc:  # one alert lost is logged; the worker goes on
                log.warning("ops alert not sent (%s)", type(exc).__name__)
