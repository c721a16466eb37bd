"""Segment evaluation: a pure function of (tag library, profile view, segment history, as_of).

No I/O, no clock: ``as_of`` (aware datetime) is the caller's watermark.

Units and time semantics
------------------------
* The view is the flat dict of :func:`custpulse.processors.profile.profile_view` (fields in
  :data:`~custpulse.schemas.segments.PROFILE_FIELDS`; None when unknown). Amounts in CNY,
  ``return_rate`` 0..1, ``visits_*`` active hours in the window, timestamps aware datetimes or
  ISO 8601 strings (read with :func:`~custpulse.schemas.times.parse_time`, naive = UTC).
* Days are real-valued: ``recency_days = (as_of - last_order_at).total_seconds() / 86400``,
  likewise ``inactive_days`` from ``last_seen_at`` and ``days_since_register`` from
  ``register_date``. When the timestamp is in the view these three are recomputed from it at
  ``as_of`` (exact, unrounded); otherwise the view's value is used as given. So ``<= 30`` holds
  up to and including ``last_order_at + 30 days`` and fails from one microsecond later.
* ``history`` is ``{"segment": <current value segment>, "since": <aware datetime>}``; a
  ``persisted`` condition holds when ``history["segment"]`` is its segment and
  ``as_of - since >= for_days`` days.

>>> from datetime import UTC, datetime, timedelta
>>> from custpulse.schemas.segments import load_library
>>> now = datetime(2026, 1, 31, tzinfo=UTC)
>>> view = {"last_order_at": now - timedelta(days=10), "frequency_365d": 12,
...         "monetary_365d": 60000.0, "last_seen_at": now - timedelta(days=1), "visits_7d": 4}
>>> result = evaluate(load_library(), view, as_of=now)
>>> result.segment, result.activity_segment, result.rfm["score"], result.tags
('high_value', 'active', '445', ())
>>> next_deadline(load_library(), view, as_of=now).isoformat()
'2026-02-20T00:00:00.000001+00:00'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from custpulse.schemas.segments import (
    TIME_FIELDS,
    AllOf,
    AnyOf,
    Condition,
    Criteria,
    Persisted,
    Rule,
    TagGroup,
    TagLibrary,
    iter_leaves,
)
from custpulse.schemas.times import parse_time, to_iso

_TICK = timedelta(microseconds=1)
_AT_THRESHOLD = ("<", ">=", "==", "!=", "in", "not_in")
"""Ops whose truth changes exactly when the field reaches the threshold."""
_AFTER_THRESHOLD = (">", "<=", "==", "!=", "in", "not_in")
"""Ops whose truth changes one microsecond after the field reaches the threshold."""


@dataclass(frozen=True)
class Evaluation:
    """One customer's segments as of a moment.

    ``rfm`` maps each score name (``r``, ``f``, ``m``) to its 1-5 score and ``"score"`` to the
    digits joined (``"545"``). ``traits`` holds the view values the matched rules, the scores
    and the tags that are on looked at (time-derived days as used; datetimes as ISO strings),
    plus ``history_segment``/``history_since`` when a matched rule reads the history.
    """

    segment: str
    activity_segment: str
    rfm: dict[str, Any]
    tags: tuple[str, ...]
    traits: dict[str, Any]


def evaluate(
    library: TagLibrary, view: dict[str, Any], history: dict[str, Any] | None = None,
    *, as_of: datetime,
) -> Evaluation:
    """Evaluate every group, score and tag of ``library`` for ``view`` as of ``as_of``.

    Never raises on view values: a value that cannot be compared makes its condition False.
    """
    _require_aware(as_of)
    values = effective_view(view, as_of)
    hist = _history(history)
    matched: list[Criteria] = []
    chosen = []
    for name in ("value", "activity"):
        rule = _first(library.groups[name], values, hist, as_of)
        chosen.append(rule.name)
        if rule.criteria is not None:
            matched.append(rule.criteria)
    rfm: dict[str, Any] = {}
    for score in library.scores:
        rfm[score.name] = next((s for cond, s in score.bands if _compare(cond, values)),
                               score.default)
        matched.extend(cond for cond, _ in score.bands[:1])
    rfm["score"] = "".join(str(rfm[score.name]) for score in library.scores)
    tags = []
    for rule in library.tags.rules:
        if rule.criteria is not None and _holds(rule.criteria, values, hist, as_of):
            tags.append(rule.name)
            matched.append(rule.criteria)
    return Evaluation(chosen[0], chosen[1], rfm, tuple(tags), _traits(matched, values, hist))


def effective_view(view: dict[str, Any], as_of: datetime) -> dict[str, Any]:
    """``view`` with the time-derived days recomputed at ``as_of`` from their timestamps."""
    values = dict(view)
    for days_field, anchor_field in TIME_FIELDS.items():
        anchor = parse_time(view.get(anchor_field), UTC)
        if anchor is not None:
            values[days_field] = (as_of - anchor).total_seconds() / 86400
    return values


def next_deadline(
    library: TagLibrary, view: dict[str, Any], history: dict[str, Any] | None = None,
    *, as_of: datetime,
) -> datetime | None:
    """The earliest time strictly after ``as_of`` at which time alone could change the result.

    Only the time-derived fields (``recency_days``, ``inactive_days``,
    ``days_since_register``) and ``persisted`` conditions are considered; every leaf on them
    with a numeric threshold X flips at ``timestamp + X days`` (ops ``>=``, ``<``) or one
    microsecond later (``>``, ``<=``); ``==``/``!=``/``in``/``not_in`` at both. Without the
    timestamp the anchor is ``as_of - <days in the view>``. Windowed values
    (``frequency_30d``, ``visits_7d``, ...) also change with time: their deadlines come from
    :func:`custpulse.processors.profile.next_window_change`, not from here. None when nothing
    changes by time alone.
    """
    _require_aware(as_of)
    anchors = {}
    for days_field, anchor_field in TIME_FIELDS.items():
        anchor = parse_time(view.get(anchor_field), UTC)
        days = view.get(days_field)
        if anchor is None and _finite(days):
            anchor = _shift(as_of, -days)
        anchors[days_field] = anchor
    hist = _history(history)
    candidates: list[datetime | None] = []
    for leaf in _time_leaves(library):
        if isinstance(leaf, Persisted):
            if hist is not None and hist[0] == leaf.segment:
                candidates.append(_shift(hist[1], leaf.for_days))
        elif anchors.get(leaf.field) is not None:
            for x in leaf.value if isinstance(leaf.value, tuple) else (leaf.value,):
                if not _finite(x):
                    continue
                at = _shift(anchors[leaf.field], x)
                if leaf.op in _AT_THRESHOLD:
                    candidates.append(at)
                if leaf.op in _AFTER_THRESHOLD and at is not None:
                    candidates.append(at + _TICK)
    later = [c for c in candidates if c is not None and c > as_of]
    return min(later) if later else None


_TIME_LEAVES: dict[int, tuple[TagLibrary, tuple[Condition | Persisted, ...]]] = {}


def _time_leaves(library: TagLibrary) -> tuple[Condition | Persisted, ...]:
    """The leaves time alone can flip (persistence and time-derived fields), computed once
    per library object."""
    cached = _TIME_LEAVES.get(id(library))
    if cached is None or cached[0] is not library:
        leaves = tuple(leaf for leaf in library.leaves()
                       if isinstance(leaf, Persisted) or leaf.field in TIME_FIELDS)
        cached = _TIME_LEAVES[id(library)] = (library, leaves)
    return cached[1]


def transition(old: Evaluation | None, new: Evaluation) -> list[tuple[str, str | None, str]]:
    """What changed from ``old`` to ``new``: ``(group, old, new)`` for the value segment
    (``"value"``), the activity segment (``"activity"``) and each tag switched on or off
    (``"tag:<name>"``, ``"on"``/``"off"``). With no ``old`` (first evaluation) the old side is
    None and only tags that are on are listed. Order: value, activity, tags by name."""
    out: list[tuple[str, str | None, str]] = []
    for group, attr in (("value", "segment"), ("activity", "activity_segment")):
        before = None if old is None else getattr(old, attr)
        if before != getattr(new, attr):
            out.append((group, before, getattr(new, attr)))
    before_tags = set() if old is None else set(old.tags)
    for name in sorted(before_tags | set(new.tags)):
        if name in new.tags and name not in before_tags:
            out.append((f"tag:{name}", None if old is None else "off", "on"))
        elif name not in new.tags:
            out.append((f"tag:{name}", "on", "off"))
    return out


def _require_aware(as_of: datetime) -> None:
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise ValueError("as_of must be an aware datetime")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shift(moment: datetime, days: float) -> datetime | None:
    try:
        return moment + timedelta(days=days)
    except (OverflowError, ValueError):
        return None


def _history(history: dict[str, Any] | None) -> tuple[str, datetime] | None:
    if not isinstance(history, dict) or not isinstance(history.get("segment"), str):
        return None
    since = parse_time(history.get("since"), UTC)
    return None if since is None else (history["segment"], since)


def _first(group: TagGroup, values: dict[str, Any], hist: Any, as_of: datetime) -> Rule:
    for rule in group.rules:
        if rule.criteria is None or _holds(rule.criteria, values, hist, as_of):
            return rule
    return group.rules[-1]  # the catch-all by construction of the library


def _holds(node: Criteria, values: dict[str, Any], hist: Any, as_of: datetime) -> bool:
    if isinstance(node, AllOf):
        return all(_holds(item, values, hist, as_of) for item in node.items)
    if isinstance(node, AnyOf):
        return any(_holds(item, values, hist, as_of) for item in node.items)
    if isinstance(node, Persisted):
        if hist is None or hist[0] != node.segment:
            return False
        try:
            return as_of - hist[1] >= timedelta(days=node.for_days)
        except OverflowError:
            return False
    return _compare(node, values)


def _compare(cond: Condition, values: dict[str, Any]) -> bool:
    actual = values.get(cond.field)
    if cond.op in ("is_null", "not_null"):
        return (actual is None) == (cond.op == "is_null")
    if actual is None:
        return False
    expected = cond.value
    try:
        match cond.op:
            case "<":
                return bool(actual < expected)
            case "<=":
                return bool(actual <= expected)
            case ">":
                return bool(actual > expected)
            case ">=":
                return bool(actual >= expected)
            case "==":
                return bool(actual == expected)
            case "!=":
                return bool(actual != expected)
            case "in":
                return actual in expected
            case "not_in":
                return actual not in expected
    except (TypeError, ValueError):
        return False
    return False


def _traits(matched: list[Criteria], values: dict[str, Any], hist: Any) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for criteria in matched:
        for leaf in iter_leaves(criteria):
            if isinstance(leaf, Condition):
                traits[leaf.field] = _jsonable(values.get(leaf.field))
            elif hist is not None:
                traits["history_segment"] = hist[0]
                traits["history_since"] = to_iso(hist[1])
    return traits


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_iso(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item) for item in value]
    return value
