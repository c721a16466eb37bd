"""JSON on the hot path (envelopes, table values): one place for how it is written and read.

``dumps`` gives compact UTF-8 JSON (no ASCII escaping); ``loads`` reads bytes or text. The
standard library's encoder, on purpose: orjson would be faster, but installing it also
switches Faust's own JSON codec (``faust.utils.json``) to it, and orjson reads integers beyond
64 bits as floats and refuses to write them, which would change table values on changelog
recovery.
"""

from __future__ import annotations

import json
from typing import Any

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes."""
    return _ENCODE(value).encode()


def loads(data: bytes | str) -> Any:
    """JSON bytes or text -> Python (raises ``ValueError`` when it is not JSON)."""
    return json.loads(data)
