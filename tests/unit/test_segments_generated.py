"""The generated evaluator (``segments._generate``) against the reference walk of predicates
(``evaluate_interpreted``): the same segments, scores, tags and traits for any view (hostile
value types included), any history and any library (random criteria trees, every op)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custpulse.processors.segments import _plan, evaluate, evaluate_interpreted, evaluate_lazily
from custpulse.schemas.segments import (
    PROFILE_FIELDS,
    TIME_FIELDS,
    AllOf,
    AnyOf,
    Condition,
    Persisted,
    Rule,
    ScoreSpec,
    TagGroup,
    TagLibrary,
    load_library,
)

LIB = load_library()
SEGMENTS = ["high_value", "potential", "regular", "churned", "low_value"]
ANCHORS = set(TIME_FIELDS.values())

_moment = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-10**15, 10**15),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["enterprise", "personal", "30", "", "NaN"]),
    st.sampled_from([0, 1, 2, 3, 5, 7, 10, 20, 30, 90, 180, 365, 1000, 5000, 50000, 100000,
                     0.3, 2.0, 30.0, 90.000001]),  # the shipped thresholds, exactly
    st.lists(st.integers(0, 3), max_size=2), st.decimals(allow_nan=False, places=2,
                                                           min_value=-1000, max_value=1000))
_anchor_value = st.one_of(st.none(), _moment, _moment.map(lambda m: m.isoformat()),
                          st.text(max_size=5), st.integers(0, 100))


@st.composite
def _views(draw):
    view = {}
    for name in PROFILE_FIELDS:
        view[name] = draw(_anchor_value if name in ANCHORS else _scalar)
    return view


_history = st.one_of(st.none(), st.fixed_dictionaries({
    "segment": st.sampled_from(SEGMENTS), "since": _moment}))
_fields = st.sampled_from(sorted(PROFILE_FIELDS))
_ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null",
                        "not_null"])
_expected = st.one_of(st.integers(-5, 400), st.sampled_from([0, 1, 2, 3, 5, 7, 10, 30]), st.floats(-10, 1e6), st.just(math.nan),
                      st.sampled_from(["enterprise", "APP", "30"]),
                      st.tuples(st.integers(0, 3), st.sampled_from(["enterprise", "x"])),
                      st.booleans())


def _leaf():
    conditions = st.builds(Condition, _fields, _ops, _expected)
    persisted = st.builds(Persisted, st.sampled_from(SEGMENTS),
                          st.one_of(st.floats(0, 400), st.just(1e300)))
    return st.one_of(conditions, conditions, persisted)


_criteria = st.recursive(
    _leaf(), lambda inner: st.one_of(
        st.builds(AllOf, st.lists(inner, max_size=3).map(tuple)),
        st.builds(AnyOf, st.lists(inner, max_size=3).map(tuple))), max_leaves=8)


@st.composite
def _libraries(draw):
    def group(name, exclusive):
        n = draw(st.integers(1, 4))
        rules = [Rule(f"{name}{i}", "d", draw(_criteria)) for i in range(n)]
        if exclusive and draw(st.booleans()):
            rules.append(Rule(f"{name}_rest", "d", None))
        return TagGroup(name, "d", "d", "c", tuple(rules), exclusive)

    scores = tuple(
        ScoreSpec(name, "x", "d", "d", "c",
                  tuple((draw(st.builds(Condition, _fields, _ops, _expected)), s)
                        for s in range(draw(st.integers(0, 3)), 0, -1)),
                  draw(st.integers(0, 1)))
        for name in ("r", "f", "m")[:draw(st.integers(0, 3))])
    return TagLibrary(draw(st.integers(1, 9)),
                      {"value": group("v", True), "activity": group("a", True)},
                      scores, group("t", False))


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (a trait may hold the NaN the view held)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _check(library, view, history, as_of):
    fast = evaluate(library, view, history, as_of=as_of)
    slow = evaluate_interpreted(library, view, history, as_of=as_of)
    assert (fast.segment, fast.activity_segment, fast.rfm, fast.tags) == (
        slow.segment, slow.activity_segment, slow.rfm, slow.tags)
    assert _same(fast.traits, slow.traits), (fast.traits, slow.traits)
    lazy, traits_of = evaluate_lazily(library, view, history, as_of=as_of)
    assert (lazy.segment, lazy.activity_segment, lazy.rfm, lazy.tags, lazy.traits) == (
        fast.segment, fast.activity_segment, fast.rfm, fast.tags, {})
    assert _same(traits_of(), fast.traits)


@settings(max_examples=400, deadline=None)
@given(view=_views(), history=_history, as_of=_moment)
def test_generated_equals_reference_on_the_shipped_library(view, history, as_of):
    _check(LIB, view, history, as_of)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(library=_libraries(), views=st.lists(_views(), min_size=1, max_size=4),
       history=_history, as_of=_moment)
def test_generated_equals_reference_on_any_library(library, views, history, as_of):
    for view in views:
        _check(library, view, history, as_of)


def test_the_boundaries_of_the_shipped_library():
    """Exactly at a threshold, one microsecond past it, and with the days only in the view."""
    now = datetime(2026, 6, 30, 12, tzinfo=UTC)
    base = dict.fromkeys(PROFILE_FIELDS)
    for days in (7, 30, 90, 180):
        for delta in (timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)):
            view = dict(base, last_order_at=now - timedelta(days=days) - delta,
                        frequency_365d=2, monetary_365d=60000.0, avg_order_value=1000,
                        last_seen_at=(now - timedelta(days=days) - delta).isoformat())
            _check(LIB, view, {"segment": "potential", "since": now - timedelta(days=90)}, now)
            _check(LIB, dict(view, last_order_at=None, recency_days=days), None, now)


def test_nothing_of_the_yaml_is_code():
    """Names and constants reach the generated function as bound names, not as source text."""
    hostile = "x') or __import__('os').system('false') or ('"
    library = TagLibrary(1, {
        "value": TagGroup("value", "d", "d", "c", (
            Rule(hostile, "d", Condition("customer_type", "==", hostile)),
            Rule("rest", "d", None))),
        "activity": TagGroup("activity", "d", "d", "c", (Rule("rest", "d", None),))},
        (), TagGroup("tags", "d", "d", "c", (), False))
    source = _plan(library).evaluator.source
    assert hostile not in source and "__import__" not in source
    view = dict.fromkeys(PROFILE_FIELDS)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert evaluate(library, dict(view, customer_type=hostile), as_of=at).segment == hostile
    assert evaluate(library, view, as_of=at).segment == "rest"


_THRESHOLDS = [0, 1, 2, 3, 5, 7, 10, 20, 30, 90, 180, 365, 1000, 5000, 20000, 50000, 100000,
               0.3, 30.0, 30.000001, 29.999999]


@settings(max_examples=300, deadline=None)
@given(values=st.fixed_dictionaries({
    name: st.one_of(st.none(), st.sampled_from(_THRESHOLDS)) for name in PROFILE_FIELDS
    if name not in ANCHORS}), history=_history, as_of=_moment)
def test_generated_equals_reference_at_the_thresholds(values, history, as_of):
    """Numeric fields exactly at (or a hair from) the shipped thresholds, days given in the
    view (no timestamps): where an off-by-one in a generated comparison would show."""
    _check(LIB, dict(values, **dict.fromkeys(ANCHORS)), history, as_of)
