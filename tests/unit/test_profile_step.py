"""``view_step`` (the view of an unchanged profile at a later time, from its earlier view) gives
what ``view_and_changes`` gives, for any history, any pair of times and any windows read,
tickets retired in between or not (hypothesis): the time-only steps of a replay take it."""

from __future__ import annotations

import copy
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.profile import (
    WINDOWS,
    retire_tickets,
    view_and_changes,
    view_step,
)
from tests.unit.test_profile_exact import _events, _record, fold

_later = st.one_of(
    st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(hours=1),
                     timedelta(days=7), timedelta(days=30, hours=1), timedelta(days=90),
                     timedelta(days=365, microseconds=1), timedelta(days=800)]),
    st.integers(0, 900 * 86_400_000_000).map(lambda us: timedelta(microseconds=us)),
)
_windows = st.one_of(st.none(), st.frozensets(st.sampled_from(WINDOWS)))


@settings(max_examples=400, deadline=None)
@given(records=st.lists(_record, min_size=1, max_size=25), first=_later, second=_later,
       third=_later, windows=_windows, retire=st.booleans())
def test_step_equals_full_view(records, first, second, third, windows, retire):
    events = _events(records)
    state = fold(events)
    t0 = max(e.event_time for e in events) + first
    base, _, _ = view_and_changes(state, t0, windows)
    for t in (t0 + second, t0 + second + third):
        if retire:
            state = copy.deepcopy(state)
            retire_tickets(state, t)
        expected = view_and_changes(state, t, windows)
        got = view_step(base, state, t, windows)
        assert got == expected
        assert list(got[0]) == list(expected[0])  # key order too
        base = got[0]
