"""The importer's batched sender on the real broker: where rows land, in what order, and what a
row the broker refuses does to its neighbours."""

from __future__ import annotations

import asyncio
import random

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from custpulse.settings import Settings
from custpulse.streams.admin import ensure_topics
from custpulse.streams.importer import BATCH_BYTES, FLUSH_ROWS, MAX_REQUEST_BYTES, ImportProducer


class _Bar:
    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int) -> None:
        self.n += n


async def _read(settings: Settings, topic: str, count: int) -> dict[int, list[tuple]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, max_partition_fetch_bytes=16 << 20,
                                fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic)
                                                        or await _partitions(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: dict[int, list[tuple]] = {tp.partition: [] for tp in tps}
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while seen < count and loop.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out[tp.partition] += [(r.key, r.value) for r in records]
                seen += len(records)
        return out
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 (a fresh topic)
    return consumer.partitions_for_topic(topic) or set()


def test_rows_land_where_a_plain_producer_puts_them_in_send_order(settings: Settings) -> None:
    """Keyed rows on the murmur2 partition of their key, keyless rows somewhere, every
    partition in send order across several hand-overs and full batches; a row over the request
    limit fails alone and a large row goes out on its own without breaking the order."""
    ensure_topics(settings)
    rnd = random.Random(7)
    topic = settings.topic("orders")
    sends: list[tuple[str, bytes | None, bytes]] = []
    for i in range(3 * FLUSH_ROWS + 321):
        key = None if i % 97 == 0 else f"C{rnd.randrange(500):04d}".encode()
        sends.append((topic, key, f'{{"row": {i}, "pad": "{"x" * rnd.randrange(600)}"}}'.encode()))
    big = 1500
    sends[big] = (topic, b"C0001", b'{"row": 1500, "pad": "' + b"y" * (BATCH_BYTES // 2) + b'"}')
    refused = 2500
    sends[refused] = (topic, b"C0002", b"z" * (MAX_REQUEST_BYTES + 1))
    bar = _Bar()
    results = asyncio.run(ImportProducer(settings).send_all(sends, bar))
    assert bar.n == len(sends)
    assert [i for i, r in enumerate(results) if r is not None] == [refused]

    landed = asyncio.run(_read(settings, topic, len(sends) - 1))
    assert sum(len(rows) for rows in landed.values()) == len(sends) - 1
    count = len(landed)
    assert count > 1
    where: dict[bytes, int] = {}
    for partition, rows in landed.items():
        for _, value in rows:
            where[value] = partition
    for i, (_, key, value) in enumerate(sends):
        if i == refused:
            continue
        if key is not None:
            assert where[value] == (murmur2(key) & 0x7FFFFFFF) % count, i
    index_of = {value: i for i, (_, _, value) in enumerate(sends)}
    for partition, rows in landed.items():
        order = [index_of[value] for _, value in rows]
        assert order == sorted(order), partition
