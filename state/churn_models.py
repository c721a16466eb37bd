"""Where churn model versions are kept: the compacted topic ``<prefix>churn-models`` (one
partition, key ``model``; the record of truth) and the Redis key ``<prefix>churn:model`` (a copy
for readers: workers that score, ``custpulse model status``).

A published message is JSON::

    {"v": 1, "model": <ChurnModel.to_snapshot()>, "offset": <next offset of
     <prefix>churn-examples to learn>, "published_at": "<ISO 8601 UTC>"}

The model and the offset of the examples it has learned travel in one message, so a trainer
that restarts (or another that takes over) goes on from exactly there: every example is
learned once, in topic order, and versions only go up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from custpulse.schemas import wire
from custpulse.settings import Settings

MODEL_KEY = b"model"
MESSAGE_VERSION = 1


def model_message(snapshot: dict[str, Any], offset: int, published_at: datetime) -> dict[str, Any]:
    return {"v": MESSAGE_VERSION, "model": snapshot, "offset": offset,
            "published_at": published_at.isoformat()}


def redis_key(settings: Settings) -> str:
    return settings.redis_key("churn", "model")


async def newest_message(settings: Settings, timeout_s: float = 15.0) -> dict[str, Any] | None:
    """The newest message of ``<prefix>churn-models`` (None if there is none), read on a
    consumer of its own (no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=16 << 20)
    try:
        await consumer.start()
        if settings.churn_models_topic not in (await consumer._client.fetch_all_metadata()  # noqa: SLF001
                                               ).topics():
            return None  # never created: nothing published
        tp = TopicPartition(settings.churn_models_topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        return await newest_before(consumer, tp, end, timeout_s)
    finally:
        await consumer.stop()


async def newest_before(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int,
                        timeout_s: float = 15.0) -> dict[str, Any] | None:
    """The newest model message at offsets before ``end`` on an assigned consumer (None: none).
    The newest model record is at or near the end (compaction keeps the newest of a key; a
    record of another key may follow it): it is read back from the end in doubling steps."""
    newest = None
    span = 1
    start = end
    while newest is None and start > 0:
        start = max(0, end - span)
        newest = await _last_model_record(consumer, tp, start, end, timeout_s)
        span *= 2
    return None if newest is None else wire.loads(newest)


async def _last_model_record(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int,
                             end: int, timeout_s: float) -> bytes | None:
    """The value of the last record with the model key in offsets [start, end)."""
    consumer.seek(tp, start)
    newest = None
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=int(timeout_s * 1000))
        if not batch:  # not "nothing published": the broker did not answer in time
            raise TimeoutError(f"reading {tp.topic} timed out before its end")
        for record in batch.get(tp, []):
            if record.offset < end and record.key == MODEL_KEY and record.value:
                newest = record.value
    return newest


async def publish(settings: Settings, producer: AIOKafkaProducer, message: dict[str, Any]
                  ) -> bytes:
    """Send ``message`` to the topic and wait for the broker (acks per the producer); return
    the bytes sent (for :func:`copy_to_redis`)."""
    data = wire.dumps(message)
    await (await producer.send(settings.churn_models_topic, data, key=MODEL_KEY, partition=0))
    return data


async def copy_to_redis(settings: Settings, redis: Any, data: bytes) -> None:
    await redis.set(redis_key(settings), data)


async def read_redis(settings: Settings, redis: Any) -> dict[str, Any] | None:
    data = await redis.get(redis_key(settings))
    return None if data is None else wire.loads(data)
