"""What the analyses need of one customer, kept next to its profile: a pure fold.

``fold_event(state, event, zone) -> state`` applies one accepted (deduplicated) canonical
event; ``record_moves(state, alerts)`` keeps the segment moves the customer's evaluations
announced; ``prune(state, as_of, live_tickets)`` bounds the memory. No clock: times come in as
arguments; ``zone`` is the source zone whose calendar days the daily counters use.

Exactness: like the profile, the state is a function of the *set* of applied events (counters
are integer sums, every "latest" is the latest by event time with ties broken by a digest of
the record's data), so any arrival order, batching or redelivery (removed by the caller's
dedupe) gives the same state. Segment moves are what the evaluations decided, so they follow
the arrival order exactly as the alerts do. Pruning drops only what lies before a floor that
moves with ``as_of`` (which never goes back): a value pruned once would be pruned by every
later prune too.

State layout (version 1, JSON-ready; times epoch milliseconds)::

    {"v": 1,
     "days":    {"YYYY-MM-DD": {"<channel>|unknown": [browse, add_to_cart, purchases, cents,
                                                       returns, events]}},
     "issues":  {"<ticket key>": [[status ms, closed 0/1, digest], issue_type]},
     "baskets": {"<order key>": [ms, [product ids, sorted, unique]]},
     "moves":   [[ms, group, old | None, new, historical 0/1], ...]}

What counts as activity: only the customer's own actions, behaviour and order records, make
a day row (``events`` counts them); a CRM master-data update (its ``channel`` is where the
customer was acquired) or a support ticket is not a visit, and bulk re-syncs of the CRM must
not look like active customers. Ticket issue types are kept for the tickets table.

Bounds (per customer): days within :data:`DAYS_KEPT` local days before ``as_of``'s day, at
most :data:`MAX_CHANNELS` channels a day (beyond, the channels after the first
``MAX_CHANNELS - 1`` by name count together under ``other``: which ones does not depend on the
order records came in, the kept names are always the smallest seen); issue types of
the profile's live tickets only; paid baskets of at most :data:`MAX_ITEMS` products (a larger
one is a bulk or B2B order, not a market basket: it counts in the daily purchases but not as a
basket) within :data:`BASKET_DAYS` days, the latest :data:`MAX_BASKETS`; moves within
:data:`DAYS_KEPT` days, at most :data:`MAX_MOVES`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from custpulse.processors.profile import NOT_PURCHASES, _digest, cents, ticket_key
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import parse_time

STATE_VERSION = 1
DAYS_KEPT = 400
"""Local days of daily counters (and days of segment moves) kept before ``as_of``'s day."""
BASKET_DAYS = 365
MAX_BASKETS = 100
MAX_MOVES = 200
MAX_ITEMS = 30
"""Distinct products a basket may have (more: a bulk order, not kept as a basket)."""
MAX_CHANNELS = 16
"""Channels a day per customer; records of further channels count under ``other``."""
OTHER_CHANNEL = "other"

BROWSE, CART, PURCHASES, CENTS, RETURNS, EVENTS = range(6)
AnalysisState = dict[str, Any]


def new_state() -> AnalysisState:
    return {"v": STATE_VERSION, "days": {}, "issues": {}, "baskets": {}, "moves": []}


def _ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUARTER = timedelta(minutes=15)


def local_day(moment: datetime, zone: tzinfo) -> str:
    """The calendar day of ``moment`` (aware) in ``zone``, ``YYYY-MM-DD``."""
    return moment.astimezone(zone).date().isoformat()


@lru_cache(maxsize=65536)
def _day_of_quarter(quarter: int, zone: tzinfo) -> str:
    return local_day(_EPOCH + quarter * _QUARTER, zone)


def _day(moment: datetime, zone: tzinfo) -> str:
    """:func:`local_day`, cached per quarter hour (the fold's hot path): since 1970 every
    zone's offset, and every change of it, is on a quarter hour, so a quarter hour (exact
    integer arithmetic, no float rounding) lies in one local day; earlier times (local mean
    time offsets) are computed directly."""
    if moment < _EPOCH:
        return local_day(moment, zone)
    return _day_of_quarter((moment - _EPOCH) // _QUARTER, zone)


def _channel(data: dict[str, Any]) -> str:
    channel = data.get("channel")
    if isinstance(channel, str) and channel.strip():
        return channel.strip()
    return "unknown"


def _products(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    ids = set()
    for item in items:
        if isinstance(item, dict):
            pid = item.get("product_id")
            if pid is not None and not isinstance(pid, bool) and str(pid).strip():
                ids.add(str(pid).strip())
    return sorted(ids)


def fold_event(state: AnalysisState | None, event: CanonicalEvent,
               zone: tzinfo) -> AnalysisState:
    """Apply one new event (in place; returns the state). ``zone``: the day boundaries."""
    s = state if state is not None and state.get("v") == STATE_VERSION else new_state()
    data = event.data
    fills = event.quality.get("fills") if isinstance(event.quality, dict) else None
    if fills:  # a fill is never a fact
        filled = {f.get("field") for f in fills if isinstance(f, dict)}
        data = {k: v for k, v in data.items() if k not in filled}
    if event.source in ("behavior", "orders"):  # the customer's own actions: activity
        day = s["days"].setdefault(_day(event.event_time, zone), {})
        row = day.setdefault(_channel(data), [0, 0, 0, 0, 0, 0])
        row[EVENTS] += 1
    t = _ms(event.event_time)
    if event.source == "behavior":
        kind = data.get("behavior_type")
        if kind == "browse":
            row[BROWSE] += 1
        elif kind == "add_to_cart":
            row[CART] += 1
    elif event.source == "orders":
        status = data.get("status")
        if status in ("returned", "refunded"):
            row[RETURNS] += 1
        elif status not in NOT_PURCHASES:
            row[PURCHASES] += 1
            row[CENTS] += cents(data.get("amount")) or 0
            products = _products(data.get("items"))
            if 0 < len(products) <= MAX_ITEMS:
                raw = data.get("order_id")
                key = (f"o:{str(raw).strip()}" if raw is not None and str(raw).strip()
                       else f"e:{event.event_id}")
                known = s["baskets"].get(key)
                # one basket per order: its latest paid record (ties: the larger product list)
                if known is None or [t, products] > known:
                    s["baskets"][key] = [t, products]
    elif event.source == "tickets":
        issue = data.get("issue_type")
        if isinstance(issue, str) and issue.strip():
            closed = parse_time(data.get("closed_at"), UTC) if data.get("closed_at") else None
            closed_ms = None if closed is None else _ms(closed)
            key = [t if closed_ms is None else max(t, closed_ms),
                   0 if closed_ms is None else 1, _digest(data)]
            tid = ticket_key(data, event.event_id)
            known = s["issues"].get(tid)
            if known is None or key > known[0]:
                s["issues"][tid] = [key, issue.strip()]
    return s


def _merge_channels(rows: dict[str, list[int]]) -> None:
    """Keep the first ``MAX_CHANNELS - 1`` channel names of a day, the rest summed under
    ``other`` (in place)."""
    names = sorted(n for n in rows if n != OTHER_CHANNEL)
    merged = rows.get(OTHER_CHANNEL, [0, 0, 0, 0, 0, 0])
    for name in names[MAX_CHANNELS - 1:]:
        merged = [a + b for a, b in zip(merged, rows.pop(name), strict=True)]
    rows[OTHER_CHANNEL] = merged


def record_moves(state: AnalysisState, alerts: list[dict[str, Any]]) -> None:
    """Keep the segment moves among ``alerts`` (the evaluations' new alerts, in decision
    order; a re-sent alert is already kept: same id, same move, not added twice)."""
    moves = state["moves"]
    for alert in alerts:
        if "group" not in alert or "new" not in alert or "event_time" not in alert:
            continue  # not a segment alert (a churn score alert has its own fields)
        at = parse_time(alert["event_time"], UTC)
        if at is None:
            continue
        move = [_ms(at), str(alert["group"]), alert.get("old"), str(alert["new"]),
                1 if alert.get("historical") else 0]
        if move not in moves:
            moves.append(move)


def prune(state: AnalysisState | None, as_of: datetime, zone: tzinfo,
          live_tickets: set[str] | None = None) -> None:
    """Drop what lies before the floors as of ``as_of`` (in place); ``live_tickets``: the
    keys of the profile's live tickets (issue types of other tickets are dropped)."""
    if state is None:
        return
    first_day = (as_of.astimezone(zone).date() - timedelta(days=DAYS_KEPT)).isoformat()
    days = state["days"]
    if days and min(days) < first_day:
        days = state["days"] = {d: v for d, v in days.items() if d >= first_day}
    for rows in days.values():
        if len(rows) > MAX_CHANNELS:
            _merge_channels(rows)
    if live_tickets is not None:
        state["issues"] = {k: v for k, v in state["issues"].items() if k in live_tickets}
    floor = _ms(as_of - timedelta(days=BASKET_DAYS))
    baskets = state["baskets"]
    if len(baskets) > MAX_BASKETS or any(v[0] <= floor for v in baskets.values()):
        kept = sorted((v[0], k) for k, v in baskets.items() if v[0] > floor)[-MAX_BASKETS:]
        state["baskets"] = {k: baskets[k] for k in sorted(k for _, k in kept)}
    move_floor = _ms(as_of - timedelta(days=DAYS_KEPT))
    moves = state["moves"]
    recent = [m for m in moves if m[0] > move_floor]
    state["moves"] = recent[-MAX_MOVES:]
