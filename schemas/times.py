"""Reading event times from source values.

Accepted forms (all return an aware ``datetime``):

* ``"2024-03-15 10:30:00"`` (also with ``/`` separators, minutes only, or a date alone),
  read in the given source zone;
* ISO 8601 with or without offset (``"2024-03-15T10:30:00+08:00"``, ``"...Z"``);
* epoch seconds or milliseconds as a number or a numeric string (UTC by definition).

>>> from zoneinfo import ZoneInfo
>>> parse_time("2024-03-15 10:30:00", ZoneInfo("Asia/Shanghai")).isoformat()
'2024-03-15T10:30:00+08:00'
>>> parse_time(1710469800, ZoneInfo("Asia/Shanghai")).isoformat()
'2024-03-15T02:30:00+00:00'
>>> parse_time("not a time", ZoneInfo("UTC")) is None
True
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, tzinfo

_NAIVE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
)

# Epoch values above this are milliseconds (year 5138 in seconds; 1973 in milliseconds).
_MILLIS_THRESHOLD = 1e11


def parse_time(value: object, zone: tzinfo) -> datetime | None:
    """Return ``value`` as an aware datetime, or ``None`` if it is not a time we can read.

    Naive values are local times in ``zone``; epoch numbers are UTC.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return _from_epoch(float(text)) if _looks_numeric(text) else _from_text(text, zone)
    except (ValueError, OverflowError, OSError):
        return None


def _looks_numeric(text: str) -> bool:
    body = text[1:] if text[0] in "+-" else text
    return body.replace(".", "", 1).isdigit()


def _from_epoch(number: float) -> datetime | None:
    if not math.isfinite(number) or number < 0:
        return None
    seconds = number / 1000.0 if number >= _MILLIS_THRESHOLD else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _from_text(text: str, zone: tzinfo) -> datetime | None:
    # Fast path: ISO 8601 and "YYYY-MM-DD HH:MM[:SS]" (C parser; handles offsets and "Z").
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        pass
    else:
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
    for fmt in _NAIVE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone)  # noqa: DTZ007 (zone set)
        except ValueError:
            continue
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    parsed = datetime.fromisoformat(iso)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def to_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with offset, millisecond precision: the form we put on the wire.

    >>> to_iso(datetime(2024, 3, 15, 2, 30, tzinfo=UTC))
    '2024-03-15T02:30:00.000+00:00'
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime: custpulse only writes times with a zone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
