"""The live customer profile: a pure fold over canonical events, exact in event time.

``fold_profile(state, event, as_of) -> state`` applies one (already deduplicated) canonical
event; ``profile_view(state, as_of) -> dict`` reads the values as of ``as_of``. Neither looks
at a clock: ``as_of`` is the caller's watermark (aware datetime).

Order independence
------------------
The profile is a function of the *set* of events applied: any arrival order (redeliveries
are removed by the caller's dedupe, out-of-order sources are normal) gives the same
``profile_view(state, as_of)`` for every field, for ``as_of`` at or after the events. So
nothing depends on arrival: every "latest" is the latest by event time, with ties broken by
a canonical key of the record's data (never by which record came first), money is summed
in integer cents, means are sums of integers, and tickets count once per ticket id.

* **Money**: an order's ``amount`` (CNY, as ingested) is parsed to integer cents with
  ``Decimal`` rounding half-up; sums are integer sums, turned into CNY only in the view
  (``avg_order_value`` is rounded half-up to the cent). An order without an amount is an
  order (``orders_total``, frequencies) but adds nothing to the money and is left out of
  ``avg_order_value``, which averages observed amounts only.
* **Funnel step**: ``funnel_latest_step`` is the step of the latest funnel event by event
  time (ties: the further step). A purchase is ``order`` if it is the customer's only one in
  time and ``repurchase`` otherwise, which is decided in the view from the order count and
  the last order time, not at arrival.
* **Tickets** count once per ticket id (``tickets_total``, ``complaints_total``). A record of
  a ticket has a *status time*: its ``closed_at`` when it has one, else its event time
  (``opened_at``); a closing is later than the opening it closes, so an out-of-order
  "opened" record never reopens a closed ticket. The ticket's status (``closed_at``) is the
  one of its latest record by (status time, then closed after open, then a canonical digest
  of the record's data); whether it is a complaint (``is_complaint`` true or ``issue_type``
  complaint; false for another known issue type or ``is_complaint`` false), its
  ``satisfaction`` and its ``handling_minutes`` each come from its latest record that has
  them. Satisfaction and
  handling means are over tickets (each ticket once), observed values only. A record without
  a ``ticket_id`` is its own ticket (keyed by its event id).
* **Open complaints**: a complaint ticket whose ``closed_at`` is unset or later than
  ``as_of``. A ``closed_at`` later than ``as_of`` is a deadline: :func:`next_window_change`
  returns it, so the customer is re-evaluated when the complaint closes.
* **Master data**: each field keeps the value of the latest customers record (event time,
  ties: canonical data digest) that carries it; a field absent, ``None`` or blank in an update
  keeps its known value.
* **Fills are not facts**: fields listed in an event's ``quality.fills`` are ignored by the
  fold (current ingest never writes a fill into ``data``; older events may carry one).

Time semantics
--------------
* All values are computed in event time. An event that arrives out of order counts exactly:
  lifetime totals always, and every window it falls in.
* Windows of N days are ``(window_start(as_of) - N days, ...]`` where ``window_start`` is
  ``as_of`` rounded down to the profile resolution (:data:`RESOLUTION_S`, one hour): the
  lower edge of every window sits on a full hour, which is what lets windows be kept as
  hourly counters instead of event lists. Every applied event counts (none is later than the
  watermark when the allowed lateness is 0; with lateness, events already seen but later than
  ``as_of`` count too: they happened).

State layout (version 2, JSON-ready; times are epoch milliseconds, hours ``ceil(t / 1 h)``)::

    {"v": 2,
     "orders":   {"n": purchases, "cents": sum of amounts, "priced": purchases with an amount,
                  "first": ms, "last": ms, "returns": n, "refunds": n,
                  "buckets": {"<hour>": [purchases, cents]}},
     "activity": {"last": ms, "hours": {"<hour>": events}, "channels": {"<channel>": last ms}},
     "funnel":   {"browse": n, "add_to_cart": n, "step": [ms, rank] | None},  # behaviour only
     "service":  {"tickets": {"<t:ticket_id | e:event_id>": TICKET},
                  "retired": {"n": tickets, "complaints": n, "sat_u": sum, "sat_n": n,
                              "handle_u": sum, "handle_n": n},
                  "retired_ids": {"<ticket key>": status ms}},
     "master":   {"<field>": [[ms, digest], value]}}

    TICKET = {"key": [status ms, closed 0/1, digest],   # of its latest record
              "opened": ms (earliest event time seen), "closed": ms | None,
              "complaint": [key, bool] | None, "sat": [key, value] | None,
              "handle": [key, value] | None}

``*_u`` sums are in millionths (integers: exact whatever the order they were added in).

Memory per customer is bounded however long the history (:func:`prune`, with ``as_of``
only moving forward):

* at most ``365 * 24`` order buckets and ``30 * 24`` activity hours (buckets older than the
  largest window are dropped), channels used in the last 30 days, 9 master fields;
* live tickets: those whose latest status time is within the largest window (365 days),
  plus open complaints without a ``closed_at`` (kept until they close: they are counted in
  ``open_complaints``). Older tickets are *retired*: their contribution (1 ticket, 0/1
  complaint, satisfaction, handling minutes) moves into the ``retired`` aggregates and only
  their key stays in ``retired_ids`` (at most :data:`MAX_RETIRED_IDS`, the oldest by status
  time forgotten first). A later record of a retired ticket is ignored (a ticket whose last
  status is over a year old is final); a record of a forgotten one counts as a new ticket.
  Exactness under any arrival order therefore holds for ticket records that arrive before
  the watermark is 365 days past their ticket's last status time.

Version 1 states (before tickets were kept per id) are upgraded on first use: lifetime
counts and sums carry over (money rounded to cents, tickets as retired aggregates, open
complaints as live tickets).

Units: amounts in CNY, durations in days (float) unless the name says minutes.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import parse_time, to_iso

STATE_VERSION = 2
RESOLUTION_S = 3600
ORDER_WINDOWS_DAYS = (30, 90, 365)
VISIT_WINDOWS_DAYS = (7, 30)
CHANNEL_WINDOW_DAYS = 30
TICKET_HORIZON_DAYS = max(ORDER_WINDOWS_DAYS)
"""Tickets whose latest status time is older than this (before ``window_start(as_of)``) retire."""
MAX_RETIRED_IDS = 1000
"""Keys of retired tickets remembered per customer (so their late records are recognised)."""
NOT_PURCHASES = frozenset({"returned", "refunded", "cancelled"})
FUNNEL_STEPS = ("browse", "add_to_cart", "order", "repurchase")
MASTER_FIELDS = ("region", "member_level", "industry", "register_date", "customer_type",
                 "company_size", "user_name", "phone", "email")
"""Master data kept on the profile (the personal fields are the masked forms)."""
_MICRO = 10**6
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CENT = Decimal("0.01")
_EXACT = Context(prec=400, rounding=ROUND_HALF_UP)  # any finite float, no overflow

ProfileState = dict[str, Any]


def _ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(0, 0, 0, ms)  # (days, seconds, microseconds, milliseconds)


def _hour(ms: int) -> int:
    """Right-closed hour bucket of an epoch-ms time: ``ceil(t / 1 h)``."""
    return -((-ms) // (RESOLUTION_S * 1000))


def window_start(as_of: datetime) -> datetime:
    """``as_of`` rounded down to the profile resolution (aware, UTC)."""
    seconds = math.floor(as_of.timestamp() / RESOLUTION_S) * RESOLUTION_S
    return datetime.fromtimestamp(seconds, tz=UTC)


def _lower_hour(as_of: datetime, days: int) -> int:
    """Buckets with index > this are inside the window of ``days`` days as of ``as_of``."""
    start = window_start(as_of) - timedelta(days=days)
    return int(start.timestamp()) // RESOLUTION_S


def _number(value: Any) -> int | float | None:
    """A finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def _decimal(value: Any) -> Decimal | None:
    x = _number(value)
    if x is None:
        return None
    try:
        return Decimal(x) if isinstance(x, int) else Decimal(repr(x))
    except (InvalidOperation, ValueError):
        return None


def cents(amount: Any) -> int | None:
    """An amount in CNY as integer cents, rounded half-up; None when it is not a number.

    >>> cents(1.205), cents(3), cents(0.1 + 0.2), cents("12"), cents(True)
    (121, 300, 30, None, None)
    """
    if type(amount) is float and -1e12 < amount < 1e12:  # fast path, same result
        scaled = amount * 100
        whole = round(scaled)
        if -1e-6 < scaled - whole < 1e-6:  # a whole number of cents (the usual amount)
            return int(whole)
    d = _decimal(amount)
    return None if d is None else int(d.quantize(_CENT, context=_EXACT).scaleb(2, _EXACT))


def _micro(value: Any) -> int | None:
    """A number in millionths (integer, rounded half-up), None when it is not a number."""
    if type(value) is int:
        return value * _MICRO
    d = _decimal(value)
    return None if d is None else int(d.scaleb(6, _EXACT).quantize(Decimal(1), context=_EXACT))


def _digest(data: dict[str, Any]) -> str:
    """Canonical key of a record's data: the deterministic tie-break between records."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def new_profile() -> ProfileState:
    return {
        "v": STATE_VERSION,
        "orders": {"n": 0, "cents": 0, "priced": 0, "first": None, "last": None,
                   "returns": 0, "refunds": 0, "buckets": {}},
        "activity": {"last": None, "hours": {}, "channels": {}},
        "funnel": {"browse": 0, "add_to_cart": 0, "step": None},
        "service": {"tickets": {}, "retired": _no_retired(), "retired_ids": {}},
        "master": {},
    }


def _no_retired() -> dict[str, int]:
    return {"n": 0, "complaints": 0, "sat_u": 0, "sat_n": 0, "handle_u": 0, "handle_n": 0}


def fold_profile(
    state: ProfileState | None, event: CanonicalEvent, as_of: datetime | None
) -> ProfileState:
    """Apply one new event (the caller deduplicates) and prune what no window as of ``as_of``
    needs (``None``: do not prune now; a batch caller prunes once, with :func:`prune`, before
    it evaluates). The state is updated in place and returned (a profile is rewritten once
    per event on the hot path; copying it each time cost more than the fold itself): pass
    ``copy.deepcopy(state)`` to keep the old one."""
    s = _current(state, in_place=True) if state is not None else new_profile()
    t = _ms(event.event_time)
    data = event.data
    fills = event.quality.get("fills") if isinstance(event.quality, dict) else None
    if fills:  # a fill is never a fact (older ingests wrote fills into data)
        filled = {f.get("field") for f in fills if isinstance(f, dict)}
        data = {k: v for k, v in data.items() if k not in filled}
    if event.source == "orders":
        _fold_order(s, data, t)
    elif event.source == "behavior":
        _fold_behavior(s, data, t)
    elif event.source == "tickets":
        _fold_ticket(s, data, t, event.event_id)
    elif event.source == "customers":
        _fold_master(s, data, t)
    if as_of is not None:
        prune(s, as_of)
    return s


def _touch(s: ProfileState, t: int, channel: Any) -> None:
    act = s["activity"]
    act["last"] = t if act["last"] is None else max(act["last"], t)
    hour = str(_hour(t))
    act["hours"][hour] = act["hours"].get(hour, 0) + 1
    if isinstance(channel, str) and channel.strip():
        act["channels"][channel] = max(act["channels"].get(channel, t), t)


def _fold_order(s: ProfileState, data: dict[str, Any], t: int) -> None:
    orders = s["orders"]
    status = data.get("status")
    if status == "returned":
        orders["returns"] += 1
        return
    if status == "refunded":
        orders["refunds"] += 1
        return
    if status in NOT_PURCHASES:
        return
    amount = cents(data.get("amount"))
    orders["n"] += 1
    if amount is not None:
        orders["cents"] += amount
        orders["priced"] += 1
    orders["first"] = t if orders["first"] is None else min(orders["first"], t)
    orders["last"] = t if orders["last"] is None else max(orders["last"], t)
    hour = str(_hour(t))
    count, total = orders["buckets"].get(hour, (0, 0))
    orders["buckets"][hour] = [count + 1, total + (amount or 0)]
    _touch(s, t, data.get("channel"))


def _fold_behavior(s: ProfileState, data: dict[str, Any], t: int) -> None:
    kind = data.get("behavior_type")
    if kind in ("browse", "add_to_cart"):
        funnel = s["funnel"]
        funnel[kind] += 1
        step = [t, FUNNEL_STEPS.index(kind)]
        if funnel["step"] is None or step > funnel["step"]:
            funnel["step"] = step
    _touch(s, t, data.get("channel"))


def ticket_key(data: dict[str, Any], event_id: str) -> str:
    """The ticket a record belongs to: ``t:<ticket_id>``, or ``e:<event_id>`` for a record
    without a ticket id (each such record is its own ticket)."""
    raw = data.get("ticket_id")
    if raw is not None and not isinstance(raw, bool) and str(raw).strip():
        return f"t:{str(raw).strip()}"
    return f"e:{event_id}"


def _complaint_signal(data: dict[str, Any]) -> bool | None:
    """What the record says about being a complaint: True, False, or None (says nothing)."""
    flag, issue = data.get("is_complaint"), data.get("issue_type")
    if flag is True or issue == "complaint":
        return True
    if flag is False or (isinstance(issue, str) and issue.strip()):
        return False
    return None


def _fold_ticket(s: ProfileState, data: dict[str, Any], t: int, event_id: str) -> None:
    service = s["service"]
    tid = ticket_key(data, event_id)
    if tid in service["retired_ids"]:
        return  # its last status is over a year old: final (see the module docstring)
    closed = parse_time(data.get("closed_at"), UTC) if data.get("closed_at") else None
    closed_ms = None if closed is None else _ms(closed)
    key = [t if closed_ms is None else max(t, closed_ms), 0 if closed_ms is None else 1,
           _digest(data)]
    ticket = service["tickets"].get(tid)
    if ticket is None:
        ticket = {"key": key, "opened": t, "closed": closed_ms, "complaint": None,
                  "sat": None, "handle": None}
        service["tickets"][tid] = ticket
    else:
        opened = ticket.get("opened")
        ticket["opened"] = t if opened is None else min(opened, t)
        if key > ticket["key"]:
            ticket["key"], ticket["closed"] = key, closed_ms
    signal = _complaint_signal(data)
    if signal is not None and (ticket["complaint"] is None or key > ticket["complaint"][0]):
        ticket["complaint"] = [key, signal]
    for slot, name in (("sat", "satisfaction"), ("handle", "handling_minutes")):
        value = _number(data.get(name))
        if value is not None and (ticket[slot] is None or key > ticket[slot][0]):
            ticket[slot] = [key, value]


def _fold_master(s: ProfileState, data: dict[str, Any], t: int) -> None:
    master = s["master"]
    key = None
    for name in MASTER_FIELDS:
        value = data.get(name)
        if _missing(value):
            continue  # absent from this update: the known value stays
        key = key or [t, _digest(data)]
        known = master.get(name)
        if known is None or key > known[0]:
            master[name] = [key, value]


def _is_complaint(ticket: dict[str, Any]) -> bool:
    return bool(ticket["complaint"] and ticket["complaint"][1])


def prune(s: ProfileState | None, as_of: datetime) -> None:
    """Drop what no window as of ``as_of`` (or later) can need and retire old tickets. In
    place. The view as of ``as_of`` or later is the same before and after."""
    if s is None:
        return
    _current(s, in_place=True)
    order_floor = _lower_hour(as_of, max(ORDER_WINDOWS_DAYS))
    s["orders"]["buckets"] = {h: v for h, v in s["orders"]["buckets"].items()
                              if int(h) > order_floor}
    visit_floor = _lower_hour(as_of, max(VISIT_WINDOWS_DAYS))
    s["activity"]["hours"] = {h: v for h, v in s["activity"]["hours"].items()
                              if int(h) > visit_floor}
    channel_floor = _ms(window_start(as_of) - timedelta(days=CHANNEL_WINDOW_DAYS))
    s["activity"]["channels"] = {c: t for c, t in s["activity"]["channels"].items()
                                 if t > channel_floor}
    retire_tickets(s, as_of)


def retire_tickets(s: ProfileState | None, as_of: datetime) -> None:
    """Retire tickets whose last status is older than the ticket horizon as of ``as_of`` into
    aggregates (in place). Callers run it after every evaluation, so which tickets are retired
    depends only on the customer's records and their order, not on batching."""
    if s is None:
        return
    _current(s, in_place=True)
    service = s["service"]
    if not service["tickets"]:
        return
    ticket_floor = _ms(window_start(as_of) - timedelta(days=TICKET_HORIZON_DAYS))
    old = [tid for tid, tk in service["tickets"].items()
           if tk["key"][0] <= ticket_floor and not (_is_complaint(tk) and tk["closed"] is None)]
    if not old:
        return
    retired, ids = service["retired"], service["retired_ids"]
    for tid in sorted(old):
        tk = service["tickets"].pop(tid)
        retired["n"] += 1
        retired["complaints"] += int(_is_complaint(tk))
        for slot, total, count in (("sat", "sat_u", "sat_n"), ("handle", "handle_u", "handle_n")):
            if tk[slot] is not None:
                retired[total] += _micro(tk[slot][1]) or 0
                retired[count] += 1
        ids[tid] = tk["key"][0]
    if len(ids) > MAX_RETIRED_IDS:
        keep = sorted(ids, key=lambda k: (ids[k], k))[-MAX_RETIRED_IDS:]
        service["retired_ids"] = {k: ids[k] for k in sorted(keep)}


def _days(later: datetime, earlier_ms: int | None) -> float | None:
    if earlier_ms is None:
        return None
    return (later.timestamp() * 1000 - earlier_ms) / 86_400_000


@lru_cache(maxsize=8192)
def _iso(ms: int | None) -> str | None:
    return None if ms is None else to_iso(_dt(ms))


def _mean_micro(total_u: int, n: int) -> float | None:
    return _round(total_u / (n * _MICRO)) if n else None


def _service_view(service: dict[str, Any], as_of: datetime) -> dict[str, Any]:
    retired = service["retired"]
    if not service["tickets"]:  # the usual customer: only what retired tickets left
        return {
            "tickets_total": retired["n"],
            "complaints_total": retired["complaints"],
            "open_complaints": 0,
            "satisfaction_mean": _mean_micro(retired["sat_u"], retired["sat_n"]),
            "handling_minutes_mean": _mean_micro(retired["handle_u"], retired["handle_n"]),
        }
    tickets = service["tickets"].values()
    sums = {"sat": [retired["sat_u"], retired["sat_n"]],
            "handle": [retired["handle_u"], retired["handle_n"]]}
    complaints = retired["complaints"]
    open_complaints = 0
    now = _ms(as_of)
    for tk in tickets:
        if _is_complaint(tk):
            complaints += 1
            if tk["closed"] is None or tk["closed"] > now:
                open_complaints += 1
        for slot, acc in sums.items():
            if tk[slot] is not None:
                acc[0] += _micro(tk[slot][1]) or 0
                acc[1] += 1
    return {
        "tickets_total": retired["n"] + len(service["tickets"]),
        "complaints_total": complaints,
        "open_complaints": open_complaints,
        "satisfaction_mean": _mean_micro(*sums["sat"]),
        "handling_minutes_mean": _mean_micro(*sums["handle"]),
    }


def _latest_step(orders: dict[str, Any], funnel: dict[str, Any]) -> str | None:
    candidates = [funnel["step"]] if funnel["step"] is not None else []
    if orders["n"]:  # the latest purchase is a repurchase unless it is the only one
        candidates.append([orders["last"], FUNNEL_STEPS.index(
            "order" if orders["n"] == 1 else "repurchase")])
    return FUNNEL_STEPS[max(candidates)[1]] if candidates else None


def profile_view(s: ProfileState | None, as_of: datetime) -> dict[str, Any]:
    """All profile values as of ``as_of`` (flat, JSON-ready; times ISO 8601 UTC)."""
    return view_and_next_change(s, as_of)[0]


def next_window_change(s: ProfileState | None, as_of: datetime) -> datetime | None:
    """The earliest time after ``as_of`` at which a value changes with no new event (for
    time-driven re-evaluation): when the oldest bucket of a window leaves it, or when an
    open complaint reaches its ``closed_at``."""
    if s is None:
        return None
    return view_and_next_change(s, as_of)[1]


WINDOWS = (("orders", 30), ("orders", 90), ("orders", 365), ("visits", 7), ("visits", 30))
"""The windows of the view, ``(kind, days)``: orders feed ``frequency_<days>d`` and
``monetary_<days>d``, visits ``visits_<days>d``."""
_W30, _W90, _W365, _V7, _V30 = WINDOWS


def view_and_next_change(
    s: ProfileState | None, as_of: datetime
) -> tuple[dict[str, Any], datetime | None]:
    """:func:`profile_view` and :func:`next_window_change` of the same state and time, in one
    pass over the hourly buckets (what a re-evaluation needs)."""
    view, change, _ = view_and_changes(s, as_of, None)
    return view, change


def view_and_changes(
    s: ProfileState | None, as_of: datetime, windows: frozenset[tuple[str, int]] | None
) -> tuple[dict[str, Any], datetime | None, datetime | None]:
    """``(view, next window change, next change of the given windows)``: the last counts
    only ``windows`` (a subset of :data:`WINDOWS`; None: all) and complaint closings."""
    state = _current(s, in_place=False) if s is not None else new_profile()
    orders, act, funnel, master = (
        state["orders"], state["activity"], state["funnel"], state["master"])
    register_date = master.get("register_date")
    register_date = None if register_date is None else register_date[1]
    timed, best, chosen = _timed(state, as_of, windows, register_date, s is not None)
    n, priced = orders["n"], orders["priced"]
    view: dict[str, Any] = {
        "as_of": timed["as_of"],
        "orders_total": n, "monetary_total": orders["cents"] / 100,
        "first_order_at": _iso(orders["first"]), "last_order_at": _iso(orders["last"]),
        # mean of the observed amounts, rounded half-up to the cent (exact integers)
        "avg_order_value": ((2 * orders["cents"] + priced) // (2 * priced)) / 100
        if priced else None,
        "mean_interpurchase_days": (
            round((orders["last"] - orders["first"]) / 86_400_000 / (n - 1), 6) if n > 1 else None
        ),
        "returns_total": orders["returns"], "refunds_total": orders["refunds"],
        "return_rate": round((orders["returns"] + orders["refunds"]) / n, 6) if n else None,
        "recency_days": timed["recency_days"],
        "frequency_30d": timed["frequency_30d"], "monetary_30d": timed["monetary_30d"],
        "frequency_90d": timed["frequency_90d"], "monetary_90d": timed["monetary_90d"],
        "frequency_365d": timed["frequency_365d"], "monetary_365d": timed["monetary_365d"],
        "last_seen_at": _iso(act["last"]),
        "inactive_days": timed["inactive_days"],
        "visits_7d": timed["visits_7d"], "visits_30d": timed["visits_30d"],
        "active_channels": timed["active_channels"],
        "funnel_browse": funnel["browse"], "funnel_add_to_cart": funnel["add_to_cart"],
        "funnel_order": 1 if n else 0, "funnel_repurchase": max(0, n - 1),
        "funnel_latest_step": _latest_step(orders, funnel),
    }
    for name in _SERVICE_FIELDS:
        view[name] = timed[name]
    for name in MASTER_FIELDS:
        known = master.get(name)
        view[name] = None if known is None else known[1]
    view["days_since_register"] = timed["days_since_register"]
    return view, best, chosen


_HOURS_PER_DAY = 86400 // RESOLUTION_S

_SERVICE_FIELDS = ("tickets_total", "complaints_total", "open_complaints", "satisfaction_mean",
                   "handling_minutes_mean")


def view_step(
    view: dict[str, Any], s: ProfileState, as_of: datetime,
    windows: frozenset[tuple[str, int]] | None,
) -> tuple[dict[str, Any], datetime | None, datetime | None]:
    """:func:`view_and_changes` of ``s`` at ``as_of`` from ``view``, the view of the same
    state at an earlier time (no event folded into ``s`` since; tickets may have been retired,
    which changes no value): only the values that move with time alone are computed again
    (windowed counts and sums, days since a timestamp, active channels, the service values),
    the rest is ``view``'s. The same result as :func:`view_and_changes`, key order included
    (tests/unit/test_profile_step.py); the time-only steps of a replay take this path."""
    state = _current(s, in_place=False)
    timed, best, chosen = _timed(state, as_of, windows, view["register_date"], True)
    out = dict(view)
    out.update(timed)
    return out, best, chosen


def _timed(
    state: ProfileState, as_of: datetime, windows: frozenset[tuple[str, int]] | None,
    register_date: Any, changes: bool,
) -> tuple[dict[str, Any], datetime | None, datetime | None]:
    """The view values that change with time alone, as of ``as_of``, with the next window
    change and the next change of ``windows`` (both None unless ``changes``)."""
    orders, act, service = state["orders"], state["activity"], state["service"]
    # Window edges as hour indexes (exact integers): bucket h is inside the window of N days
    # when h > floor_N, and leaves it when floor_N reaches h, at h * 1 h + N days.
    ts = as_of.timestamp()
    later_ms = ts * 1000  # as _days and _ms compute it (the same float)
    hour = math.floor(ts / RESOLUTION_S)  # window_start(as_of), in hours
    f30 = hour - 30 * _HOURS_PER_DAY  # the windows of ORDER_WINDOWS_DAYS, inline
    f90 = hour - 90 * _HOURS_PER_DAY
    f365 = hour - 365 * _HOURS_PER_DAY
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
    n7 = n30 = 0
    low7 = lowv30 = None
    if act["hours"]:
        v7 = hour - 7 * _HOURS_PER_DAY  # VISIT_WINDOWS_DAYS
        v30 = hour - 30 * _HOURS_PER_DAY
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
    channels = act["channels"]
    if channels:
        channel_floor = (hour * RESOLUTION_S - CHANNEL_WINDOW_DAYS * 86400) * 1000
        active = sorted(c for c, t in channels.items() if t > channel_floor)
    else:
        active = []
    register = _register_time(register_date) if register_date else None
    last, seen = orders["last"], act["last"]
    timed: dict[str, Any] = {
        "as_of": to_iso(as_of),
        "recency_days": None if last is None else round((later_ms - last) / 86_400_000, 6),
        "frequency_30d": c30, "monetary_30d": m30 / 100,
        "frequency_90d": c90, "monetary_90d": m90 / 100,
        "frequency_365d": c365, "monetary_365d": m365 / 100,
        "inactive_days": None if seen is None else round((later_ms - seen) / 86_400_000, 6),
        "visits_7d": n7, "visits_30d": n30,
        "active_channels": active,
        "days_since_register": None if register is None else round(
            (later_ms - _ms(register)) / 86_400_000, 6),
    }
    timed.update(_service_view(service, as_of))
    if not changes:
        return timed, None, None
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
    now_ms = int(round(later_ms))  # _ms(as_of)
    for tk in service["tickets"].values():  # complaints closing later
        c = tk["closed"]
        if c is not None and c > now_ms and _is_complaint(tk) and c * 1000 > at_us:
            if best is None or c < best:
                best = c
            if chosen is None or c < chosen:
                chosen = c
    return timed, None if best is None else _dt(best), None if chosen is None else _dt(chosen)


def last_window_change(s: ProfileState, as_of: datetime, until: datetime) -> datetime | None:
    """The latest moment in ``(as_of, until]`` at which a bucket that is inside a window at
    ``as_of`` leaves it (any window of :data:`WINDOWS`); None if there is none. With no event
    folded in between, every window change in that span is one of these."""
    state = _current(s, in_place=False)
    start = math.floor(as_of.timestamp() / RESOLUTION_S) * RESOLUTION_S
    at_us = (as_of - _EPOCH) // _MICROSECOND
    until_us = (until - _EPOCH) // _MICROSECOND
    best = None
    for kind, days in WINDOWS:
        keys = state["orders"]["buckets"] if kind == "orders" else state["activity"]["hours"]
        floor = (start - days * 86400) // RESOLUTION_S
        for key in keys:
            h = int(key)
            if h <= floor:
                continue
            at = (h * RESOLUTION_S + days * 86400) * 1000  # ms
            if at_us < at * 1000 <= until_us and (best is None or at > best):
                best = at
    return None if best is None else _dt(best)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _register_time(value: Any) -> datetime | None:
    """``register_date`` as an aware time (text parsed once per distinct string)."""
    return _parse_text(value) if isinstance(value, str) else parse_time(value, UTC)


@lru_cache(maxsize=4096)
def _parse_text(text: str) -> datetime | None:
    return parse_time(text, UTC)


# --- version 1 states ----------------------------------------------------------------------


def _current(s: ProfileState, *, in_place: bool) -> ProfileState:
    """``s`` in the current layout: upgraded from version 1 if needed (in place, or as a new
    dict when ``in_place`` is false)."""
    if s.get("v") == STATE_VERSION:
        return s
    upgraded = _upgrade_v1(s)
    if not in_place:
        return upgraded
    s.clear()
    s.update(upgraded)
    return s


def _upgrade_v1(old: ProfileState) -> ProfileState:
    s = new_profile()
    o = old.get("orders") or {}
    s["orders"].update(
        n=o.get("n", 0), cents=cents(o.get("sum", 0)) or 0, priced=o.get("n", 0),
        first=o.get("first"), last=o.get("last"), returns=o.get("returns", 0),
        refunds=o.get("refunds", 0),
        buckets={h: [v[0], cents(v[1]) or 0] for h, v in (o.get("buckets") or {}).items()},
    )
    s["activity"] = dict(old.get("activity") or s["activity"])
    f = old.get("funnel") or {}
    s["funnel"].update(browse=f.get("browse", 0), add_to_cart=f.get("add_to_cart", 0))
    if f.get("latest") in ("browse", "add_to_cart") and f.get("latest_at") is not None:
        s["funnel"]["step"] = [f["latest_at"], FUNNEL_STEPS.index(f["latest"])]
    v = old.get("service") or {}
    still_open = v.get("open") or {}
    for tid, closed in still_open.items():
        key = [closed or 0, 0 if closed is None else 1, ""]
        s["service"]["tickets"][f"t:{tid}"] = {"key": key, "opened": None, "closed": closed,
                                               "complaint": [key, True], "sat": None,
                                               "handle": None}
    s["service"]["retired"].update(
        n=max(0, v.get("tickets", 0) - len(still_open)),
        complaints=max(0, v.get("complaints", 0) - len(still_open)),
        sat_u=_micro(v.get("sat_sum", 0)) or 0, sat_n=v.get("sat_n", 0),
        handle_u=_micro(v.get("handle_sum", 0)) or 0, handle_n=v.get("handle_n", 0),
    )
    m = old.get("master") or {}
    for name in MASTER_FIELDS:
        if not _missing(m.get(name)):
            s["master"][name] = [[m.get("at") or 0, ""], m[name]]
    return s
