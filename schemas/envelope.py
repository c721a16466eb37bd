"""Envelopes: how records travel on ``<prefix>events`` (wire format version 3).

One Kafka message carries a batch of records for one partition of ``<prefix>events``::

    {"v": 3, "kind": "batch", "records": [<canonical event v2>, <tick>, ...]}

A record is a canonical event (:mod:`custpulse.schemas.events`) or a time-driven
re-evaluation request ``{"kind": "tick", "users": ["...", ...], "deadline": "<iso, UTC, us>",
"until": "<iso, UTC, us>"}`` (``until``: the watermark that passed the deadlines of the named
customers; ``deadline``: the earliest of them). The single-customer form of contract 5,
``{"kind": "tick", "user_id": "...", "deadline": ..., "until": ...}``, is still read.
Every record in an envelope belongs to a customer whose partition (murmur2 of the UTF-8
user id, as Kafka's default partitioner) is the envelope's partition, so a customer's state
lives in one partition however records are batched. Records keep their order.

Per-record messages (a bare canonical event or tick, versions 1 and 2) are still read, as a
batch of one. Envelopes exist for throughput: Faust's cost is per Kafka message and per
table write, so carrying records in bulk pays it once per batch (see docs/contract.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka.partitioner import murmur2

from custpulse.schemas import wire as _wire

ENVELOPE_VERSION = 3
ENVELOPE_MAX_BYTES = 512 * 1024
"""An envelope is closed at about this much JSON."""
TICK_BYTES = 100
"""Approximate JSON size of a tick record."""


def partition_for(user_id: str, partitions: int) -> int:
    """The partition of ``<prefix>events`` that holds ``user_id`` (Kafka's default
    partitioner on the key ``user_id``: murmur2, positive, modulo the partition count).

    >>> partition_for("U000001", 4) == partition_for("U000001", 4)
    True
    """
    return (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions


def tick_record(user_id: str, deadline: datetime,
                until: datetime | None = None) -> dict[str, Any]:
    """A re-evaluation request for ``user_id``: its deadline ``deadline`` has been passed by
    the watermark ``until`` (default: the deadline itself); the customer applies every
    deadline up to ``until``. Full microsecond precision: a deadline may sit 1 us after a
    threshold."""
    return {"kind": "tick", "user_id": user_id,
            "deadline": deadline.astimezone(UTC).isoformat(),
            "until": (until or deadline).astimezone(UTC).isoformat()}


TICK_MAX_USERS = 100
"""Customers named in one tick record at most (each travels in its own envelope, so one
fold step re-evaluates at most this many customers: the event loop never stalls on a tick)."""


def tick_records(users: list[tuple[str, datetime]], until: datetime) -> list[dict[str, Any]]:
    """Re-evaluation requests for ``users`` (``(user_id, deadline)`` of one partition, in the
    order to apply them): the watermark ``until`` has passed their deadlines; each named
    customer applies every deadline up to ``until``. One record names up to
    :data:`TICK_MAX_USERS` customers (each once); ``deadline`` is the earliest deadline it
    covers."""
    seen: set[str] = set()
    ordered: list[tuple[str, datetime]] = []
    for user_id, at in users:
        if user_id not in seen:
            seen.add(user_id)
            ordered.append((user_id, at))
    wire_until = until.astimezone(UTC).isoformat()
    out = []
    for i in range(0, len(ordered), TICK_MAX_USERS):
        chunk = ordered[i:i + TICK_MAX_USERS]
        out.append({"kind": "tick", "users": [u for u, _ in chunk],
                    "deadline": min(at for _, at in chunk).astimezone(UTC).isoformat(),
                    "until": wire_until})
    return out


def tick_bytes(record: dict[str, Any]) -> int:
    """Approximate JSON size of a tick record."""
    return TICK_BYTES + sum(len(u) + 3 for u in record.get("users", ()))


def pack(records: list[dict[str, Any]]) -> bytes:
    """One envelope message (UTF-8 JSON, masked data only) for ``records``."""
    return _wire.dumps({"v": ENVELOPE_VERSION, "kind": "batch", "records": records})


def unpack(value: bytes | str | None) -> list[Any]:
    """The records of one ``<prefix>events`` message, in order: an envelope's ``records``, or
    a per-record message as a list of one. Raises ``ValueError`` if it is neither (the caller
    dead-letters it); the records themselves are validated by the caller."""
    if value is None:
        raise ValueError("empty message")
    try:
        wire = _wire.loads(value)
    except RecursionError as exc:
        raise ValueError("nested too deep") from exc
    if not isinstance(wire, dict):
        raise ValueError("not an object")
    if wire.get("kind") == "batch":
        records = wire.get("records")
        if not isinstance(records, list):
            raise ValueError("envelope without records")
        return records
    return [wire]


def envelopes(records: list[tuple[dict[str, Any], int]], max_records: int,
              max_bytes: int = ENVELOPE_MAX_BYTES) -> list[bytes]:
    """Pack ``(record, approximate JSON size in bytes)`` pairs into envelope messages, in
    order, each with at most ``max_records`` records and about ``max_bytes`` of JSON (a
    single larger record travels alone)."""
    out: list[bytes] = []
    chunk: list[dict[str, Any]] = []
    size = 0
    for record, n in records:
        if chunk and (len(chunk) >= max_records or size + n > max_bytes):
            out.append(pack(chunk))
            chunk, size = [], 0
        chunk.append(record)
        size += n
    if chunk:
        out.append(pack(chunk))
    return out
