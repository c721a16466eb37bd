"""Reading event times from source values, without guessing.

Accepted without any declaration (all return an aware ``datetime``):

* ``"2024-03-15 10:30:00"`` (also with ``/`` separators, one-digit month or day, minutes only,
  or a date alone: ``"2024/3/15"``), read in the given source zone;
* ``"2024年3月15日"`` / ``"2024年3月15日 10时30分"`` (also ``10:30``, ``10点30分``, seconds),
  read in the given source zone;
* ISO 8601 with or without offset (``"2024-03-15T10:30:00+08:00"``, ``"...Z"``; without an
  offset: the given source zone);
* ``datetime`` / ``date`` objects (naive ones in the given source zone).

A bare number (``1710469800``, ``"20240315"``, ``45366.4375``) is **ambiguous**: the same digits
are epoch seconds, epoch milliseconds, a compact date or an Excel serial day, and each reading
gives a plausible but different time. Numbers are read only under a declared format
(:data:`TIME_FORMATS`, declared per field in the mapping as ``time_formats``):

* ``epoch_s``: seconds since 1970-01-01T00:00:00Z (UTC by definition);
* ``epoch_ms``: milliseconds since 1970-01-01T00:00:00Z (UTC by definition);
* ``excel_serial``: days (fraction = time of day) since Excel's day 0, 1899-12-30, in the
  1900 date system; a local wall-clock time, read in the given source zone (serials below 60
  count from 1899-12-31, serial 60 is Excel's non-existent 1900-02-29 and is refused);
* ``yyyymmdd``: a compact date ``YYYYMMDD`` (text or whole number), local midnight in the given
  source zone.

Without a declaration a number is refused with :data:`AMBIGUOUS` (a negative or non-finite
number, which no format reads, with :data:`UNREADABLE`). Under a declaration, unambiguous text
forms are still read as above.

>>> from zoneinfo import ZoneInfo
>>> SH = ZoneInfo("Asia/Shanghai")
>>> parse_time("2024-03-15 10:30:00", SH).isoformat()
'2024-03-15T10:30:00+08:00'
>>> parse_time(1710469800, SH) is None, read_time(1710469800, SH)[1]
(True, 'ambiguous')
>>> parse_time(1710469800, SH, "epoch_s").isoformat()
'2024-03-15T02:30:00+00:00'
>>> parse_time("20240315", SH, "yyyymmdd").isoformat()
'2024-03-15T00:00:00+08:00'
>>> parse_time(45366.4375, SH, "excel_serial").isoformat()
'2024-03-15T10:30:00+08:00'
>>> parse_time("not a time", ZoneInfo("UTC")) is None
True
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Literal

TimeFormat = Literal["epoch_s", "epoch_ms", "excel_serial", "yyyymmdd"]
TIME_FORMATS: tuple[str, ...] = ("epoch_s", "epoch_ms", "excel_serial", "yyyymmdd")
"""Formats a mapping may declare for a time field; the only ways a bare number is read."""

AMBIGUOUS = "ambiguous"
"""Reason: a bare number under no declared format (dead-letter code ``ambiguous_time``)."""
UNREADABLE = "unreadable"
"""Reason: not a time in any accepted form (dead-letter ``bad_time`` / ``bad_event_time``)."""

_NAIVE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_CJK_DATE = re.compile(
    r"(\d{4})年(\d{1,2})月(\d{1,2})[日号號]?"
    r"(?:\s*(\d{1,2})[时時点點:](?:(\d{1,2})分?(?::?(\d{1,2})秒?)?)?)?"
)
_EXCEL_DAY0 = datetime(1899, 12, 30)  # noqa: DTZ001 (a wall-clock origin; the zone is set later)
_COMPACT_DATE = re.compile(r"\d{8}")


def read_time(
    value: object, zone: tzinfo, time_format: str | None = None
) -> tuple[datetime | None, str | None]:
    """``(moment, None)`` or ``(None, reason)``; reason is :data:`AMBIGUOUS` or :data:`UNREADABLE`.

    Naive values are wall-clock times in ``zone``; epoch numbers are UTC. ``time_format`` (one
    of :data:`TIME_FORMATS`) says how a bare number is read; without it numbers are ambiguous.
    Pure; never raises.
    """
    if time_format is not None and time_format not in TIME_FORMATS:
        raise ValueError(f"unknown time format {time_format!r}")
    try:
        return _read(value, zone, time_format)
    except (ValueError, OverflowError, OSError, ArithmeticError):
        return None, UNREADABLE


def parse_time(value: object, zone: tzinfo, time_format: str | None = None) -> datetime | None:
    """``value`` as an aware datetime, or ``None`` if it is not a time we read (see
    :func:`read_time`, which also says why)."""
    return read_time(value, zone, time_format)[0]


def _read(
    value: object, zone: tzinfo, time_format: str | None
) -> tuple[datetime | None, str | None]:
    if value is None or isinstance(value, bool):
        return None, UNREADABLE
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=zone)), None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone), None
    if isinstance(value, int | float | Decimal):
        return _from_number(Decimal(str(value)) if isinstance(value, float) else Decimal(value),
                            zone, time_format)
    if not isinstance(value, str):
        return None, UNREADABLE
    ascii_text = value.isascii()  # NFKC leaves ASCII as it is; CJK dates are not ASCII
    text = (value if ascii_text else unicodedata.normalize("NFKC", value)).strip()
    if not text:
        return None, UNREADABLE
    if ":" not in text and _NUMBER.fullmatch(text):  # (a number has no colon, a time has)
        return _from_number(Decimal(text), zone, time_format)
    moment = _from_text(text, zone, cjk=not ascii_text)
    return (moment, None) if moment is not None else (None, UNREADABLE)


def _from_number(
    number: Decimal, zone: tzinfo, time_format: str | None
) -> tuple[datetime | None, str | None]:
    if not number.is_finite() or number < 0:
        return None, UNREADABLE
    if time_format is None:
        return None, AMBIGUOUS
    if time_format == "epoch_s":
        return _epoch(number), None
    if time_format == "epoch_ms":
        return _epoch(number / 1000), None
    if time_format == "excel_serial":
        return _excel(number, zone)
    return _compact_date(number, zone)


def _epoch(seconds: Decimal) -> datetime:
    whole = int(seconds)
    micros = int(((seconds - whole) * 1_000_000).to_integral_value())
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=whole, microseconds=micros)


def _excel(serial: Decimal, zone: tzinfo) -> tuple[datetime | None, str | None]:
    if serial < 1 or 60 <= serial < 61:  # no day 0 in use; 60 is the fictitious 1900-02-29
        return None, UNREADABLE
    if serial < 60:
        serial += 1  # before the fictitious leap day, Excel's days are one behind
    micros = int((serial * 86_400_000_000).to_integral_value())
    return (_EXCEL_DAY0 + timedelta(microseconds=micros)).replace(tzinfo=zone), None


def _compact_date(number: Decimal, zone: tzinfo) -> tuple[datetime | None, str | None]:
    if number != number.to_integral_value():
        return None, UNREADABLE
    digits = str(int(number))
    if not _COMPACT_DATE.fullmatch(digits):
        return None, UNREADABLE
    day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    return datetime(day.year, day.month, day.day, tzinfo=zone), None


def _from_text(text: str, zone: tzinfo, cjk: bool = True) -> datetime | None:
    match = _CJK_DATE.fullmatch(text) if cjk else None  # 2024年3月15日 10时30分
    if match:
        y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
        try:
            return datetime(y, mo, d, h, mi, s, tzinfo=zone)
        except ValueError:
            return None
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
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def to_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with offset, millisecond precision: the form we put on the wire.

    >>> to_iso(datetime(2024, 3, 15, 2, 30, tzinfo=UTC))
    '2024-03-15T02:30:00.000+00:00'
    """
    if moment.tzinfo is UTC:  # most of ours: cached (UTC has no fold, equal means the same)
        return _utc_iso(moment)
    if moment.tzinfo is None:
        raise ValueError("naive datetime: custpulse only writes times with a zone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@lru_cache(maxsize=16_384)
def _utc_iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def aware_from_iso(text: object) -> datetime | None:
    """An ISO 8601 text with an offset as an aware UTC datetime; None for anything else (not
    text, empty, unreadable, naive, out of range). For times we wrote ourselves."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
