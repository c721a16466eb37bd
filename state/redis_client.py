"""The worker's Redis client: redis-py's asyncio client, with commands packed by hiredis.

A mirror write is one ``EVALSHA`` of ~130 arguments per customer; redis-py packs them in pure
Python (~120 us per command), hiredis in C (~18 us). The bytes on the wire are the same RESP;
replies are parsed as before. Without hiredis (or for an argument hiredis would format
differently: floats) redis-py's own packer is used.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

try:  # an optional speed-up: the worker is correct without it
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a dependency
    _hiredis_pack = None


_PACKABLE = frozenset({str, bytes, int})
"""Argument types hiredis packs exactly as redis-py (exact types: not bool, not subclasses)."""


class PackedConnection(Connection):
    """A TCP connection whose commands hiredis packs (same RESP bytes as redis-py); text is
    UTF-8 (strict) in hiredis, so another encoding keeps redis-py's packer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        encoder = self.encoder
        self._utf8 = (encoder.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
                      and encoder.encoding_errors == "strict")

    def pack_command(self, *args: Any) -> list[bytes]:
        if _hiredis_pack is None or not args or not self._utf8 or not _PACKABLE.issuperset(
                map(type, args)):
            return super().pack_command(*args)
        # as redis-py: a command name with spaces ("SCRIPT LOAD") is several arguments
        if isinstance(args[0], str):
            args = tuple(args[0].encode().split()) + args[1:]
        elif b" " in args[0]:
            args = tuple(args[0].split()) + args[1:]
        return [_hiredis_pack(args)]


def connect(url: str) -> aioredis.Redis:
    """An asyncio client for ``url``; plain ``redis://`` connections pack with hiredis (TLS and
    unix-socket URLs keep redis-py's connection classes)."""
    if urlparse(url).scheme == "redis":
        return aioredis.Redis.from_url(url, connection_class=PackedConnection)
    return aioredis.Redis.from_url(url)
