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
