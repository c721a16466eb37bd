"""Events per user: the first fold over canonical events, idempotent under redelivery.

State (a JSON-ready dict, kept in a changelog-backed table)::

    {"by_source": {"orders": 3, ...},
     "ids": {"f-...": 1710469800000, ...},   # event id -> event time, epoch milliseconds
     "floor": 1700000000000 | None,          # newest event time ever evicted from "ids"
     "sorted": "<id>",                       # at the cap: "ids" in (time, id) order, this last
     "last_event_time": "2024-03-15T02:30:00.000+00:00"}

The ids applied live in the same value they changed, so replaying an event after a crash
(its changelog write may already be durable) changes nothing. Memory per customer is bounded:
at most ``max_ids`` ids are kept, the oldest by event time are evicted first, and ``floor``
remembers how far eviction went. An unknown id at or before ``floor`` cannot be told apart
from a repeat of an evicted event, so it is neither counted nor dropped: the verdict
``beyond_horizon`` sends it to the dead-letter topic with that reason.
"""

from __future__ import annotations

from typing import Any, Literal

from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import to_iso

CountState = dict[str, Any]
Verdict = Literal["accepted", "duplicate", "beyond_horizon"]

DEFAULT_MAX_IDS = 5000


def _millis(event: CanonicalEvent) -> int:
    return int(round(event.event_time.timestamp() * 1000))


def fold_count(
    state: CountState | None, event: CanonicalEvent, max_ids: int = DEFAULT_MAX_IDS
) -> tuple[CountState, Verdict]:
    """Apply ``event`` to ``state``; return the new state and the verdict.

    The input state is not modified; on ``duplicate`` and ``beyond_horizon`` it is returned
    as it is.

    >>> from datetime import datetime, UTC
    >>> ev = CanonicalEvent("e1", "orders", "U1", datetime(2024, 1, 1, tzinfo=UTC))
    >>> s, v = fold_count(None, ev); v, total(s)
    ('accepted', 1)
    >>> s, v = fold_count(s, ev); v, total(s)
    ('duplicate', 1)
    """
    if state is None:
        return apply_count(None, event, max_ids)
    copied = {**state, "by_source": dict(state["by_source"]), "ids": dict(state["ids"])}
    new, verdict = apply_count(copied, event, max_ids)
    return (new, verdict) if verdict == "accepted" else (state, verdict)


def apply_count(
    state: CountState | None, event: CanonicalEvent, max_ids: int = DEFAULT_MAX_IDS
) -> tuple[CountState, Verdict]:
    """:func:`fold_count` in place: ``state`` itself is updated (a new one is made if None),
    so a long id list is never copied. For batch folding, where the caller writes the value
    back once per batch."""
    if state is None:
        state = {"by_source": {}, "ids": {}, "floor": None, "last_event_time": None}
    ids = state["ids"]
    if event.event_id in ids:
        return state, "duplicate"
    moment = _millis(event)
    floor = state.get("floor")
    if floor is not None and moment <= floor:
        return state, "beyond_horizon"
    by_source = state["by_source"]
    by_source[event.source] = by_source.get(event.source, 0) + 1
    if len(ids) < max_ids:
        ids[event.event_id] = moment
        state.pop("sorted", None)
    else:
        # At the cap the oldest id (by event time, then id) goes for every new one: the ids are
        # kept in that order (a dict keeps insertion order, so does its JSON), so the oldest is
        # the first. "sorted" names the last id of a sorted dict: whoever appended otherwise
        # (a raised cap, another version of the worker) changed the last id, and the ids are
        # sorted again. An id that is not the newest re-sorts them (nearly sorted: linear).
        last = next(reversed(ids)) if ids else None
        if state.get("sorted") != last:
            _sort_ids(state)
            ids = state["ids"]
            last = next(reversed(ids)) if ids else None
        ids[event.event_id] = moment
        if last is not None and (moment, event.event_id) < (ids[last], last):
            _sort_ids(state)
            ids = state["ids"]
        while len(ids) > max_ids:
            evicted = ids.pop(next(iter(ids)))
            floor = evicted if floor is None else max(floor, evicted)
        state["sorted"] = next(reversed(ids)) if ids else None
    state["floor"] = floor
    iso = to_iso(event.event_time)
    last = state.get("last_event_time")
    state["last_event_time"] = iso if last is None else max(last, iso)
    return state, "accepted"


def _sort_ids(state: CountState) -> None:
    """Order ``state["ids"]`` by (event time, id)."""
    state["ids"] = dict(sorted(state["ids"].items(), key=lambda kv: (kv[1], kv[0])))


def total(state: CountState | None) -> int:
    """All events counted in ``state``."""
    return 0 if state is None else sum(state["by_source"].values())
