"""Segment-change alerts: one message each time a customer moves between segments (pure).

A *segment alert* says that customer ``user_id`` left segment ``old`` of a segment group
(``'value'``, ``'activity'`` or ``'tag:<name>'``) for segment ``new`` under segment rules of
version ``rule_version``. Campaign triggers (:mod:`custpulse.processors.campaigns`) and the
marketing feed consume it.

Cause convention
----------------
``cause`` says what moved the customer, so that the alert id is the same however often the
move is computed again (redelivery after a crash, restart, replay):

* an event moved it: ``cause`` is that event's id (``event_id`` of the canonical event);
* time alone moved it (no activity, so *silent* -> *sleeping*): ``cause`` is ``'timer:'``
  followed by the deadline that passed, in the wire form of
  :func:`~custpulse.schemas.times.to_iso`, e.g. ``'timer:2026-03-01T00:00:00.000+00:00'``
  (build it with :func:`timer_cause`). The deadline is computed from event-time state, not
  from the moment the timer happened to run, so it is stable too.

Time semantics: ``event_time`` is when the move happened in event time (the event's time, or
the deadline for a timer); ``processing_time`` is the watermark / wall time at which it was
detected; ``late`` is true when the move was computed from an event earlier than the
customer's own ``as_of`` (the time of its last evaluation): it changes a value that had already
been announced. ``historical`` is true when ``event_time`` is older than the freshness horizon
of the wall clock (default 24 h): such moves send no campaign trigger. Times must be aware
datetimes; they are written in UTC with milliseconds.

>>> from datetime import UTC, datetime
>>> t = datetime(2026, 3, 1, tzinfo=UTC)
>>> a = segment_alert(user_id="U1", group="activity", old="silent", new="sleeping",
...                   rule_version=3, traits={"recency_days": 90.0}, cause=timer_cause(t),
...                   event_time=t, processing_time=t, late=False)
>>> a["cause"], a["event_time"], a["alert_id"] == alert_id(
...     "U1", "activity", "silent", "sleeping", timer_cause(t), 3)
('timer:2026-03-01T00:00:00.000+00:00', '2026-03-01T00:00:00.000+00:00', True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from custpulse.schemas.times import to_iso

ALERT_VERSION = 1
TIMER_PREFIX = "timer:"
ID_LENGTH = 24  # hex characters of sha256 kept in ids (96 bits)


def alert_id(
    user_id: str, group: str, old: str | None, new: str, cause: str, rule_version: int
) -> str:
    """Stable id of one segment move: ``'a-'`` + the first 24 hex digits of sha256 over
    ``user_id, group, old, new, cause, rule_version`` joined by ``'\\x00'`` (UTF-8).

    ``old=None`` (no previous segment) is written as the empty string; segment names are never
    empty. The same move with the same cause gives the same id after a redelivery or restart,
    so consumers deduplicate on it.

    >>> alert_id("U1", "value", None, "potential", "e-1", 1)
    'a-9b945e45563dd8100bc4ba77'
    """
    fields = (user_id, group, "" if old is None else old, new, cause, str(int(rule_version)))
    digest = hashlib.sha256("\x00".join(fields).encode("utf-8")).hexdigest()
    return "a-" + digest[:ID_LENGTH]


def timer_cause(deadline: datetime) -> str:
    """The ``cause`` of a move made by time alone: ``'timer:'`` + the deadline (aware).

    >>> from datetime import UTC, datetime
    >>> timer_cause(datetime(2026, 3, 1, 8, tzinfo=UTC))
    'timer:2026-03-01T08:00:00.000+00:00'
    """
    return TIMER_PREFIX + to_iso(deadline)


def segment_alert(
    *,
    user_id: str,
    group: str,
    old: str | None,
    new: str,
    rule_version: int,
    traits: Mapping[str, Any],
    cause: str,
    event_time: datetime,
    processing_time: datetime,
    late: bool,
    historical: bool = False,
) -> dict[str, Any]:
    """The JSON-ready segment alert (message format version ``v`` = 1).

    ``historical`` marks a move whose event time is older than the freshness horizon of the
    wall clock at processing (a replay of old data): it is announced, but it sends no campaign
    trigger.

    ``traits`` are the (already masked) profile values the rule looked at, copied as given;
    ``event_time`` and ``processing_time`` must be aware and come out as ISO 8601 UTC with
    milliseconds. Raises ``ValueError`` for an empty ``user_id``/``group``/``new``/``cause``,
    ``old == new`` (not a move) or a naive datetime.
    """
    for name, value in (("user_id", user_id), ("group", group), ("new", new), ("cause", cause)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"segment alert needs a non-empty {name}")
    if old == new:
        raise ValueError(f"segment alert for {user_id!r} is not a move: old == new == {new!r}")
    return {
        "v": ALERT_VERSION,
        "alert_id": alert_id(user_id, group, old, new, cause, rule_version),
        "user_id": user_id,
        "group": group,
        "old": old,
        "new": new,
        "rule_version": int(rule_version),
        "traits": dict(traits),
        "cause": cause,
        "event_time": to_iso(event_time),
        "processing_time": to_iso(processing_time),
        "late": bool(late),
        "historical": bool(historical),
    }
