"""JSON on the hot path (envelopes, table values): one place for how it is written and read.

``dumps`` gives compact UTF-8 JSON (no ASCII escaping); ``loads`` reads bytes or text. Both
are msgspec's (an encode of a large table value is ~12x faster than the standard library's).
Not orjson: installing it also switches Faust's own JSON codec (``faust.utils.json``) to it, and
orjson reads integers beyond 64 bits as floats and refuses to write them; msgspec leaves Faust
alone and keeps integers of any size. What it writes is standard JSON, so Faust's codec reads
table values back on changelog recovery exactly. Non-finite floats (which JSON has no word for;
Python's reader accepts ``NaN`` in raw records) are written as ``null``.
"""

from __future__ import annotations

from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes.

    >>> dumps({"user_id": "客户1", "n": 2 ** 70, "x": [1.5, None, True]}).decode()
    '{"user_id":"客户1","n":1180591620717411303424,"x":[1.5,null,true]}'
    """
    return _ENCODER.encode(value)


def loads(data: bytes | str) -> Any:
    """JSON bytes or text -> Python (raises ``ValueError`` when it is not JSON)."""
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:  # a subclass of ValueError already; keep the contract
        raise ValueError(str(exc)) from None
