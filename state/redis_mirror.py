"""The Redis mirror of per-user state.

Key ``<redis_prefix>profile:<user_id>`` (default ``cp:profile:U000001``) is a hash:

* ``events_total``: events counted for the user (all sources);
* ``events_customers``, ``events_behavior``, ``events_orders``, ``events_tickets``;
* ``last_event_time``: latest event time seen, ISO 8601 UTC;
* ``updated_at``: processing time of the last write, ISO 8601 UTC;
* ``version``: the version of the table value mirrored (an older one never overwrites it);
* the profile view (see docs/contract.md).

Writes set absolute values from the current state, so repeating one is harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from custpulse.processors.counting import CountState, total
from custpulse.schemas import wire
from custpulse.settings import SOURCES, Settings

log = logging.getLogger("custpulse.redis")

RETRY_MAX_DELAY_S = 5.0


SEGMENT_FIELDS = (("value", "segment"), ("activity", "activity_segment"))
"""Segment groups kept as Redis sets: (group, the profile hash field that names the segment)."""

_MIRROR_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1') or -1
local version, base = tonumber(ARGV[1]), tonumber(ARGV[2])
if current > version then return 0 end
if base >= 0 and current ~= base then return -1 end
local user, prefix, groups = ARGV[3], ARGV[4], tonumber(ARGV[5])
local i = 6
for g = 1, groups do
  local group, field, new = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local old = redis.call('HGET', KEYS[1], field)
  if old and old ~= new and old ~= '' then
    redis.call('SREM', prefix .. group .. ':' .. old, user)
  end
  if new ~= '' then redis.call('SADD', prefix .. group .. ':' .. new, user) end
end
local pairs = {}
for j = i, #ARGV do pairs[#pairs + 1] = ARGV[j] end
if #pairs > 0 then redis.call('HSET', KEYS[1], unpack(pairs)) end
return 1
"""


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """One customer's mirror: the hash fields (a snapshot, strings), the value's version and
    the alerts to publish to the ``<prefix>alerts`` stream (dicts, or already encoded as
    :func:`custpulse.schemas.wire.dumps` writes them)."""

    user_id: str
    version: int
    fields: Mapping[str, str]
    alerts: list[dict[str, Any]] | list[bytes]


MIRROR_CACHE_CUSTOMERS = 100_000
"""Customers whose last mirrored fields a worker remembers (as hashes) to send only changes."""

STALE, WRITTEN, NEEDS_ALL = 0, 1, -1
"""What the mirror script answers: an older write than Redis holds (nothing changed), done,
or a change set whose base Redis does not hold (the caller sends every field)."""


class MirrorCache:
    """What this worker last mirrored per customer: the value's version and a hash of each
    field's text, at most ``size`` customers (least recently written ones are forgotten).

    It lets a write carry only the fields whose text changed, with the version they change
    (``base``): the script applies them only if Redis holds exactly that version, which this
    worker wrote with these fields (versions count the table value's writes, and a version's
    fields follow from its value), else the write is refused and sent again whole. So Redis
    ends the same as when every field is written, whatever another owner, a Redis restart or
    a lost write did meanwhile. Memory: ~0.6 KB per customer (one 8-byte hash per field).
    A changed field is sent unless its new text has the same 64-bit hash as the old one."""

    def __init__(self, size: int = MIRROR_CACHE_CUSTOMERS) -> None:
        self.size = size
        self._names: tuple[str, ...] = ()
        self._last: dict[str, tuple[int, tuple[int, ...]]] = {}

    def changes(self, item: ProfileWrite) -> tuple[int, Mapping[str, str]]:
        """``(base, fields)``: the fields to send and the version they change, or ``(-1, all
        fields)`` when this worker has no mirror of the customer to build on."""
        last = self._last.get(item.user_id)
        if last is None or tuple(item.fields) != self._names:
            return -1, item.fields
        base, hashes = last
        return base, {name: value for (name, value), old in zip(item.fields.items(), hashes,
                                                                strict=True)
                      if hash(value) != old}

    def written(self, item: ProfileWrite) -> None:
        """Redis now holds ``item`` (every field)."""
        names = tuple(item.fields)
        if names != self._names:  # another field set (a new version of the view): start over
            self._names = names
            self._last.clear()
        self._last.pop(item.user_id, None)
        self._last[item.user_id] = (item.version, tuple(hash(v) for v in item.fields.values()))
        if len(self._last) > self.size:
            del self._last[next(iter(self._last))]

    def forget(self, user_id: str) -> None:
        self._last.pop(user_id, None)


async def write_profiles(client: Any, items: list[ProfileWrite], settings: Settings,
                         cache: MirrorCache | None = None, metrics: Any = None) -> None:
    """Mirror each customer and publish its alerts, all in one MULTI/EXEC pipeline (one round
    trip per announcement), retrying with backoff (0.1 s doubling to 5 s) until Redis accepts
    it. The caller's offset does not advance meanwhile, so an outage delays the mirror but
    never skips a write.

    **Redis follows state, never history**: the hash and the segment sets
    ``<prefix>segment:<group>:<name>`` are written from the customer's current value, in one
    server-side script that moves the customer from the set its hash names to the set of the
    new value. A write carries the value's ``version``; a write older than what the hash holds
    (a previous owner after a rebalance, a redelivery) changes nothing, an equal one is a
    harmless repeat. Alerts (re-sent ones too) only go to the stream, with their stable
    ``alert_id``; they never move set membership. Logs carry the error type only, never values.

    With a ``cache`` (:class:`MirrorCache`) a write carries only the fields that changed since
    this worker's last write of the customer; one that Redis refuses (its base is not what
    Redis holds) is sent again whole, in a second pipeline. ``metrics`` (optional): counts the
    errors (``redis_write_errors`` by error type) and the pipelines sent again
    (``redis_write_retries``).
    """
    if not items:
        return
    script = client.register_script(_MIRROR_SCRIPT)
    set_prefix = settings.redis_key("segment", "")
    delay = 0.1
    pending, alerts = items, True
    while pending:
        try:
            pipe = client.pipeline(transaction=True)
            slots = []  # per item: its script's position in the pipeline's results
            for item in pending:
                base, fields = cache.changes(item) if cache is not None else (-1, item.fields)
                args: list[Any] = [item.version, base, item.user_id, set_prefix,
                                   len(SEGMENT_FIELDS)]
                for group, field in SEGMENT_FIELDS:
                    args += [group, field, item.fields.get(field, "")]
                for name, value in fields.items():
                    args += [name, value]
                args += ["version", str(item.version)]
                slots.append(len(pipe))
                await script(keys=[profile_key(settings, item.user_id)], args=args, client=pipe)
                for alert in item.alerts if alerts else ():
                    encoded = alert if isinstance(alert, bytes) else wire.dumps(alert)
                    pipe.xadd(settings.redis_key("alerts"), {"alert": encoded},
                              maxlen=settings.alerts_stream_maxlen, approximate=True)
            results = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("Redis write failed (%s); retrying in %.1f s", type(exc).__name__, delay)
            if metrics is not None:
                metrics.redis_write_errors.labels(type(exc).__name__).inc()
                metrics.redis_write_retries.inc()
            if cache is not None:  # what Redis holds of them is unknown now
                for item in pending:
                    cache.forget(item.user_id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
            continue
        retry = []
        for item, slot in zip(pending, slots, strict=True):
            outcome = results[slot]
            if outcome == NEEDS_ALL:
                retry.append(item)
            elif cache is not None:
                if outcome == WRITTEN:
                    cache.written(item)
                else:  # Redis holds a newer version (another owner): nothing to build on
                    cache.forget(item.user_id)
        if retry and cache is not None:
            for item in retry:
                cache.forget(item.user_id)
        if retry and metrics is not None:
            metrics.redis_write_retries.inc()
        pending, alerts = retry, False  # the alerts went out with the first pipeline


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
