"""Where Kafka's default partitioner puts a keyed record: ``murmur2(key) & 0x7fffffff`` modulo
the partition count, as the Java client (``Utils.murmur2``), aiokafka and kafka-python do.

The same hash as :func:`aiokafka.partitioner.murmur2` (tests/unit/test_partitioning.py holds
them equal), with whole-word reads: two thirds of its cost, which an import pays once per
customer.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` (32-bit, unsigned), Kafka's variant."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    for k in struct.unpack_from(f"<{length // 4}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        rest = data[length - tail:]
        if tail == 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h ^= rest[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_of(key: bytes, partitions: int) -> int:
    """The partition (0 .. ``partitions`` - 1) of a record keyed ``key`` on a topic whose
    partitions are 0 .. ``partitions`` - 1."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
