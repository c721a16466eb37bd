"""``view_step`` (the view of an unchanged profile at a later time, from its earlier view) gives
what ``view_and_changes`` gives, for any history, any pair of times and any windows read,
tickets retired in between or not (hypothesis): the time-only steps of a replay take it."""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.profile import (
    _EPOCH,
    _MICROSECOND,
    _V7,
    _V30,
    _W30,
    _W90,
    _W365,
    CHANNEL_WINDOW_DAYS,
    MASTER_FIELDS,
    RESOLUTION_S,
    WINDOWS,
    ProfileState,
    _current,
    _days,
    _dt,
    _is_complaint,
    _iso,
    _latest_step,
    _ms,
    _register_time,
    _round,
    _service_view,
    new_profile,
    retire_tickets,
    view_and_changes,
    view_step,
)
from custpulse.schemas.times import to_iso
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
        expected = _reference_view_and_changes(state, t, windows)
        for got in (view_and_changes(state, t, windows), view_step(base, state, t, windows)):
            assert got == expected
            assert list(got[0]) == list(expected[0])  # key order too
        base = got[0]


# The full view as computed in one pass before view_step existed (commit 424a1da, unchanged):
# the reference both paths are held to.


def _reference_view_and_changes(
    s: ProfileState | None, as_of: datetime, windows: frozenset[tuple[str, int]] | None
) -> tuple[dict[str, Any], datetime | None, datetime | None]:
    """``(view, next window change, next change of the given windows)``: the last counts
    only ``windows`` (a subset of :data:`WINDOWS`; None: all) and complaint closings."""
    state = _current(s, in_place=False) if s is not None else new_profile()
    orders, act, funnel, service, master = (
        state["orders"], state["activity"], state["funnel"], state["service"], state["master"])
    # Window edges as hour indexes (exact integers): bucket h is inside the window of N days
    # when h > floor_N, and leaves it when floor_N reaches h, at h * 1 h + N days.
    start = math.floor(as_of.timestamp() / RESOLUTION_S) * RESOLUTION_S  # window_start(as_of)
    now_ms = _ms(as_of)
    f30 = (start - 30 * 86400) // RESOLUTION_S  # the windows of ORDER_WINDOWS_DAYS, inline
    f90 = (start - 90 * 86400) // RESOLUTION_S
    f365 = (start - 365 * 86400) // RESOLUTION_S
    c30 = c90 = c365 = m30 = m90 = m365 = 0
    low30 = low90 = low365 = None
    for key, (count, money) in orders["buckets"].items():
        h = int(key)
        if h > f365:
            c365 += count
            m365 += money
            if low365 is None or h < low365:
                low365 = h
            if h > f90:
                c90 += count
                m90 += money
                if low90 is None or h < low90:
                    low90 = h
                if h > f30:
                    c30 += count
                    m30 += money
                    if low30 is None or h < low30:
                        low30 = h
    v7 = (start - 7 * 86400) // RESOLUTION_S  # VISIT_WINDOWS_DAYS
    v30 = (start - 30 * 86400) // RESOLUTION_S
    n7 = n30 = 0
    low7 = lowv30 = None
    for key in act["hours"]:
        h = int(key)
        if h > v30:
            n30 += 1
            if lowv30 is None or h < lowv30:
                lowv30 = h
            if h > v7:
                n7 += 1
                if low7 is None or h < low7:
                    low7 = h
    view: dict[str, Any] = {"as_of": to_iso(as_of)}
    n, priced = orders["n"], orders["priced"]
    view.update(
        orders_total=n, monetary_total=orders["cents"] / 100,
        first_order_at=_iso(orders["first"]), last_order_at=_iso(orders["last"]),
        # mean of the observed amounts, rounded half-up to the cent (exact integers)
        avg_order_value=((2 * orders["cents"] + priced) // (2 * priced)) / 100 if priced else None,
        mean_interpurchase_days=(
            round((orders["last"] - orders["first"]) / 86_400_000 / (n - 1), 6) if n > 1 else None
        ),
        returns_total=orders["returns"], refunds_total=orders["refunds"],
        return_rate=round((orders["returns"] + orders["refunds"]) / n, 6) if n else None,
        recency_days=_round(_days(as_of, orders["last"])),
        frequency_30d=c30, monetary_30d=m30 / 100,
        frequency_90d=c90, monetary_90d=m90 / 100,
        frequency_365d=c365, monetary_365d=m365 / 100,
    )
    view["last_seen_at"] = _iso(act["last"])
    view["inactive_days"] = _round(_days(as_of, act["last"]))
    view["visits_7d"] = n7
    view["visits_30d"] = n30
    channel_floor = (start - CHANNEL_WINDOW_DAYS * 86400) * 1000
    view["active_channels"] = sorted(c for c, t in act["channels"].items() if t > channel_floor)
    view.update(
        funnel_browse=funnel["browse"], funnel_add_to_cart=funnel["add_to_cart"],
        funnel_order=1 if n else 0, funnel_repurchase=max(0, n - 1),
        funnel_latest_step=_latest_step(orders, funnel),
    )
    view.update(_service_view(service, as_of))
    for name in MASTER_FIELDS:
        known = master.get(name)
        view[name] = None if known is None else known[1]
    register = _register_time(view["register_date"]) if view["register_date"] else None
    view["days_since_register"] = _round(_days(as_of, None if register is None else _ms(register)))
    if s is None:
        return view, None, None
    at_us = (as_of - _EPOCH) // _MICROSECOND  # exact: _dt(c) > as_of <=> c * 1000 > at_us
    # the earliest departure (epoch ms) of any window, and of the windows asked for; a bucket
    # inside a window always leaves it after as_of, the check only guards the arithmetic
    best = chosen = None
    for low, window in ((low30, _W30), (low90, _W90), (low365, _W365), (low7, _V7),
                        (lowv30, _V30)):
        if low is None:
            continue
        c = (low * RESOLUTION_S + window[1] * 86400) * 1000
        if c * 1000 <= at_us:
            continue
        if best is None or c < best:
            best = c
        if (windows is None or window in windows) and (chosen is None or c < chosen):
            chosen = c
    for tk in service["tickets"].values():  # complaints closing later
        c = tk["closed"]
        if c is not None and c > now_ms and _is_complaint(tk) and c * 1000 > at_us:
            if best is None or c < best:
                best = c
            if chosen is None or c < chosen:
                chosen = c
    return (view, None if best is None else _dt(best), None if chosen is None else _dt(chosen))
