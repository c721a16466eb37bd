"""The Redis mirror of per-user state.

Key ``<redis_prefix>profile:<user_id>`` (default ``cp:profile:U000001``) is a hash:

* ``events_total``: events counted for the user (all sources);
* ``events_customers``, ``events_behavior``, ``events_orders``, ``events_tickets``;
* ``last_event_time``: latest event time seen, ISO 8601 UTC;
* ``updated_at``: processing time of the last write, ISO 8601 UTC.

Writes set absolute values, so repeating one (after a redelivery) is harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from custpulse.processors.counting import CountState, total
from custpulse.settings import SOURCES, Settings

log = logging.getLogger("custpulse.redis")

RETRY_MAX_DELAY_S = 5.0


async def write_profiles(
    client: Any,
    items: list[tuple[str, Mapping[str, str], list[dict[str, Any]]]],
    settings: Settings,
) -> None:
    """For each ``(key, fields, alerts)``: HSET ``fields`` on ``key`` and publish ``alerts``
    (stream ``<prefix>alerts`` and the segment member sets ``<prefix>segment:<group>:<name>``),
    all in one MULTI/EXEC pipeline (one round trip per envelope), retrying with backoff
    (0.1 s doubling to 5 s) until Redis accepts it. The caller's offset does not advance
    meanwhile, so a Redis outage delays the mirror but never skips a write. Every command is
    safe to repeat (an alert repeated in the stream keeps its ``alert_id``). Logs carry the
    error type only, never values."""
    delay = 0.1
    while True:
        try:
            pipe = client.pipeline(transaction=True)
            for key, fields, alerts in items:
                pipe.hset(key, mapping=dict(fields))
                for alert in alerts:
                    pipe.xadd(settings.redis_key("alerts"), {"alert": json.dumps(alert)},
                              maxlen=settings.alerts_stream_maxlen, approximate=True)
                    if alert["group"] in ("value", "activity"):
                        if alert["old"] is not None:
                            pipe.srem(segment_key(settings, alert["group"], alert["old"]),
                                      alert["user_id"])
                        pipe.sadd(segment_key(settings, alert["group"], alert["new"]),
                                  alert["user_id"])
            await pipe.execute()
            return
        except (RedisError, OSError) as exc:
            log.warning("Redis write failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)


async def write_quality(client: Any, settings: Settings, snapshot: dict[str, Any]) -> None:
    """``<prefix>quality`` hash: source -> JSON of per-field rates and distributions.
    Best effort (a failed publish is retried at the next tick)."""
    if not snapshot:
        return
    try:
        await client.hset(
            settings.redis_key("quality"),
            mapping={source: json.dumps(fields) for source, fields in snapshot.items()},
        )
    except (RedisError, OSError) as exc:
        log.warning("Redis quality publish failed (%s)", type(exc).__name__)


def segment_key(settings: Settings, group: str, segment: str) -> str:
    """``<prefix>segment:<group>:<segment>``: the set of user ids currently in a segment."""
    return settings.redis_key("segment", group, segment)


def profile_key(settings: Settings, user_id: str) -> str:
    return settings.redis_key("profile", user_id)


def profile_fields(
    state: CountState, updated_at: str, view: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The hash fields for one user: event counts, the profile view as of its ``as_of``, and
    ``updated_at``. Values are strings: numbers as text, lists as JSON, missing as ``""``."""
    fields = {"events_total": str(total(state))}
    for source in SOURCES:
        fields[f"events_{source}"] = str(state["by_source"].get(source, 0))
    fields["last_event_time"] = state.get("last_event_time") or ""
    for name, value in (view or {}).items():
        fields[name] = _text(value)
    fields["updated_at"] = updated_at
    return fields


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def decode_profile(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash as read by redis-py (bytes or str) -> str dict."""
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def scan_profiles(client: Any, settings: Settings) -> dict[str, dict[str, str]]:
    """All mirrored profiles, user_id -> fields (a SCAN, for demos, tests and small stores)."""
    prefix = profile_key(settings, "")
    keys = sorted(client.scan_iter(match=prefix + "*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    profiles = {}
    for key, raw in zip(keys, pipe.execute(), strict=True):
        name = key.decode() if isinstance(key, bytes) else key
        profiles[name[len(prefix) :]] = decode_profile(raw)
    return profiles
