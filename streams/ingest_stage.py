"""The ingest stage: raw input topics -> envelopes on ``<prefix>events``.

A batch consumer (aiokafka ``getmany``, consumer group ``<app_id>-ingest``) runs inside the
worker beside the Faust agents. For each poll of up to ``CUSTPULSE_BATCH_MAX_RECORDS`` raw
records it calls :func:`~custpulse.processors.ingest.ingest` on each, groups the accepted
canonical events by their partition of ``<prefix>events`` (Kafka's default partitioner on the
user id) into envelopes (:mod:`custpulse.schemas.envelope`), sends the envelopes and the dead
letters, waits for the broker's acknowledgements, and only then commits the raw offsets.

Guarantee: at least once. A crash before the commit re-reads the raw records; the fold step
recognises their events by id (the ids live in the table value they changed), so they count
once. A send or commit failure re-reads from the last committed offsets instead of skipping.
Why not a Faust agent: Faust's cost is ~75 us per Kafka message, the raw topics carry one
record per message, and Faust's ``take()`` cannot write tables; batching here pays the Kafka
costs once per poll and envelope (see docs/contract.md, "Throughput design").
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from mode import Service

from custpulse.processors.clock import Watermark
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.merge import EventTimeMerge
from custpulse.processors.ops import OpsMonitor
from custpulse.processors.quality import QualityTracker
from custpulse.schemas.clock_report import encode_report
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.envelope import envelopes, partition_for
from custpulse.settings import Settings
from custpulse.streams.client_logs import cap_client_logs
from custpulse.streams.metrics import Metrics

log = logging.getLogger("custpulse.ingest")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""What the producer and ``<prefix>events`` accept: a record larger than an envelope's byte
bound travels alone."""
RETRY_DELAY_S = 1.0
MAX_IN_FLIGHT = 4
"""Polls whose sends may wait for acknowledgements while the next ones are ingested."""
COMMIT_INTERVAL_S = 0.2
CLOCK_REPORT_S = 0.2
"""How often the stage reports its inputs on ``<prefix>clock`` (busy or idle)."""


@dataclass
class _Batch:
    """One poll on its way: the acknowledgement of its sends, the offsets to commit after it,
    and its counts (added to the metrics once acknowledged)."""

    acked: asyncio.Future[Any]
    offsets: dict[Any, int]
    counts: Counter[str]
    rejected: Counter[tuple[str, str]]
    times: dict[str, datetime]
    """Per input (``<topic>:<partition>``): the latest event time accepted in this poll."""

    def count(self, metrics: Metrics) -> None:
        for source, n in self.counts.items():
            metrics.events_in.labels(source).inc(n)
        for (source, code), n in self.rejected.items():
            metrics.deadlettered.labels(source, code).inc(n)


def _log_failed_report(sent: asyncio.Future[Any]) -> None:
    """A lost report is replaced by the next one (CLOCK_REPORT_S later): log it, go on."""
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("clock report not sent (%s)", type(sent.exception()).__name__)


class _Forget(ConsumerRebalanceListener):
    """Revoked raw partitions: forget what the merge holds for them (the next owner re-reads
    it from the committed offsets, which never pass a held event)."""

    def __init__(self, stage: IngestStage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.stage._forget(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class IngestStage(Service):
    """Consumes the raw topics in batches and produces envelopes (see the module doc)."""

    def __init__(self, *, settings: Settings, metrics: Metrics, config: IngestConfig,
                 quality: QualityTracker, clock: Watermark, ops: OpsMonitor,
                 **kwargs: Any) -> None:
        self.settings = settings
        self.metrics = metrics
        self.config = config
        self.quality = quality
        self.clock = clock
        self.ops = ops
        # Data-quality rates are counted in event time; a rejected record at the watermark of
        # what this stage accepted (its own: the shared clock is the fold's, which decides
        # lateness). Polls return partitions one after the other, so a watermark would run
        # ahead of most records of a poll: accepted records count at their own time.
        self.ops_clock = Watermark(clock.lateness, clock.mode, clock.idle_timeout)
        self.source_of = {topic: source for source, topic in settings.source_topics().items()}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._partitions = 0
        self._done: dict[Any, int] = {}  # acknowledged, not yet committed offsets
        self._merge = EventTimeMerge()
        self._next: dict[Any, int] = {}  # per raw partition: the offset after the last read
        self._seen_at: dict[Any, float] = {}  # per raw partition: monotonic time of its last read
        self._reported = -CLOCK_REPORT_S  # monotonic time of the last clock report
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        cap_client_logs()  # every client logger exists by now
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, client_id=s.ingest_group,
            acks="all", linger_ms=0, max_batch_size=1024 * 1024,
            max_request_size=MAX_MESSAGE_BYTES, compression_type=None,
        )
        await self._producer.start()
        # the worker checked at start that the topic has exactly CUSTPULSE_PARTITIONS
        self._partitions = s.partitions
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.ingest_group, client_id=s.ingest_group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(max(1.0, s.session_timeout_s / 10) * 1000),
            max_poll_records=s.batch_max_records,
        )
        self._consumer.subscribe(list(self.source_of), listener=_Forget(self))
        await self._consumer.start()
        log.info("ingest stage consuming %s into %d partitions of %s",
                 ", ".join(sorted(self.source_of)), self._partitions, s.events_topic)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    @Service.task
    async def _run(self) -> None:
        """Poll, ingest and send batch after batch without waiting for the broker in between;
        raw offsets are committed in poll order once every send of a batch (and of all
        batches before it) is acknowledged: at most every COMMIT_INTERVAL_S while busy, at
        once when idle. At most MAX_IN_FLIGHT batches wait for acknowledgements."""
        assert self._consumer is not None
        in_flight: deque[_Batch] = deque()
        last_commit = time.monotonic()
        while not self.should_stop:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=100 if in_flight else 200,
                    max_records=self.settings.batch_max_records)
                if batches or len(self._merge):
                    in_flight.append(await self._handle(batches))
                if len(in_flight) >= MAX_IN_FLIGHT:
                    await in_flight[0].acked
                while in_flight and in_flight[0].acked.done():
                    batch = in_flight.popleft()
                    batch.acked.result()  # raises the send's error, if any
                    batch.count(self.metrics)
                    # Event time advances only once the events are on <prefix>events: a
                    # tick the timer sends afterwards lands behind them in each partition.
                    wall = datetime.now(UTC)
                    for name, moment in batch.times.items():
                        self.clock.observe(moment, wall, name)
                    self._done.update(batch.offsets)
                idle = not batches
                if self._done and (idle or time.monotonic() - last_commit >= COMMIT_INTERVAL_S):
                    mine = self._consumer.assignment()
                    committable = {tp: o for tp, o in self._done.items() if tp in mine}
                    if committable:
                        await self._consumer.commit(committable)
                    self._done.clear()
                    last_commit = time.monotonic()
                if time.monotonic() - self._reported >= CLOCK_REPORT_S:
                    await self._report()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                # Nothing is skipped: go back to what is committed and read it again.
                log.warning("ingest batch failed (%s); re-reading from committed offsets",
                            type(exc).__name__)
                for batch in in_flight:
                    batch.acked.cancel()
                in_flight.clear()
                self._done.clear()
                self._forget(list(self._next))
                await asyncio.sleep(RETRY_DELAY_S)
                try:
                    await self._consumer.seek_to_committed()
                except KafkaError as again:
                    log.warning("seek to committed offsets failed (%s)", type(again).__name__)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send one record with the stage's producer and wait for its acknowledgement."""
        assert self._producer is not None
        await (await self._producer.send(topic, value, key=key))

    async def _report(self) -> None:
        """Send this stage's knowledge of each assigned input to ``<prefix>clock`` (the fold
        processes' shared watermark, see :mod:`custpulse.schemas.clock_report`). Times are
        those of acknowledged envelopes only, so a tick that a fold process sends after
        reading the report lands behind them."""
        assert self._consumer is not None and self._producer is not None
        self._reported = time.monotonic()
        try:
            for tp in self._consumer.assignment():
                if tp not in self._next:  # nothing read yet: we are at the committed position
                    self._next[tp] = await self._consumer.position(tp)
            wall = datetime.now(UTC)
            lagging = self._lagging()
            for tp in self._consumer.assignment():
                name = f"{tp.topic}:{tp.partition}"
                key, value = encode_report(name, self.clock.report(name, name in lagging, wall))
                sent = await self._producer.send(self.settings.clock_topic, value, key=key)
                sent.add_done_callback(_log_failed_report)
        except KafkaError as exc:  # the next report (CLOCK_REPORT_S later) replaces this one
            log.warning("clock report not sent (%s)", type(exc).__name__)

    def _forget(self, tps: list[Any]) -> None:
        """Drop what is held for ``tps`` (revoked, or about to be re-read from committed
        offsets: nothing held was committed)."""
        self._merge.drop(f"{tp.topic}:{tp.partition}" for tp in tps)
        for tp in tps:
            self._next.pop(tp, None)
            self._seen_at.pop(tp, None)

    def _lagging(self) -> set[str]:
        """Inputs with records not yet read, or not yet fetched at all (their highwater is
        unknown or ahead of what we read): they hold the watermark (no tick passes them)."""
        assert self._consumer is not None
        out = set()
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            nxt = self._next.get(tp)
            if end is None or nxt is None or end > nxt:
                out.add(f"{tp.topic}:{tp.partition}")
        return out

    def _holding(self) -> set[str]:
        """Inputs that may still deliver earlier events, so later events of other inputs wait
        for them: those with records not yet read (their highwater is ahead of what we read)
        and those that delivered within the last ``CUSTPULSE_ALIGN_S`` (a producer still
        sending). Live, this delays an event by at most that long."""
        assert self._consumer is not None
        out = set()
        recent = time.monotonic() - self.settings.align_s
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            nxt = self._next.get(tp)
            if (end is not None and nxt is not None and end > nxt) or (
                    self._seen_at.get(tp, -1e18) > recent):
                out.add(f"{tp.topic}:{tp.partition}")
        return out

    async def _handle(self, batches: dict[Any, list[Any]]) -> _Batch:
        """Ingest one poll: dead letters go out at once, accepted events through the
        event-time merge (:class:`~custpulse.processors.merge.EventTimeMerge`), whatever it
        releases is packed into envelopes and handed to the producer."""
        now = datetime.now(UTC)
        by_partition: dict[int, list[tuple[dict[str, Any], int]]] = defaultdict(list)
        letters: list[bytes] = []
        counts: Counter[str] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        times: dict[str, datetime] = {}
        for tp, messages in batches.items():
            source = self.source_of[tp.topic]
            name = f"{tp.topic}:{tp.partition}"
            counts[source] += len(messages)
            for message in messages:
                position = Position(tp.topic, tp.partition, message.offset)
                outcome = ingest(message.value, source, position, self.config, now,
                                 self.quality)
                if isinstance(outcome, Accepted):
                    event = outcome.event
                    # accepted records count at their own event time, rejected ones (which
                    # may have none) at the watermark of what this stage has accepted
                    self.ops_clock.observe(event.event_time, now, "accepted")
                    self.ops.observe("in", event.event_time)
                    size = len(message.value or b"") + 256
                    self._merge.add(name, message.offset, event.event_time,
                                    (partition_for(event.user_id, self._partitions),
                                     event.to_wire(), size))
                else:
                    at = self.ops_clock.current(now) or now
                    self.ops.observe("in", at)
                    self.ops.observe("deadletter", at)
                    rejected[(source, outcome.code)] += 1
                    letters.append(json.dumps(deadletter_record(
                        outcome.code, outcome.field, outcome.message, source, now,
                        outcome.payload, topic=position.topic, partition=position.partition,
                        offset=position.offset)).encode())
            if messages:
                self._next[tp] = messages[-1].offset + 1
                self._seen_at[tp] = time.monotonic()
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            if tp not in self._next:  # nothing read yet: we are at the committed position
                self._next[tp] = await self._consumer.position(tp)
        self.clock.set_lagging(self._lagging())
        for name, _offset, moment, (partition, wire, size) in self._merge.release(
                self._holding()):
            by_partition[partition].append((wire, size))
            if name not in times or moment > times[name]:
                times[name] = moment
        acked = await self._send_all(by_partition, letters)
        offsets = {tp: self._merge.commit_offset(f"{tp.topic}:{tp.partition}", nxt)
                   for tp, nxt in self._next.items()}
        return _Batch(acked, offsets, counts, rejected, times)

    async def _send_all(self, by_partition: dict[int, list[tuple[dict[str, Any], int]]],
                        letters: list[bytes]) -> asyncio.Future[Any]:
        """Hand every envelope and dead letter to the producer; the returned future is done
        when all of them are acknowledged."""
        assert self._producer is not None
        s = self.settings
        pending: list[asyncio.Future[Any]] = []
        send: Callable[..., Any] = self._producer.send
        for partition in sorted(by_partition):
            for envelope in envelopes(by_partition[partition], s.envelope_max_records):
                pending.append(await send(s.events_topic, envelope, partition=partition))
        for letter in letters:
            pending.append(await send(s.deadletter_topic, letter))
        return asyncio.gather(*pending)
