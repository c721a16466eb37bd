"""One customer's re-evaluation: profile view -> segments -> alerts -> next deadline. Pure.

The segment state kept next to the profile (JSON-ready)::

    {"segment": "potential", "since": "<iso>", "activity_segment": "active",
     "rfm": {...}, "tags": [...], "rule_version": 1,
     "evaluated_at": "<iso>",                          # as_of of the last evaluation
     "recent": [{"cause": "<event id | timer:...>", "alerts": [...]}, ...]}

``recent`` keeps the alerts of the last :data:`RECENT_CAUSES` evaluations that produced any,
so that a redelivered cause (after a crash between the state write and the alert send)
re-sends the same alerts with the same ids instead of losing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from custpulse.processors.alerts import segment_alert
from custpulse.processors.profile import next_window_change, profile_view
from custpulse.processors.segments import Evaluation, evaluate, next_deadline, transition
from custpulse.schemas.segments import TagLibrary
from custpulse.schemas.times import parse_time, to_iso

SegState = dict[str, Any]
RECENT_CAUSES = 50
"""Causes whose alerts are remembered for re-sending: more than one commit interval's worth
of alert-producing evaluations of one customer."""


@dataclass(frozen=True)
class Decision:
    seg: SegState
    view: dict[str, Any]
    alerts: list[dict[str, Any]]
    deadline: datetime | None
    changed: bool


def evaluated_at(seg: SegState | None) -> datetime | None:
    if not seg:
        return None
    return parse_time(seg.get("evaluated_at"), UTC)  # type: ignore[arg-type]


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
) -> Decision:
    """Evaluate ``profile`` as of ``as_of``; compare with ``seg``; build alerts for each move.

    ``as_of`` must not be before ``seg``'s ``evaluated_at`` (callers keep it monotone).
    """
    view = profile_view(profile, as_of)
    history = None
    if seg and seg.get("segment"):
        history = {"segment": seg["segment"], "since": parse_time(seg["since"], UTC)}
    new = evaluate(library, view, history, as_of=as_of)
    old = None
    if seg and seg.get("segment"):
        old = Evaluation(seg["segment"], seg["activity_segment"], seg.get("rfm", {}),
                         tuple(seg.get("tags", ())), {})
    moves = transition(old, new)
    alerts = [
        segment_alert(user_id=user_id, group=group, old=before, new=after,
                      rule_version=library.version, traits=new.traits, cause=cause,
                      event_time=event_time, processing_time=processing_time, late=late)
        for group, before, after in moves
    ]
    since = as_of if old is None or old.segment != new.segment else parse_time(seg["since"], UTC)
    activity_since = (
        as_of if old is None or old.activity_segment != new.activity_segment
        else parse_time(seg.get("activity_since"), UTC) or as_of
    )
    new_seg: SegState = {
        "segment": new.segment,
        "since": to_iso(since),
        "activity_segment": new.activity_segment,
        "activity_since": to_iso(activity_since),
        "rfm": new.rfm,
        "tags": list(new.tags),
        "rule_version": library.version,
        "evaluated_at": to_iso(as_of),
        "recent": _remember(seg, cause, alerts),
    }
    history_after = {"segment": new.segment, "since": since}
    candidates = [
        next_window_change(profile, as_of),
        next_deadline(library, view, history_after, as_of=as_of),
    ]
    due = [c for c in candidates if c is not None and c > as_of]
    view = dict(view, segment=new.segment, activity_segment=new.activity_segment,
                rfm_score=new.rfm.get("score"), tags=list(new.tags),
                rule_version=library.version, segment_since=to_iso(since))
    return Decision(new_seg, view, alerts, min(due) if due else None, bool(moves))


def _remember(seg: SegState | None, cause: str, alerts: list[dict[str, Any]]) -> list[Any]:
    recent = [r for r in (seg or {}).get("recent") or [] if isinstance(r, dict)]
    if alerts:
        recent = [r for r in recent if r.get("cause") != cause]
        recent.append({"cause": cause, "alerts": alerts})
    return recent[-RECENT_CAUSES:]


def resend(seg: SegState | None, cause: str) -> list[dict[str, Any]]:
    """Alerts already decided for ``cause`` (to re-send after a redelivery), else []."""
    for entry in (seg or {}).get("recent") or []:
        if isinstance(entry, dict) and entry.get("cause") == cause:
            return list(entry.get("alerts", []))
    return []
