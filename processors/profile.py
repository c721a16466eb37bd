"""The live customer profile: a pure fold over canonical events, exact in event time.

``fold_profile(state, event, as_of) -> state`` applies one (already deduplicated) canonical
event; ``profile_view(state, as_of) -> dict`` reads the values as of ``as_of``. Neither looks
at a clock: ``as_of`` is the caller's watermark (aware datetime).

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
* Memory per customer is bounded however long the history: hourly buckets older than the
  largest window (relative to ``as_of``, which only moves forward) are dropped, so a customer
  holds at most ``365 * 24`` order buckets and ``30 * 24`` activity buckets, plus fixed-size
  lifetime aggregates. Hour buckets are keyed by ``ceil(t / 3600)`` (right-closed hours).

Units: amounts in CNY, durations in days (float) unless the name says minutes.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import parse_time, to_iso

RESOLUTION_S = 3600
ORDER_WINDOWS_DAYS = (30, 90, 365)
VISIT_WINDOWS_DAYS = (7, 30)
CHANNEL_WINDOW_DAYS = 30
NOT_PURCHASES = frozenset({"returned", "refunded", "cancelled"})
FUNNEL_STEPS = ("browse", "add_to_cart", "order", "repurchase")
MASTER_FIELDS = ("region", "member_level", "industry", "register_date", "customer_type",
                 "company_size", "user_name", "phone", "email")
"""Master data kept on the profile (the personal fields are the masked forms)."""

ProfileState = dict[str, Any]


def _ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


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


def new_profile() -> ProfileState:
    return {
        "v": 1,
        "orders": {"n": 0, "sum": 0.0, "first": None, "last": None, "returns": 0,
                   "refunds": 0, "buckets": {}},
        "activity": {"last": None, "hours": {}, "channels": {}},
        "funnel": {"browse": 0, "add_to_cart": 0, "latest": None, "latest_at": None},
        "service": {"tickets": 0, "complaints": 0, "open": {}, "sat_sum": 0.0, "sat_n": 0,
                    "handle_sum": 0.0, "handle_n": 0},
        "master": {"at": None},
    }


def fold_profile(
    state: ProfileState | None, event: CanonicalEvent, as_of: datetime | None
) -> ProfileState:
    """Apply one new event (the caller deduplicates) and prune buckets outside every window
    as of ``as_of`` (``None``: do not prune now; a batch caller prunes once, with
    :func:`prune`, before it evaluates). The state is updated in place and returned (a
    profile is rewritten once per event on the hot path; copying it each time cost more than
    the fold itself): pass ``copy.deepcopy(state)`` to keep the old one."""
    s = state if state is not None else new_profile()
    t = _ms(event.event_time)
    data = event.data
    if event.source == "orders":
        _fold_order(s, data, t)
    elif event.source == "behavior":
        _fold_behavior(s, data, t)
    elif event.source == "tickets":
        _fold_ticket(s, data, t)
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
    if isinstance(channel, str) and channel:
        act["channels"][channel] = max(act["channels"].get(channel, t), t)


def _step(s: ProfileState, step: str, t: int) -> None:
    funnel = s["funnel"]
    rank = FUNNEL_STEPS.index(step)
    latest_at = funnel["latest_at"]
    if latest_at is None or t > latest_at or (
        t == latest_at and rank > FUNNEL_STEPS.index(funnel["latest"])
    ):
        funnel["latest"], funnel["latest_at"] = step, t


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
    amount = data.get("amount")
    numeric = isinstance(amount, int | float) and not isinstance(amount, bool)
    amount = float(amount) if numeric else 0.0
    first = orders["first"]
    orders["n"] += 1
    orders["sum"] = round(orders["sum"] + amount, 2)
    orders["first"] = t if first is None else min(first, t)
    orders["last"] = t if orders["last"] is None else max(orders["last"], t)
    hour = str(_hour(t))
    count, total = orders["buckets"].get(hour, (0, 0.0))
    orders["buckets"][hour] = [count + 1, round(total + amount, 2)]
    # The first purchase in time is the 'order' step, any later one a repurchase.
    _step(s, "order" if orders["first"] == t and orders["n"] == 1 else "repurchase", t)
    _touch(s, t, data.get("channel"))


def _fold_behavior(s: ProfileState, data: dict[str, Any], t: int) -> None:
    kind = data.get("behavior_type")
    if kind in ("browse", "add_to_cart"):
        s["funnel"][kind] += 1
        _step(s, kind, t)
    _touch(s, t, data.get("channel"))


def _fold_ticket(s: ProfileState, data: dict[str, Any], t: int) -> None:
    service = s["service"]
    service["tickets"] += 1
    satisfaction = data.get("satisfaction")
    if isinstance(satisfaction, int | float) and not isinstance(satisfaction, bool):
        service["sat_sum"] += satisfaction
        service["sat_n"] += 1
    minutes = data.get("handling_minutes")
    if isinstance(minutes, int | float) and not isinstance(minutes, bool):
        service["handle_sum"] += minutes
        service["handle_n"] += 1
    if data.get("is_complaint") is True or data.get("issue_type") == "complaint":
        service["complaints"] += 1
        closed = parse_time(data.get("closed_at"), UTC)
        ticket = str(data.get("ticket_id") or t)
        service["open"][ticket] = None if closed is None else _ms(closed)


def _fold_master(s: ProfileState, data: dict[str, Any], t: int) -> None:
    master = s["master"]
    if master["at"] is not None and t < master["at"]:
        return  # an older master record never overwrites a newer one
    for name in MASTER_FIELDS:
        if data.get(name) is not None:
            master[name] = data[name]
    master["at"] = t


def prune(s: ProfileState, as_of: datetime) -> None:
    """Drop what no window as of ``as_of`` (or later) can need. In place."""
    order_floor = _lower_hour(as_of, max(ORDER_WINDOWS_DAYS))
    s["orders"]["buckets"] = {h: v for h, v in s["orders"]["buckets"].items()
                              if int(h) > order_floor}
    visit_floor = _lower_hour(as_of, max(VISIT_WINDOWS_DAYS))
    s["activity"]["hours"] = {h: v for h, v in s["activity"]["hours"].items()
                              if int(h) > visit_floor}
    channel_floor = _ms(window_start(as_of) - timedelta(days=CHANNEL_WINDOW_DAYS))
    s["activity"]["channels"] = {c: t for c, t in s["activity"]["channels"].items()
                                 if t > channel_floor}
    now = _ms(as_of)
    s["service"]["open"] = {k: v for k, v in s["service"]["open"].items()
                            if v is None or v > now}


def _days(later: datetime, earlier_ms: int | None) -> float | None:
    if earlier_ms is None:
        return None
    return (later.timestamp() * 1000 - earlier_ms) / 86_400_000


def _iso(ms: int | None) -> str | None:
    return None if ms is None else to_iso(datetime.fromtimestamp(ms / 1000, tz=UTC))


def profile_view(s: ProfileState | None, as_of: datetime) -> dict[str, Any]:
    """All profile values as of ``as_of`` (flat, JSON-ready; times ISO 8601 UTC)."""
    s = s if s is not None else new_profile()
    orders, act, funnel, service, master = (
        s["orders"], s["activity"], s["funnel"], s["service"], s["master"])
    view: dict[str, Any] = {"as_of": to_iso(as_of)}
    n = orders["n"]
    view.update(
        orders_total=n, monetary_total=round(orders["sum"], 2),
        first_order_at=_iso(orders["first"]), last_order_at=_iso(orders["last"]),
        avg_order_value=round(orders["sum"] / n, 2) if n else None,
        mean_interpurchase_days=(
            round((orders["last"] - orders["first"]) / 86_400_000 / (n - 1), 6) if n > 1 else None
        ),
        returns_total=orders["returns"], refunds_total=orders["refunds"],
        return_rate=round((orders["returns"] + orders["refunds"]) / n, 6) if n else None,
        recency_days=_round(_days(as_of, orders["last"])),
    )
    for days in ORDER_WINDOWS_DAYS:
        floor = _lower_hour(as_of, days)
        inside = [v for h, v in orders["buckets"].items() if int(h) > floor]
        view[f"frequency_{days}d"] = sum(c for c, _ in inside)
        view[f"monetary_{days}d"] = round(sum(m for _, m in inside), 2)
    view["last_seen_at"] = _iso(act["last"])
    view["inactive_days"] = _round(_days(as_of, act["last"]))
    for days in VISIT_WINDOWS_DAYS:
        floor = _lower_hour(as_of, days)
        view[f"visits_{days}d"] = sum(1 for h in act["hours"] if int(h) > floor)
    channel_floor = _ms(window_start(as_of) - timedelta(days=CHANNEL_WINDOW_DAYS))
    view["active_channels"] = sorted(c for c, t in act["channels"].items() if t > channel_floor)
    view.update(
        funnel_browse=funnel["browse"], funnel_add_to_cart=funnel["add_to_cart"],
        funnel_order=1 if n else 0, funnel_repurchase=max(0, n - 1),
        funnel_latest_step=funnel["latest"],
        tickets_total=service["tickets"], complaints_total=service["complaints"],
        open_complaints=sum(1 for v in service["open"].values()
                            if v is None or v > _ms(as_of)),
        satisfaction_mean=(
            _round(service["sat_sum"] / service["sat_n"]) if service["sat_n"] else None
        ),
        handling_minutes_mean=(
            _round(service["handle_sum"] / service["handle_n"]) if service["handle_n"] else None
        ),
    )
    for name in MASTER_FIELDS:
        view[name] = master.get(name)
    register = parse_time(master.get("register_date"), UTC)
    view["days_since_register"] = _round(_days(as_of, None if register is None else _ms(register)))
    return view


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def next_window_change(s: ProfileState | None, as_of: datetime) -> datetime | None:
    """The earliest time after ``as_of`` at which a windowed value changes with no new event:
    when the oldest bucket of a window leaves it (for time-driven re-evaluation)."""
    if s is None:
        return None
    candidates = []
    for days in ORDER_WINDOWS_DAYS:
        floor = _lower_hour(as_of, days)
        inside = [int(h) for h in s["orders"]["buckets"] if int(h) > floor]
        if inside:  # bucket h leaves when floor reaches h: window_start = h*1h + days
            candidates.append(min(inside) * RESOLUTION_S + days * 86400)
    for days in VISIT_WINDOWS_DAYS:
        floor = _lower_hour(as_of, days)
        inside = [int(h) for h in s["activity"]["hours"] if int(h) > floor]
        if inside:
            candidates.append(min(inside) * RESOLUTION_S + days * 86400)
    later = [c for c in candidates if c > as_of.timestamp()]
    return datetime.fromtimestamp(min(later), tz=UTC) if later else None
