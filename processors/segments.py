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
import operator
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from custpulse.schemas.segments import (
    TIME_FIELDS,
    AllOf,
    AnyOf,
    Condition,
    Criteria,
    Persisted,
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
    The library is compiled once (per library object) into one Python function
    (:func:`_generate`: the same decisions as :func:`evaluate_interpreted`, the reference
    the tests hold it to, without a call per condition).
    """
    _require_aware(as_of)
    hist = _history(history)
    segment, activity, rfm, tags, matched, values = _plan(library).evaluator(view, hist, as_of)
    return Evaluation(segment, activity, rfm, tags, _traits(matched, values, hist))


def evaluate_lazily(
    library: TagLibrary, view: dict[str, Any], history: dict[str, Any] | None = None,
    *, as_of: datetime,
) -> tuple[Evaluation, Callable[[], dict[str, Any]]]:
    """:func:`evaluate` with its traits left out (``traits`` is ``{}``) and a function that
    gives them, the same as :func:`evaluate`'s: an evaluation that moves nothing announces
    nothing and needs none (most time-only steps of a replay)."""
    _require_aware(as_of)
    hist = _history(history)
    segment, activity, rfm, tags, matched, values = _plan(library).evaluator(view, hist, as_of)
    return (Evaluation(segment, activity, rfm, tags, {}),
            lambda: _traits(matched, values, hist))


def evaluate_interpreted(
    library: TagLibrary, view: dict[str, Any], history: dict[str, Any] | None = None,
    *, as_of: datetime,
) -> Evaluation:
    """:func:`evaluate` by walking the compiled predicates (one call per condition): the
    reference semantics, kept for the tests that hold the generated evaluator to it."""
    _require_aware(as_of)
    plan = _plan(library)
    values = effective_view(view, as_of)
    hist = _history(history)
    matched: list[tuple[str | None, ...]] = []
    chosen = []
    for rules in plan.groups:
        rule = rules[-1]  # the catch-all by construction of the library
        for candidate in rules:
            if candidate[1] is None or candidate[1](values, hist, as_of):
                rule = candidate
                break
        rule_name, _, leaves = rule
        chosen.append(rule_name)
        if leaves is not None:
            matched.append(leaves)
    rfm: dict[str, Any] = {}
    for score_name, bands, default, first_leaves in plan.scores:
        rfm[score_name] = next((s for holds, s in bands if holds(values, hist, as_of)), default)
        if first_leaves is not None:
            matched.append(first_leaves)
    rfm["score"] = "".join(str(rfm[name]) for name, _, _, _ in plan.scores)
    tags = []
    for rule_name, holds, leaves in plan.tags:
        if holds(values, hist, as_of):
            tags.append(rule_name)
            matched.append(leaves)
    return Evaluation(chosen[0], chosen[1], rfm, tuple(tags), _traits(matched, values, hist))


def effective_view(view: dict[str, Any], as_of: datetime) -> dict[str, Any]:
    """``view`` with the time-derived days recomputed at ``as_of`` from their timestamps."""
    values = dict(view)
    for days_field, anchor_field in TIME_FIELDS.items():
        anchor = _view_time(view.get(anchor_field))
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
    plan = _plan(library)
    best: datetime | None = None
    for days_field, anchor_field in TIME_FIELDS.items():
        offsets = plan.offsets.get(days_field)
        if not offsets:
            continue
        anchor = _view_time(view.get(anchor_field))
        if anchor is None:
            days = view.get(days_field)
            if not _finite(days):
                continue
            anchor = _shift(as_of, -days)
            if anchor is None:
                continue
        if type(anchor.tzinfo) is not timezone:  # a zone with DST: wall-clock arithmetic
            for offset in offsets:
                at = _shift_td(anchor, offset)
                if at is not None and at > as_of and (best is None or at < best):
                    best = at
            continue
        # fixed offset: thresholds are sorted, the first strictly after as_of is the earliest
        for i in range(bisect_right(offsets, as_of - anchor), len(offsets)):
            try:
                at = anchor + offsets[i]
            except OverflowError:
                continue
            if best is None or at < best:
                best = at
            break
    hist = _history(history)
    if hist is not None:
        for segment, for_days in plan.persisted:
            if hist[0] == segment:
                at = _shift(hist[1], for_days)
                if at is not None and at > as_of and (best is None or at < best):
                    best = at
    return best


Predicate = Callable[[dict[str, Any], Any, datetime], bool]


@dataclass(frozen=True)
class _Plan:
    """A library compiled for evaluation: per exclusive group its rules as
    ``(name, predicate | None, trait leaves)``; per score ``(name, bands, default, trait
    leaves of the first band)``; the tag rules; for :func:`next_deadline` the sorted offsets
    (timedeltas, thresholds plus one microsecond where the op flips after) per time-derived
    field, and the ``persisted`` conditions as ``(segment, for_days)``. A trait leaf is a field
    name, or None for a persisted condition (history traits)."""

    groups: tuple[tuple[tuple[str, Predicate | None, tuple[str | None, ...] | None], ...], ...]
    scores: tuple[tuple[str, tuple[tuple[Predicate, int], ...], int,
                        tuple[str | None, ...] | None], ...]
    tags: tuple[tuple[str, Predicate, tuple[str | None, ...]], ...]
    offsets: dict[str, list[timedelta]]
    persisted: tuple[tuple[str, float], ...]
    windows: frozenset[tuple[str, int]]
    """The profile windows ``(kind, days)`` some condition reads (``frequency_30d`` ->
    ``("orders", 30)``, ``visits_7d`` -> ``("visits", 7)``)."""
    evaluator: Callable[..., Any]
    """The generated evaluation (see :func:`_generate`)."""


_PLANS: dict[int, tuple[TagLibrary, _Plan]] = {}


def _plan(library: TagLibrary) -> _Plan:
    """The compiled form of ``library``, made once per library object."""
    cached = _PLANS.get(id(library))
    if cached is None or cached[0] is not library:
        cached = _PLANS[id(library)] = (library, _compile_library(library))
    return cached[1]


def _compile_library(library: TagLibrary) -> _Plan:
    def leaves_of(criteria: Criteria) -> tuple[str | None, ...]:
        return tuple(leaf.field if isinstance(leaf, Condition) else None
                     for leaf in iter_leaves(criteria))

    groups = tuple(
        tuple((rule.name,
               None if rule.criteria is None else _compile(rule.criteria),
               None if rule.criteria is None else leaves_of(rule.criteria))
              for rule in library.groups[name].rules)
        for name in ("value", "activity"))
    scores = tuple(
        (score.name, tuple((_compile(cond), s) for cond, s in score.bands), score.default,
         leaves_of(score.bands[0][0]) if score.bands else None)
        for score in library.scores)
    tags = tuple((rule.name, _compile(rule.criteria), leaves_of(rule.criteria))
                 for rule in library.tags.rules if rule.criteria is not None)
    offsets: dict[str, set[timedelta]] = {}
    persisted = []
    for leaf in library.leaves():
        if isinstance(leaf, Persisted):
            persisted.append((leaf.segment, leaf.for_days))
            continue
        if leaf.field not in TIME_FIELDS:
            continue
        for x in leaf.value if isinstance(leaf.value, tuple) else (leaf.value,):
            if not _finite(x):
                continue
            try:
                at = timedelta(days=x)
            except (OverflowError, ValueError):
                continue
            found = offsets.setdefault(leaf.field, set())
            if leaf.op in _AT_THRESHOLD:
                found.add(at)
            if leaf.op in _AFTER_THRESHOLD:
                try:
                    found.add(at + _TICK)
                except OverflowError:
                    pass
    windows = set()
    for leaf in library.leaves():
        if isinstance(leaf, Condition):
            match = _WINDOW_FIELD.fullmatch(leaf.field)
            if match is not None:
                kind = "visits" if match.group(1) == "visits" else "orders"
                windows.add((kind, int(match.group(2))))
    return _Plan(groups, scores, tags, {f: sorted(v) for f, v in offsets.items()},
                 tuple(persisted), frozenset(windows), _generate(library))


_WINDOW_FIELD = re.compile(r"(frequency|monetary|visits)_(\d+)d")


def read_windows(library: TagLibrary) -> frozenset[tuple[str, int]]:
    """The profile windows the library's conditions read (see :class:`_Plan`): the others
    change no segment, tag or score when a bucket leaves them."""
    return _plan(library).windows


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
    "in": lambda actual, expected: actual in expected,
    "not_in": lambda actual, expected: actual not in expected,
}


def _compile(node: Criteria) -> Predicate:
    """``node`` as a predicate ``(values, history, as_of) -> bool``. A comparison with an
    unknown (None) value, or one that raises (TypeError, ValueError, ArithmeticError such as
    a Decimal against NaN), is False."""
    if isinstance(node, AllOf | AnyOf):
        items = tuple(_compile(item) for item in node.items)
        if isinstance(node, AllOf):
            def all_of(values: dict[str, Any], hist: Any, as_of: datetime) -> bool:
                for holds in items:
                    if not holds(values, hist, as_of):
                        return False
                return True
            return all_of

        def any_of(values: dict[str, Any], hist: Any, as_of: datetime) -> bool:
            for holds in items:
                if holds(values, hist, as_of):
                    return True
            return False
        return any_of
    if isinstance(node, Persisted):
        segment = node.segment
        try:
            least: timedelta | None = timedelta(days=node.for_days)
        except OverflowError:
            least = None

        def persisted(values: dict[str, Any], hist: Any, as_of: datetime) -> bool:
            if hist is None or hist[0] != segment or least is None:
                return False
            return as_of - hist[1] >= least
        return persisted
    name, op, expected = node.field, node.op, node.value
    if op in ("is_null", "not_null"):
        null = op == "is_null"
        return lambda values, hist, as_of: (values.get(name) is None) == null
    if op not in _COMPARE:
        return lambda values, hist, as_of: False
    compare = _slow_compare(op)

    def condition(values: dict[str, Any], hist: Any, as_of: datetime) -> bool:
        return compare(values.get(name), expected)
    return condition


_FAST_TYPES = (int, float)
"""Value types whose comparison with a number never raises: compared inline."""


def _slow_compare(op: str) -> Callable[[Any, Any], bool]:
    """The guarded comparison of ``op`` (both evaluators): an unknown (None) value, or one
    whose comparison raises, is False."""
    compare = _COMPARE[op]

    def slow(actual: Any, expected: Any) -> bool:
        if actual is None:
            return False
        try:
            return bool(compare(actual, expected))
        except (TypeError, ValueError, ArithmeticError):
            return False
    return slow


def _generate(library: TagLibrary) -> Callable[..., Any]:
    """The library as one Python function ``(view, history, as_of) -> (segment, activity
    segment, rfm, tags, matched trait leaves, values read)``, generated from the parsed
    library (names and constants are passed in, never written into the source: nothing of
    the YAML is evaluated as code).

    Each field is read once (time-derived days recomputed from their timestamp at ``as_of``,
    as :func:`effective_view` does); a comparison of a number (int or float) with a number is
    inline, any other goes through the same guarded comparison as the reference (None,
    TypeError, ValueError and ArithmeticError make it False); ``all``/``any`` are Python's
    ``and``/``or`` (the conditions have no effects, so short-circuiting changes no result)."""
    ns: dict[str, Any] = {"_view_time": _view_time, "_FAST": _FAST_TYPES}
    fields: dict[str, str] = {}  # field name -> local variable
    lines: list[str] = []

    def const(value: Any) -> str:
        name = f"k{len(ns)}"
        ns[name] = value
        return name

    def var(field_name: str) -> str:
        if field_name not in fields:
            fields[field_name] = f"f{len(fields)}"
        return fields[field_name]

    def expr(node: Criteria) -> str:
        if isinstance(node, AllOf | AnyOf):
            if not node.items:
                return "True" if isinstance(node, AllOf) else "False"
            joiner = " and " if isinstance(node, AllOf) else " or "
            return "(" + joiner.join(expr(item) for item in node.items) + ")"
        if isinstance(node, Persisted):
            try:
                least = timedelta(days=node.for_days)
            except OverflowError:
                return "False"
            return (f"(hist is not None and hist[0] == {const(node.segment)} "
                    f"and as_of - hist[1] >= {const(least)})")
        v = var(node.field)
        if node.op in ("is_null", "not_null"):
            return f"({v} is None)" if node.op == "is_null" else f"({v} is not None)"
        if node.op not in _COMPARE:
            return "False"
        slow = const(_slow_compare(node.op))
        x = const(node.value)
        if node.op in ("<", "<=", ">", ">=", "==", "!=") and _finite(node.value):
            return f"({v} {node.op} {x} if type({v}) in _FAST else {slow}({v}, {x}))"
        return f"{slow}({v}, {x})"

    body: list[str] = []
    for index, name in enumerate(("value", "activity")):
        rules = library.groups[name].rules
        out = "segment" if index == 0 else "activity"
        first = True
        for rule in rules:
            leaves = None if rule.criteria is None else _leaves_of(rule.criteria)
            done = (f"{out} = {const(rule.name)}"
                    + ("" if leaves is None else f"; matched.append({const(leaves)})"))
            if rule.criteria is None:
                body.append(("    else:\n        " if not first else "    ") + done)
                break
            body.append(f"    {'if' if first else 'elif'} {expr(rule.criteria)}:")
            body.append(f"        {done}")
            first = False
        else:  # no catch-all (the loader requires one): the last rule, as the reference does
            last = rules[-1]
            leaves = None if last.criteria is None else _leaves_of(last.criteria)
            body.append(f"    else:\n        {out} = {const(last.name)}"
                        + ("" if leaves is None else f"; matched.append({const(leaves)})"))
    score_names = []
    for score in library.scores:
        target = f"s_{len(score_names)}"
        score_names.append((score.name, target))
        first = True
        for condition, value in score.bands:
            body.append(f"    {'if' if first else 'elif'} {expr(condition)}:")
            body.append(f"        {target} = {const(value)}")
            first = False
        body.append(("    else:\n        " if not first else "    ")
                    + f"{target} = {const(score.default)}")
        if score.bands:
            body.append(f"    matched.append({const(_leaves_of(score.bands[0][0]))})")
    rfm_items = ", ".join(f"{const(n)}: {t}" for n, t in score_names)
    score_text = " + ".join(f"str({t})" for _, t in score_names) or "''"
    body.append(f"    rfm = {{{rfm_items}}}")
    body.append(f"    rfm['score'] = {score_text}")
    body.append("    tags = []")
    for rule in library.tags.rules:
        if rule.criteria is None:
            continue
        body.append(f"    if {expr(rule.criteria)}:")
        body.append(f"        tags.append({const(rule.name)}); "
                    f"matched.append({const(_leaves_of(rule.criteria))})")
    lines.append("def evaluator(view, hist, as_of):")
    lines.append("    get = view.get")
    for field_name, v in fields.items():
        anchor = TIME_FIELDS.get(field_name)
        if anchor is None:
            lines.append(f"    {v} = get({const(field_name)})")
        else:
            a = f"a{v}"
            lines.append(f"    {a} = _view_time(get({const(anchor)}))")
            lines.append(f"    {v} = get({const(field_name)}) if {a} is None "
                         f"else (as_of - {a}).total_seconds() / 86400")
    lines.append("    matched = []")
    lines.extend(body)
    values = ", ".join(f"{const(f)}: {v}" for f, v in fields.items())
    lines.append(f"    return segment, activity, rfm, tuple(tags), matched, {{{values}}}")
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<tag library v{library.version}>", "exec"), ns)  # noqa: S102
    evaluator = ns["evaluator"]
    evaluator.source = source  # for the curious and the tests
    return evaluator


def _leaves_of(criteria: Criteria) -> tuple[str | None, ...]:
    return tuple(leaf.field if isinstance(leaf, Condition) else None
                 for leaf in iter_leaves(criteria))


@lru_cache(maxsize=8192)
def _parse_text_time(text: str) -> datetime | None:
    return parse_time(text, UTC)


def _view_time(value: Any) -> datetime | None:
    """A view timestamp (ISO text as the view writes it, or a datetime) as aware UTC; naive
    means UTC. Text is parsed once per distinct string (pure, cached)."""
    if isinstance(value, str):
        return _parse_text_time(value)
    if value is None:
        return None
    if type(value) is datetime and value.tzinfo is not None:
        return value
    return parse_time(value, UTC)


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


def _shift_td(moment: datetime, delta: timedelta) -> datetime | None:
    try:
        return moment + delta
    except OverflowError:
        return None


def _history(history: dict[str, Any] | None) -> tuple[str, datetime] | None:
    if not isinstance(history, dict) or not isinstance(history.get("segment"), str):
        return None
    since = history.get("since")
    if type(since) is not datetime or since.tzinfo is None:
        since = parse_time(since, UTC)
    return None if since is None else (history["segment"], since)


def _traits(matched: list[tuple[str | None, ...]], values: dict[str, Any],
            hist: Any) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for leaves in matched:
        for name in leaves:
            if name is not None:
                traits[name] = _jsonable(values.get(name))
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
