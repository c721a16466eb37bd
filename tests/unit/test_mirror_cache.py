"""MirrorCache: what a worker last wrote to Redis, to send only the fields that changed."""

from __future__ import annotations

from custpulse.state.redis_mirror import MirrorCache, ProfileWrite


def _write(user: str, version: int, **fields: str) -> ProfileWrite:
    return ProfileWrite(user, version, {"segment": "a", "as_of": "t0", **fields}, [])


def test_only_changed_fields_are_sent_on_top_of_the_version_they_change():
    cache = MirrorCache()
    first = _write("U1", 1, orders="1")
    assert cache.changes(first) == (-1, first.fields)  # nothing to build on: everything
    cache.written(first)
    assert cache.changes(_write("U1", 2, orders="2")) == (1, {"orders": "2"})
    assert cache.changes(_write("U1", 2, orders="1")) == (1, {})


def test_another_field_set_or_a_forgotten_customer_sends_everything():
    cache = MirrorCache()
    cache.written(_write("U1", 1, orders="1"))
    other = _write("U1", 2, orders="1", churn="0.2")
    assert cache.changes(other) == (-1, other.fields)
    cache.forget("U1")
    again = _write("U1", 2, orders="1")
    assert cache.changes(again) == (-1, again.fields)


def test_memory_is_bounded_least_recently_written_first():
    cache = MirrorCache(size=2)
    for user in ("U1", "U2", "U1", "U3"):
        cache.written(_write(user, 1))
    assert cache.changes(_write("U2", 2))[0] == -1  # forgotten
    assert cache.changes(_write("U1", 2))[0] == 1 and cache.changes(_write("U3", 2))[0] == 1
