"""Envelopes: how records travel on ``<prefix>events`` (wire format version 3).

One Kafka message carries a batch of records for one partition of ``<prefix>events``::

    {"v": 3, "kind": "batch", "records": [<canonical event v2>, <tick>, ...]}

A record is a canonical event (:mod:`custpulse.schemas.events`) or a time-driven
re-evaluation request ``{"kind": "tick", "user_id": "...", "deadline": "<iso, UTC, us>"}``.
Every record in an envelope belongs to a customer whose partition (murmur2 of the UTF-8
user id, as Kafka's default partitioner) is the envelope's partition, so a customer's state
lives in one partition however records are batched. Records keep their order.

Per-record messages (a bare canonical event or tick, versions 1 and 2) are still read, as a
batch of one. Envelopes exist for throughput: Faust's cost is per Kafka message and per
table write, so carrying records in bulk pays it once per batch (see docs/contract.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2

ENVELOPE_VERSION = 3


def partition_for(user_id: str, partitions: int) -> int:
    """The partition of ``<prefix>events`` that holds ``user_id`` (Kafka's default
    partitioner on the key ``user_id``: murmur2, positive, modulo the partition count).

    >>> partition_for("U000001", 4) == partition_for("U000001", 4)
    True
    """
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def tick_record(user_id: str, deadline: datetime) -> dict[str, Any]:
    """A re-evaluation request for ``user_id`` at ``deadline`` (full microsecond precision:
    a deadline may sit 1 us after a threshold)."""
    return {"kind": "tick", "user_id": user_id,
            "deadline": deadline.astimezone(UTC).isoformat()}


def pack(records: list[dict[str, Any]]) -> bytes:
    """One envelope message (UTF-8 JSON, masked data only) for ``records``."""
    return json.dumps({"v": ENVELOPE_VERSION, "kind": "batch", "records": records},
                      ensure_ascii=False, separators=(",", ":")).encode()


def unpack(value: bytes | str | None) -> list[Any]:
    """The records of one ``<prefix>events`` message, in order: an envelope's ``records``, or
    a per-record message as a list of one. Raises ``ValueError`` if it is neither (the caller
    dead-letters it); the records themselves are validated by the caller."""
    if value is None:
        raise ValueError("empty message")
    wire = json.loads(value)
    if not isinstance(wire, dict):
        raise ValueError("not an object")
    if wire.get("kind") == "batch":
        records = wire.get("records")
        if not isinstance(records, list):
            raise ValueError("envelope without records")
        return records
    return [wire]


def split(records: list[Any], max_records: int) -> list[list[Any]]:
    """``records`` in chunks of at most ``max_records`` (order kept).

    >>> split([1, 2, 3], 2)
    [[1, 2], [3]]
    """
    return [records[i:i + max_records] for i in range(0, len(records), max_records)]
