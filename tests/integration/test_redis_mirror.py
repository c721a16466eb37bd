"""Redis follows state, never history (real Redis): versions, segment sets, re-sent alerts."""

from __future__ import annotations

import asyncio
import json

import redis
import redis.asyncio as aioredis

from custpulse.settings import Settings
from custpulse.state.redis_mirror import ProfileWrite, profile_key, segment_key, write_profiles


def _write(settings: Settings, items: list[ProfileWrite]) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await write_profiles(client, items, settings)
        finally:
            await client.aclose()

    asyncio.run(go())


def _fields(segment: str, activity: str, n: int) -> dict[str, str]:
    return {"segment": segment, "activity_segment": activity, "orders_total": str(n)}


def test_sets_follow_the_current_value_and_older_versions_never_overwrite(settings: Settings):
    sync = redis.Redis.from_url(settings.redis_url)
    regular_active = _fields("regular", "active", 3)
    _write(settings, [ProfileWrite("U1", 1, _fields("potential", "regular", 1), [])])
    _write(settings, [ProfileWrite("U1", 2, regular_active, [])])
    assert sync.smembers(segment_key(settings, "value", "regular")) == {b"U1"}
    assert sync.smembers(segment_key(settings, "activity", "active")) == {b"U1"}
    assert sync.smembers(segment_key(settings, "value", "potential")) == set()
    assert sync.smembers(segment_key(settings, "activity", "regular")) == set()

    # finding 4: a stale re-send (an old alert potential -> regular of the activity group)
    # and an older write (a previous owner, a redelivery) change nothing
    stale_alert = {"alert_id": "a-1", "user_id": "U1", "group": "activity",
                   "old": "potential", "new": "regular"}
    _write(settings, [ProfileWrite("U1", 1, _fields("potential", "regular", 1), [stale_alert])])
    assert sync.smembers(segment_key(settings, "activity", "regular")) == set()
    assert sync.smembers(segment_key(settings, "activity", "active")) == {b"U1"}
    profile = sync.hgetall(profile_key(settings, "U1"))
    assert profile[b"orders_total"] == b"3" and profile[b"version"] == b"2"
    # the re-sent alert still reaches the stream (consumers deduplicate on alert_id)
    stream = sync.xrange(settings.redis_key("alerts"))
    assert [json.loads(f[b"alert"])["alert_id"] for _, f in stream] == ["a-1"]
    # the same version again is a harmless repeat
    _write(settings, [ProfileWrite("U1", 2, regular_active, [])])
    assert sync.smembers(segment_key(settings, "value", "regular")) == {b"U1"}
    sync.close()


def test_change_sets_end_where_whole_writes_end(settings: Settings):
    """Two owners (each with its own MirrorCache) write one customer's versions interleaved,
    some writes are lost, Redis loses the key once: the hash and the segment sets always end
    as the whole write of the highest version would leave them."""
    import random

    from custpulse.state.redis_mirror import MirrorCache

    rng = random.Random(11)
    sync = redis.Redis.from_url(settings.redis_url)
    caches = [MirrorCache(), MirrorCache()]
    segments = ["potential", "regular", "loyal"]

    def fields(version: int) -> dict[str, str]:  # a version's fields follow from its value
        r = random.Random(version)
        return {"segment": r.choice(segments), "activity_segment": r.choice(["active", "idle"]),
                "orders_total": str(version // 3), "as_of": f"t{version // 2}",
                "updated_at": f"w{version}"}

    async def go() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            highest = 0
            for version in range(1, 120):
                owner = caches[rng.random() < 0.3]
                if rng.random() < 0.1:
                    continue  # this write was never made (a crash before announcing)
                if rng.random() < 0.03:  # Redis restarted empty
                    sync.delete(profile_key(settings, "U7"),
                                *(segment_key(settings, "value", n) for n in segments))
                write = ProfileWrite("U7", version, fields(version), [])
                await write_profiles(client, [write], settings, owner)
                if rng.random() < 0.2:  # an older re-send by the other owner
                    old = rng.randint(1, version)
                    await write_profiles(client, [ProfileWrite("U7", old, fields(old), [])],
                                         settings, caches[0] if owner is caches[1] else caches[1])
                highest = version
                got = {k.decode(): v.decode()
                       for k, v in sync.hgetall(profile_key(settings, "U7")).items()}
                held = int(got["version"])
                assert {k: v for k, v in got.items() if k != "version"} == fields(held)
                assert held <= highest
                segment = got["segment"]
                for name in segments:
                    members = sync.smembers(segment_key(settings, "value", name))
                    assert (b"U7" in members) == (name == segment), (version, name)
        finally:
            await client.aclose()

    asyncio.run(go())
    sync.close()
