"""Fold one envelope of records (a batch from one partition of ``<prefix>events``) into the
customers' table values. Pure and synchronous: the caller looks values up, writes them back,
mirrors and sends; time comes in as ``now`` (wall clock, aware) and the watermark object.

Per record:

* canonical event: dedupe (:func:`~custpulse.processors.counting.apply_count`), then the
  profile fold (:func:`~custpulse.processors.profile.fold_profile`) as of the watermark;
* tick: re-evaluation of one customer at its deadline (event time), exactly as before
  batching: a tick is evaluated on its own, after the customer's pending events.

Per customer and envelope (the throughput design): the segment evaluation, the table write
and the mirror happen **once**, after the customer's last event in the envelope. Transitions
within one envelope are coalesced: the alert's ``cause`` is the customer's last new event in
the envelope, ``event_time`` is that event's time and ``late`` is true if any of them arrived
out of order. An envelope is an immutable Kafka message, so a redelivered envelope gives the
same grouping, the same causes and the same alert ids; its events are then duplicates, and a
duplicate whose id is a remembered cause re-sends that cause's alerts.

Outcomes are data: dead letters (with reason), table writes, mirrors, deadlines, counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from custpulse.processors.clock import Watermark
from custpulse.processors.counting import apply_count
from custpulse.processors.lifecycle import Decision, decide, evaluated_at, resend
from custpulse.processors.profile import fold_profile, prune
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.segments import TagLibrary
from custpulse.schemas.times import parse_time

Value = dict[str, Any]
"""A ``profiles`` table value: ``{"dedupe": ..., "profile": ..., "seg": ...}``."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record of the envelope that cannot be applied. ``index``: its place in the envelope;
    ``payload``: what may be shown (canonical events carry masked data only)."""

    code: str
    field: str | None
    message: str
    source: str
    index: int
    payload: Any = None


@dataclass(slots=True)
class Mirror:
    """What to mirror for one customer: the value written, the profile view, the alerts."""

    value: Value
    view: dict[str, Any]
    alerts: list[dict[str, Any]]


@dataclass
class EnvelopeResult:
    writes: dict[str, Value] = field(default_factory=dict)
    mirrors: dict[str, Mirror] = field(default_factory=dict)
    deadlines: dict[str, datetime] = field(default_factory=dict)
    deadletters: list[DeadLetter] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    ops: list[tuple[str, datetime]] = field(default_factory=list)
    """``(kind, event time)`` signals for :class:`~custpulse.processors.ops.OpsMonitor`."""


@dataclass(slots=True)
class _Customer:
    value: Value
    dirty: bool = False
    pending: bool = False
    cause: str = ""
    event_time: datetime | None = None
    late: bool = False
    resend: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    view: dict[str, Any] | None = None
    mirror: bool = False


def empty_value() -> Value:
    return {"dedupe": None, "profile": None, "seg": None}


def ops_signal(event: CanonicalEvent) -> str | None:
    """The ops-monitor kind an accepted event counts as (complaint, add to cart, order)."""
    data = event.data
    if event.source == "tickets" and (
            data.get("is_complaint") is True or data.get("issue_type") == "complaint"):
        return "complaint"
    if event.source == "behavior" and data.get("behavior_type") == "add_to_cart":
        return "add_to_cart"
    if event.source == "orders" and data.get("status") not in ("returned", "refunded",
                                                                 "cancelled"):
        return "order"
    return None


class EnvelopeFold:
    """Folds envelopes; holds only configuration and the (shared) watermark."""

    def __init__(self, library: TagLibrary, clock: Watermark, max_ids: int) -> None:
        self.library = library
        self.clock = clock
        self.max_ids = max_ids

    def fold(self, records: list[Any], lookup: Callable[[str], Value | None],
             now: datetime) -> EnvelopeResult:
        """Apply ``records`` in order. ``lookup(user_id)`` gives the stored value (or None);
        values it returns may be updated in place and come back in ``writes``."""
        result = EnvelopeResult()
        customers: dict[str, _Customer] = {}

        def customer(user_id: str, create: bool) -> _Customer | None:
            c = customers.get(user_id)
            if c is None:
                value = lookup(user_id)
                if value is None:
                    if not create:
                        return None
                    value = empty_value()
                c = customers[user_id] = _Customer(value)
            return c

        for index, record in enumerate(records):
            if isinstance(record, dict) and record.get("kind") == "tick":
                deadline = parse_time(record.get("deadline"), UTC)
                if deadline is None or not isinstance(record.get("user_id"), str):
                    result.deadletters.append(DeadLetter(
                        "bad_canonical_event", "deadline", "not a valid tick", "events", index))
                    continue
                c = customer(record["user_id"], create=False)
                if c is not None:
                    if c.pending:
                        self._evaluate(record["user_id"], c, now, result)
                    self._tick(record["user_id"], c, deadline, now, result)
                continue
            try:
                if not isinstance(record, dict):
                    raise TypeError("not an object")
                event = CanonicalEvent.from_wire(record)
            except (ValueError, KeyError, TypeError, AttributeError):
                result.deadletters.append(DeadLetter(
                    "bad_canonical_event", None, "not a canonical event", "events", index))
                continue
            self._event(event, index, customer(event.user_id, create=True), now, result)

        for user_id, c in customers.items():
            if c.pending:
                self._evaluate(user_id, c, now, result)
            seg = c.value.get("seg")
            for cause in c.resend:
                for alert in resend(seg, cause):
                    if alert not in c.alerts:
                        c.alerts.append(alert)
            if c.dirty:
                result.writes[user_id] = c.value
            if c.mirror or c.resend:
                if c.view is None:
                    at = evaluated_at(seg) or c.event_time or now
                    c.view = decide(c.value["profile"], seg, at, library=self.library,
                                    user_id=user_id, cause="mirror", event_time=at,
                                    processing_time=now, late=False).view
                result.mirrors[user_id] = Mirror(c.value, c.view, c.alerts)
        return result

    def _event(self, event: CanonicalEvent, index: int, c: _Customer | None, now: datetime,
               result: EnvelopeResult) -> None:
        assert c is not None
        value = c.value
        state, verdict = apply_count(value["dedupe"], event, self.max_ids)
        value["dedupe"] = state
        if verdict == "beyond_horizon":
            result.deadletters.append(DeadLetter(
                "beyond_dedupe_horizon", "event_id",
                "event is older than the ids remembered for this customer",
                event.source, index, event.to_wire()))
            return
        if verdict == "duplicate":
            # A redelivery: re-send what this event decided (same alert ids), re-mirror.
            result.duplicates[event.source] += 1
            c.resend.append(event.event_id)
            return
        result.accepted[event.source] += 1
        previous = evaluated_at(value.get("seg"))
        late = self.clock.is_late(event.event_time, now) or (
            previous is not None and event.event_time <= previous)
        self.clock.observe(event.event_time)
        # pruning (memory only: views ignore buckets outside their windows) waits for the
        # customer's evaluation, once per envelope
        value["profile"] = fold_profile(value["profile"], event, None)
        c.pending = c.dirty = c.mirror = True
        c.cause = event.event_id
        c.event_time = event.event_time
        c.late = c.late or late
        kind = ops_signal(event)
        if kind is not None:
            result.ops.append((kind, event.event_time))

    def _evaluate(self, user_id: str, c: _Customer, now: datetime,
                  result: EnvelopeResult) -> None:
        """One evaluation for the customer's new events of this envelope."""
        value = c.value
        seg = value.get("seg")
        previous = evaluated_at(seg)
        as_of = max(x for x in (self.clock.current(now), previous, c.event_time)
                    if x is not None)
        assert c.event_time is not None
        prune(value["profile"], as_of)
        decision = decide(value["profile"], seg, as_of, library=self.library, user_id=user_id,
                          cause=c.cause, event_time=c.event_time, processing_time=now,
                          late=c.late)
        _apply(user_id, c, decision, result)
        c.pending = False
        c.late = False

    def _tick(self, user_id: str, c: _Customer, deadline: datetime, now: datetime,
              result: EnvelopeResult) -> None:
        value = c.value
        seg = value.get("seg")
        cause = f"timer:{deadline.astimezone(UTC).isoformat()}"
        previous = evaluated_at(seg)
        if previous is not None and deadline <= previous:
            # Already evaluated at or after this deadline (maybe by this very tick before a
            # crash): re-send what it decided, if anything.
            if resend(seg, cause):
                c.resend.append(cause)
            return
        decision = decide(value["profile"], seg, deadline, library=self.library,
                          user_id=user_id, cause=cause, event_time=deadline,
                          processing_time=now, late=False)
        _apply(user_id, c, decision, result)


def _apply(user_id: str, c: _Customer, decision: Decision, result: EnvelopeResult) -> None:
    """Keep what an evaluation decided: segment state, view, alerts, next deadline."""
    c.value["seg"] = decision.seg
    c.view = decision.view
    c.alerts.extend(decision.alerts)
    c.dirty = c.mirror = True
    if decision.deadline is not None:
        result.deadlines[user_id] = decision.deadline
