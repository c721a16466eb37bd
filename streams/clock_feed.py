"""The fold side of the shared watermark: reads ``<prefix>clock`` into the fold's clock.

Every fold process reads the whole (compacted, one-partition) topic from its start, without a
consumer group, and applies each report (:meth:`custpulse.processors.clock.Watermark.apply`).
So every fold process, whichever raw partitions the ingest processes read, ticks by the same
watermark: the minimum over every input of every ingest process. Reports left by an ingest
process that is gone are older than ``stale_after`` and hold the watermark until the input's
next reader reports.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service

from custpulse.processors.clock import Watermark
from custpulse.schemas.clock_report import decode_report
from custpulse.settings import Settings

log = logging.getLogger("custpulse.clock")

RETRY_DELAY_S = 1.0


class ClockFeed(Service):
    """Applies the reports on ``<prefix>clock`` to ``clock`` until stopped."""

    def __init__(self, *, settings: Settings, clock: Watermark, **kwargs: Any) -> None:
        self.settings = settings
        self.clock = clock
        self.applied = 0
        self.unreadable = 0
        self._consumer: AIOKafkaConsumer | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap, client_id=f"{s.app_id}-clock",
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=500,  # few fetches: in debug, each one is logged by aiokafka
        )
        await self._consumer.start()
        # one partition as created; every partition if an operator made more (keys spread)
        partitions = self._consumer.partitions_for_topic(s.clock_topic) or {0}
        self._consumer.assign([TopicPartition(s.clock_topic, p) for p in sorted(partitions)])
        await self._consumer.seek_to_beginning()

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _run(self) -> None:
        assert self._consumer is not None
        while not self.should_stop:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:  # the broker is away: the watermark waits meanwhile
                log.warning("clock feed read failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            received = datetime.now(UTC)
            for messages in batches.values():
                for message in messages:
                    if message.value is None and message.key:  # a tombstone retires an input
                        self.clock.forget(message.key.decode("utf-8", "replace"))
                        continue
                    decoded = decode_report(message.value)
                    if decoded is None:
                        self.unreadable += 1
                        if self.unreadable in (1, 100, 10_000):
                            log.warning("%d unreadable records on %s skipped",
                                        self.unreadable, self.settings.clock_topic)
                        continue
                    self.clock.apply(*decoded, received=received)
                    self.applied += 1
