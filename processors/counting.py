"""Events per user: the first fold over canonical events, idempotent under redelivery.

State (a JSON-ready dict, kept in a changelog-backed table)::

    {"by_source": {"orders": 3, ...}, "ids": ["f-...", ...], "last_event_time": "..."}

The ids applied live in the same value they changed, so replaying an event after a crash
(its changelog write may already be durable) changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import to_iso

CountState = dict[str, Any]
Verdict = Literal["accepted", "duplicate"]


def fold_count(state: CountState | None, event: CanonicalEvent) -> tuple[CountState, Verdict]:
    """Apply ``event`` to ``state``; return the new state and whether it was new.

    The input state is not modified.

    >>> from datetime import datetime, UTC
    >>> ev = CanonicalEvent("e1", "orders", "U1", datetime(2024, 1, 1, tzinfo=UTC))
    >>> s, v = fold_count(None, ev); v, total(s)
    ('accepted', 1)
    >>> s, v = fold_count(s, ev); v, total(s)
    ('duplicate', 1)
    """
    if state is not None and event.event_id in state["ids"]:
        return state, "duplicate"
    by_source = dict(state["by_source"]) if state is not None else {}
    by_source[event.source] = by_source.get(event.source, 0) + 1
    ids = [*state["ids"], event.event_id] if state is not None else [event.event_id]
    moment = to_iso(event.event_time)
    last = state.get("last_event_time") if state is not None else None
    return (
        {"by_source": by_source, "ids": ids, "last_event_time": max(last or moment, moment)},
        "accepted",
    )


def total(state: CountState | None) -> int:
    """All events counted in ``state``."""
    return 0 if state is None else sum(state["by_source"].values())
