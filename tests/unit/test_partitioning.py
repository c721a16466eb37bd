"""The importer's partitioner equals Kafka's default one (as aiokafka implements it)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.streams.partitioning import murmur2, partition_of


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.integers(1, 64))
def test_same_hash_and_partition_as_aiokafka(key: bytes, partitions: int) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key, every, every)


def test_java_client_values() -> None:
    """Values of the Java client's ``Utils.murmur2`` (from its unit test), as signed ints."""
    def signed(value: int) -> int:
        return value - (1 << 32) if value >= 1 << 31 else value

    assert signed(murmur2(b"21")) == -973932308
    assert signed(murmur2(b"foobar")) == -790332482
    assert signed(murmur2(b"a-little-bit-long-string")) == -985981536
    assert signed(murmur2(b"a-little-bit-longer-string")) == -1486304829
    assert signed(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")) == -58897971
    assert signed(murmur2(b"abc")) == 479470107
