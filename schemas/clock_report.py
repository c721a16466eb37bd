"""Messages on ``<prefix>clock``: each ingest process's report on the inputs it reads.

One record per input (key: the input name ``<topic>:<partition>``, UTF-8), a JSON object::

    {"v": 1, "input": "cp.orders:0", "time": "2026-06-01T02:00:00.000+00:00" | null,
     "seen": "<wall-clock ISO>" | null, "lagging": false, "reported": "<wall-clock ISO>"}

``time`` is the latest event time of the input whose envelopes are acknowledged on
``<prefix>events``; ``seen`` the wall-clock time it last delivered an event; ``lagging``
whether it has records not yet read; ``reported`` when the report was made. The topic has one
partition and is compacted: the newest report per input is what counts (see
:class:`custpulse.processors.clock.InputReport`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from custpulse.processors.clock import InputReport
from custpulse.schemas.times import to_iso

VERSION = 1


def encode_report(input: str, report: InputReport) -> tuple[bytes, bytes]:
    """``(key, value)`` of the record for ``report`` on ``input``.

    >>> from datetime import UTC
    >>> at = datetime(2026, 6, 1, 2, tzinfo=UTC)
    >>> key, value = encode_report("cp.orders:0", InputReport(at, at, False, at))
    >>> decode_report(value) == ("cp.orders:0", InputReport(at, at, False, at))
    True
    """
    value = {"v": VERSION, "input": input,
             "time": None if report.time is None else to_iso(report.time),
             "seen": None if report.seen is None else to_iso(report.seen),
             "lagging": report.lagging, "reported": to_iso(report.reported)}
    return input.encode(), json.dumps(value, separators=(",", ":")).encode()


def decode_report(value: bytes | None) -> tuple[str, InputReport] | None:
    """The input and report of a record, or None if it is not a report we can read (a newer
    version, a foreign writer): the fold then goes on without it."""
    try:
        data: Any = json.loads(value or b"")
        if not isinstance(data, dict) or type(data.get("v")) is not int or data["v"] != VERSION:
            return None
        name = data["input"]
        lagging = data["lagging"]
        if not isinstance(name, str) or not isinstance(lagging, bool):
            return None
        times = [None if data[k] is None else datetime.fromisoformat(data[k])
                 for k in ("time", "seen", "reported")]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    time, seen, reported = times
    if reported is None or any(t is not None and t.tzinfo is None for t in times):
        return None
    if (time is None) != (seen is None):
        return None
    return name, InputReport(time, seen, lagging, reported)
