"""The hiredis packer sends exactly the bytes redis-py's own packer would."""

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection

from custpulse.state.redis_client import PackedConnection

ARG = st.one_of(st.text(), st.binary(), st.integers(min_value=-(2**70), max_value=2**70))


@given(st.sampled_from(["EVALSHA", "HSET", "SCRIPT LOAD", b"XADD", b"CONFIG GET"]),
       st.lists(ARG, max_size=40))
def test_same_bytes_as_redis_py(name, args):
    assert b"".join(PackedConnection().pack_command(name, *args)) == b"".join(
        Connection().pack_command(name, *args))


def test_floats_use_redis_py_formatting():
    assert PackedConnection().pack_command("SET", "k", 0.1) == Connection().pack_command(
        "SET", "k", 0.1)


def test_another_encoding_keeps_redis_pys_packer():
    for kw in ({"encoding": "latin-1"}, {"encoding_errors": "replace"}):
        args = ("HSET", "k", "é", "\udcff" if "encoding_errors" in kw else "x")
        assert PackedConnection(**kw).pack_command(*args) == Connection(**kw).pack_command(*args)
