"""JSON on the hot path (envelopes, table values, alerts): orjson, with the standard library
as the fallback for what orjson refuses (integers beyond 64 bits, non-string keys).

``dumps`` gives compact UTF-8 JSON (no ASCII escaping), the same document as
``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` up to float spelling
(``1.5e-7`` for ``1.5e-07``: the same number); ``loads`` reads bytes or text.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. an int beyond 64 bits, a non-str key
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """JSON bytes or text -> Python (raises ``ValueError`` when it is not JSON)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # what orjson refuses but the standard library reads (NaN, lone surrogates in escapes)
        return json.loads(data)
