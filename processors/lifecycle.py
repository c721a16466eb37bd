"""One customer's re-evaluation: profile view -> segments -> alerts -> next deadline. Pure.

The segment state kept next to the profile (JSON-ready)::

    {"segment": "potential", "since": "<iso>", "activity_segment": "active",
     "rfm": {...}, "tags": [...], "rule_version": 1,
     "evaluated_at": "<iso>",                          # as_of of the last evaluation
     "next_deadline": "<iso, microseconds>" | None,    # when time alone changes the result
     "recent": [{"cause": "<event id | timer:...>", "by": "<record that applied it>",
                 "w": <version of the write>, "moves": [[group, old, new], ...],
                 "traits": {...}, "at": "<event_time>", "pt": "<processing_time>",
                 "late": bool, "hist": bool, "rv": rule_version, "v": alert version}, ...]}

``recent`` keeps the alerts of the evaluations that produced any among the customer's last
:data:`RECENT_WRITES` table writes (``w``: the write's version),
so that a redelivered record (after a crash between the durable state write and the alert
send) re-sends the same alerts with the same ids instead of losing them. ``by`` is the record
whose processing made the evaluation: the event itself, or, for deadlines applied before a
later event (or by a tick), that event (or tick). An entry keeps what its alerts do not share
(group, old, new) once per alert and the rest once (an evaluation's alerts have the same
cause, traits, times and flags): :func:`resend` rebuilds them exactly, ids included (a third of
the bytes of the alerts themselves, which entries written before held as ``"alerts"``; those
are re-sent as stored).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from custpulse.processors.alerts import alert_id, segment_alert
from custpulse.processors.profile import view_and_changes, view_step
from custpulse.processors.segments import (
    Evaluation,
    evaluate_lazily,
    next_deadline,
    read_windows,
    transition,
)
from custpulse.schemas.segments import TagLibrary
from custpulse.schemas.times import to_iso

SegState = dict[str, Any]
RECENT_WRITES = 48
"""Alerts are remembered for re-sending for the evaluations of the customer's last this many
table writes: more than the envelopes that can be folded and not yet announced (the delivery
protocol holds at most 2 x 16 + 1), since each envelope writes a customer at most once."""
RECENT_MAX_ENTRIES = 2000
"""A hard bound on remembered alert-producing evaluations per customer (beyond it the oldest
are forgotten: only a customer with more than this many moves among its last writes could
then miss a re-send after a crash)."""


@dataclass(frozen=True)
class Decision:
    seg: SegState
    view: dict[str, Any]
    alerts: list[dict[str, Any]]
    deadline: datetime | None
    changed: bool
    base: Base | None = None
    """The profile view this evaluation used, for a later time-only step (see ``decide``)."""


@dataclass(frozen=True, slots=True)
class Base:
    """A profile view as of ``at`` and the next window change after ``at`` (None: none);
    ``relevant_change``: the next change of a window the rules read (or complaint closing);
    ``next_relevant``: the earliest time after ``at`` at which time alone can change the
    evaluation (that change or a rule threshold), None if never."""

    at: datetime
    view: dict[str, Any]
    window_change: datetime | None
    relevant_change: datetime | None = None
    next_relevant: datetime | None = None


def _at(text: Any) -> datetime | None:
    """A stored time (ISO 8601 with offset, written by this module) as aware UTC."""
    if not isinstance(text, str) or not text:
        return None
    return _read_iso(text)


@lru_cache(maxsize=65_536)
def _read_iso(text: str) -> datetime:
    """Stored ISO text as aware UTC (the same few texts are read at every step: cached)."""
    return datetime.fromisoformat(text).astimezone(UTC)


@lru_cache(maxsize=65_536)
def _iso(moment: datetime) -> str:
    """An aware time as stored: ISO 8601 in UTC, microseconds kept (deadlines are exact).
    Equal instants give the same text whatever their zone, so caching by value is safe."""
    return moment.astimezone(UTC).isoformat()


def evaluated_at(seg: SegState | None) -> datetime | None:
    if not seg or not seg.get("evaluated_at"):
        return None
    return _read_iso(seg["evaluated_at"])


def decide(
    profile: dict[str, Any] | None,
    seg: SegState | None,
    as_of: datetime,
    *,
    library: TagLibrary,
    user_id: str,
    cause: str,
    event_time: datetime,
    processing_time: datetime,
    late: bool,
    historical_before: datetime | None = None,
    by: str | None = None,
    write: int = 0,
    base: Base | None = None,
) -> Decision:
    """Evaluate ``profile`` as of ``as_of``; compare with ``seg``; build alerts for each move.

    ``as_of`` must not be before ``seg``'s ``evaluated_at`` (callers keep it monotone).
    Alerts whose ``event_time`` is before ``historical_before`` (wall clock minus the
    freshness horizon) are marked ``historical``. ``by``: the record that made this
    evaluation (default: ``cause``), remembered for re-sending; ``write``: the version of the
    table write that will carry this evaluation (retention of remembered alerts). ``base``: the
    view of an earlier evaluation of the same, unchanged profile (a time-only step): only the
    values that move with time are then computed again (the same result as computing the
    view anew: :func:`~custpulse.processors.profile.view_step`).
    """
    if base is not None and profile is not None and base.at <= as_of:
        view, window_change, relevant_change = view_step(
            base.view, profile, as_of, read_windows(library))
    else:
        view, window_change, relevant_change = view_and_changes(
            profile, as_of, read_windows(library))
    raw_view = view
    history = None
    if seg and seg.get("segment"):
        history = {"segment": seg["segment"], "since": _at(seg["since"])}
    new, traits_of = evaluate_lazily(library, view, history, as_of=as_of)
    old = None
    if seg and seg.get("segment"):
        old = Evaluation(seg["segment"], seg["activity_segment"], seg.get("rfm", {}),
                         tuple(seg.get("tags", ())), {})
    moves = transition(old, new)
    traits = traits_of() if moves else {}  # only alerts carry them
    alerts = [
        segment_alert(user_id=user_id, group=group, old=before, new=after,
                      rule_version=library.version, traits=traits, cause=cause,
                      event_time=event_time, processing_time=processing_time, late=late,
                      historical=historical_before is not None and event_time < historical_before)
        for group, before, after in moves
    ]
    since = as_of if old is None or old.segment != new.segment else _at(seg["since"])
    activity_since = (
        as_of if old is None or old.activity_segment != new.activity_segment
        else _at(seg.get("activity_since")) or as_of
    )
    new_seg: SegState = {
        "segment": new.segment,
        "since": _iso(since),
        "activity_segment": new.activity_segment,
        "activity_since": _iso(activity_since),
        "rfm": new.rfm,
        "tags": list(new.tags),
        "rule_version": library.version,
        "evaluated_at": _iso(as_of),  # microseconds: deadlines are exact
        "recent": _remember(seg, cause, by or cause, alerts, write),
    }
    history_after = {"segment": new.segment, "since": since}
    threshold = next_deadline(library, view, history_after, as_of=as_of)
    due = [c for c in (window_change, threshold) if c is not None and c > as_of]
    relevant = [c for c in (relevant_change, threshold) if c is not None and c > as_of]
    new_seg["next_deadline"] = _iso(min(due)) if due else None
    view = dict(view, segment=new.segment, activity_segment=new.activity_segment,
                rfm_score=new.rfm.get("score"), tags=list(new.tags),
                rule_version=library.version, segment_since=to_iso(since))
    return Decision(new_seg, view, alerts, min(due) if due else None, bool(moves),
                    Base(as_of, raw_view, window_change, relevant_change,
                         min(relevant) if relevant else None))


def _remember(seg: SegState | None, cause: str, by: str,
              alerts: list[dict[str, Any]], write: int) -> list[Any]:
    prior = (seg or {}).get("recent") or []
    floor = write - RECENT_WRITES
    recent = None
    try:
        # Entries are appended here in write order (the fold's writes only go up), so those
        # to forget are a prefix: cut it. Only when this write is not older than the last
        # entry (evaluations made for a look, such as "rebuild" with write 0, are not kept).
        if not prior or write >= _entry_write(prior[-1]):
            recent = prior[bisect_right(prior, floor, key=_entry_write):]
    except (TypeError, ValueError, AttributeError):
        recent = None  # not a list of entries as written here
    if recent is None:  # filter one by one
        recent = [r for r in prior if isinstance(r, dict) and int(r.get("w") or 0) > floor]
    if alerts:
        recent = [r for r in recent if r.get("cause") != cause]
        first = alerts[0]
        recent.append({"cause": cause, "by": by, "w": write,
                       "moves": [[a["group"], a["old"], a["new"]] for a in alerts],
                       "traits": dict(first["traits"]), "at": first["event_time"],
                       "pt": first["processing_time"], "late": first["late"],
                       "hist": first["historical"], "rv": first["rule_version"],
                       "v": first["v"]})
    return recent[-RECENT_MAX_ENTRIES:]


def _entry_write(entry: dict[str, Any]) -> int:
    """The write version of a remembered entry (0 for entries written before versions)."""
    return int(entry.get("w") or 0)


def resend(seg: SegState | None, cause: str, user_id: str) -> list[dict[str, Any]]:
    """Alerts already decided for ``cause`` or by the record ``cause`` (to re-send after a
    redelivery of that record) for the customer ``user_id``, in decision order, else []."""
    out: list[dict[str, Any]] = []
    for entry in (seg or {}).get("recent") or []:
        if isinstance(entry, dict) and cause in (entry.get("cause"), entry.get("by")):
            if "moves" in entry:
                out.extend(remembered_alerts(entry, user_id))
            else:  # written before entries were compact
                out.extend(entry.get("alerts", []))
    return out


def remembered_alerts(entry: dict[str, Any], user_id: str) -> list[dict[str, Any]]:
    """The alerts of a remembered evaluation, as :func:`decide` made them."""
    return [
        {"v": entry["v"],
         "alert_id": alert_id(user_id, group, old, new, entry["cause"], entry["rv"]),
         "user_id": user_id, "group": group, "old": old, "new": new,
         "rule_version": entry["rv"], "traits": dict(entry["traits"]),
         "cause": entry["cause"], "event_time": entry["at"], "processing_time": entry["pt"],
         "late": entry["late"], "historical": entry["hist"]}
        for group, old, new in entry["moves"]
    ]


def next_deadline_of(seg: SegState | None) -> datetime | None:
    """The stored next deadline of ``seg`` (None: none, or a value written before it was
    stored; the caller then evaluates to find it)."""
    if not seg or not seg.get("next_deadline"):
        return None
    return _read_iso(seg["next_deadline"])
