"""Fold one envelope of records (a batch from one partition of ``<prefix>events``) into the
customers' table values. Pure and synchronous: the caller looks values up, writes them back,
mirrors and sends; wall-clock time comes in as ``now`` (aware), used only for
``processing_time`` and the ``historical`` mark of alerts.

Time semantics (event time, per customer)
-----------------------------------------
Each customer has its own ``as_of``: the time of its last evaluation (``seg.evaluated_at``).
It moves only with the customer's own records, never with other customers' events, so a source
that runs ahead cannot evaluate anybody "in the future".

* **Event** at time ``t``: first the customer's due deadlines ``D <= t`` are applied, in event
  time, one evaluation each (a time-driven move is announced with cause ``timer:<D>``); then
  the event is folded and evaluated at ``as_of = max(as_of, t)``. The event is ``late`` when
  ``t`` is earlier than the customer's ``as_of`` before it.
* **Tick** ``{"deadline": D, "until": W}`` (sent by the worker's timer once its watermark ``W``
  has passed ``D``): the customer's deadlines ``<= W`` are applied, as above. A tick that finds
  them already applied (the customer's next event came first) changes nothing; a tick whose
  ``W`` is not after the last tick applied to the customer (a redelivery, or a repeat with the
  same watermark) applies nothing either (it only re-sends what it made).

So the outcome for a customer depends only on its own records and their order, not on how they
were batched into polls and envelopes, nor on when the timer ran: a tick that arrives after the
customer's later event finds nothing to do, one that arrives before it does what the event would
have done first. (Only an event later than the watermark, i.e. beyond the allowed lateness, can
find its deadlines already applied: it is then ``late``.)

**Coalescing** (the choice): none for decisions. Every new event and every deadline is its own
evaluation with its own alerts, whatever the batching. What is coalesced is storage: the table
write, the deadline and the mirror happen once per changed customer per envelope, from the
state after its last record.

**Redeliveries**: an event whose id is already applied is a duplicate; it re-sends the alerts
it decided (same ids), which the state remembers (``seg.recent``), and re-mirrors the current
state. Redis follows the state (see :mod:`custpulse.state.redis_mirror`), so a re-sent alert
never moves segment membership.

Outcomes are data: dead letters (with reason), table writes, mirrors, deadlines, counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from custpulse.processors import analysis_state, churn_fold
from custpulse.processors.churn_fold import ChurnConfig, Outputs, Scorer
from custpulse.processors.counting import apply_count
from custpulse.processors.lifecycle import (
    Base,
    Decision,
    decide,
    evaluated_at,
    next_deadline_of,
    resend,
)
from custpulse.processors.profile import (
    fold_profile,
    last_window_change,
    prune,
    retire_tickets,
)
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.times import aware_from_iso, to_iso

Value = dict[str, Any]
"""A ``profiles`` table value: ``{"dedupe": ..., "profile": ..., "seg": ..., "version": n}``,
plus ``"churn"`` (see churn_fold) and ``"ticked"`` (the watermark of the last tick applied).
``version`` counts the writes of the value (0 before the first); mirrors carry it, so an older
write never overwrites a newer one in Redis. ``"ana"``: what the analyses need of the customer
(:mod:`custpulse.processors.analysis_state`: daily counters, ticket issue types, baskets,
segment moves)."""

DEFAULT_FRESHNESS = timedelta(hours=24)
MAX_STEPS = 100_000
"""Deadlines applied for one customer in one go at most (a guard; each step moves strictly
forward in event time, so this bound is never reached by real histories)."""


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
    """What to mirror for one customer, as a snapshot taken at fold time: the profile view
    (as of the customer's ``as_of``), the dedupe counts, the value's ``version`` and the
    alerts to send (new ones and re-sent ones, in decision order)."""

    view: dict[str, Any]
    counts: dict[str, Any]
    version: int
    alerts: list[dict[str, Any]]
    updated_at: str
    """Processing time of the fold (ISO 8601 UTC, milliseconds)."""
    examples: list[dict[str, Any]] = field(default_factory=list)
    """Labelled churn examples to send (wire form; new and re-sent ones, in order)."""


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
    ticked: int = 0
    """Customers re-evaluated by tick records (each named customer with a stored value)."""
    event_times: list[datetime] = field(default_factory=list)
    """Event time of each accepted event, in order (for the event-lag metric)."""


@dataclass(slots=True)
class _Customer:
    value: Value
    dirty: bool = False
    mirror: bool = False
    resend: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    view: dict[str, Any] | None = None
    base: Base | None = None
    """The profile view of the customer's last evaluation, while no event was folded since."""


def empty_value() -> Value:
    return {"dedupe": None, "profile": None, "seg": None, "version": 0}


def value_deadline(value: Value, churn: ChurnConfig | None,
                   fresh_from: datetime | None = None) -> datetime | None:
    """The customer's next deadline: the segment state's, or the churn label's or re-score's
    if earlier (a re-score not before ``fresh_from``: the wall clock minus the freshness
    horizon; older ones are not applied, see :meth:`EnvelopeFold._advance`)."""
    return _deadline(value, churn, churn_fold.read(value) if churn is not None else None,
                     fresh_from)


def _deadline(value: Value, churn: ChurnConfig | None, state: churn_fold.ChurnState | None,
              fresh_from: datetime | None) -> datetime | None:
    """:func:`value_deadline` with the churn state already read."""
    times = [next_deadline_of(value.get("seg"))]
    if churn is not None:
        if state is not None:
            rescore = churn_fold.rescore_due(state, churn)
            if rescore is not None and fresh_from is not None and rescore < fresh_from:
                rescore = fresh_from
            times += [churn_fold.label_due(state, churn), rescore]
    known = [t for t in times if t is not None]
    return min(known) if known else None


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


def tick_users(record: dict[str, Any]) -> tuple[datetime, list[str]] | None:
    """``(until, user ids)`` of a tick record, or None when it is not a valid tick: the
    multi-customer form needs ``until`` and a list of user ids, the single-customer form
    ``user_id`` and ``deadline`` (``until`` defaults to it)."""
    deadline = aware_from_iso(record.get("deadline"))
    until = aware_from_iso(record.get("until"))
    if "users" in record:
        users = record["users"]
        if until is None or not isinstance(users, list) or not all(
                isinstance(u, str) for u in users):
            return None
        return until, users
    user_id = record.get("user_id")
    if deadline is None or not isinstance(user_id, str):
        return None
    return until or deadline, [user_id]


def tick_cause(until: datetime) -> str:
    """The ``by`` of the evaluations a tick made (to re-send them if the tick is redelivered)."""
    return f"tick:{until.astimezone(UTC).isoformat()}"


def timer_cause(deadline: datetime) -> str:
    """The ``cause`` of a move made by time alone at ``deadline`` (microseconds kept)."""
    return f"timer:{deadline.astimezone(UTC).isoformat()}"


class EnvelopeFold:
    """Folds envelopes; holds only configuration (the tag library, the dedupe memory bound,
    the freshness horizon of campaign triggers)."""

    def __init__(self, library: Any, max_ids: int,
                 freshness: timedelta = DEFAULT_FRESHNESS,
                 rewrite_duplicates: bool = False,
                 churn: ChurnConfig | None = None, zone: tzinfo = UTC) -> None:
        self.library = library
        self.zone = zone
        """The source zone: the calendar days of the analysis counters."""
        self.churn = churn
        """Churn labels and scores (:mod:`custpulse.processors.churn_fold`); None: off."""
        self._scorer: Scorer | None = None  # the model of the fold running
        self.max_ids = max_ids
        self.freshness = freshness
        self.rewrite_duplicates = rewrite_duplicates
        """With a store that survives a crash on its own (RocksDB), the local value may hold
        writes whose changelog send was never acknowledged: a customer with redelivered
        events is then written again, so the changelog gets what the offsets claim."""

    def fold(self, records: list[Any], lookup: Callable[[str], Value | None],
             now: datetime, scorer: Scorer | None = None) -> EnvelopeResult:
        """Apply ``records`` in order. ``lookup(user_id)`` gives the stored value (or None);
        values it returns are updated in place and come back in ``writes``. ``scorer``: the
        churn model to score with (None: none yet; see churn_fold)."""
        result = EnvelopeResult()
        self._scorer = scorer
        customers: dict[str, _Customer] = {}
        historical_before = now - self.freshness

        def customer(user_id: str, create: bool) -> _Customer | None:
            c = customers.get(user_id)
            if c is None:
                value = lookup(user_id)
                if value is None:
                    if not create:
                        return None
                    value = empty_value()
                if self.churn is not None:
                    churn_fold.of(value)  # read (or started afresh) once per envelope
                c = customers[user_id] = _Customer(value)
            return c

        for index, record in enumerate(records):
            if isinstance(record, dict) and record.get("kind") == "tick":
                users = tick_users(record)
                if users is None:
                    result.deadletters.append(DeadLetter(
                        "bad_canonical_event", "deadline", "not a valid tick", "events", index))
                    continue
                until, names = users
                by = tick_cause(until)
                for user_id in names:
                    c = customer(user_id, create=False)
                    if c is None:
                        continue
                    result.ticked += 1
                    out = Outputs([], [])
                    ticked = aware_from_iso(c.value.get("ticked"))
                    if ticked is None or until > ticked:
                        # Applied once: a redelivered tick (or a repeated one with the same
                        # watermark) applies nothing more, though events that arrived late in
                        # between may have made new deadlines before its watermark: those wait
                        # for the customer's next record, as without the redelivery.
                        self._advance(user_id, c, until, by, now, historical_before, out)
                        c.value["ticked"] = until.isoformat()
                        c.dirty = True
                    # maybe a redelivered tick: what it made before goes out again
                    c.resend.append(by)
                    _resend(c, user_id, by)
                    self._keep(c, by, out)
                continue
            try:
                if not isinstance(record, dict):
                    raise TypeError("not an object")
                event = CanonicalEvent.from_wire(record)
            except (ValueError, KeyError, TypeError, AttributeError):
                result.deadletters.append(DeadLetter(
                    "bad_canonical_event", None, "not a canonical event", "events", index))
                continue
            c = customer(event.user_id, create=True)
            assert c is not None
            self._event(event, index, c, now, historical_before, result)

        for user_id, c in customers.items():
            value = c.value
            seg = value.get("seg")
            if c.dirty:
                at = evaluated_at(seg)
                if at is not None:
                    prune(value["profile"], at)  # memory only: views ignore older buckets
                    profile = value["profile"]
                    live = set(profile["service"]["tickets"]) if profile else set()
                    analysis_state.prune(value.get("ana"), at, self.zone, live)
                if self.churn is not None:
                    churn_fold.finish(value["churn"], c.view, scorer, _next_write(value))
                value["version"] = int(value.get("version") or 0) + 1
                result.writes[user_id] = value
                deadline = _deadline(value, self.churn, value.get("churn"), historical_before)
                if deadline is not None:
                    result.deadlines[user_id] = deadline
            if c.mirror or c.resend:
                if c.view is None:
                    at = evaluated_at(seg) or now
                    c.view = decide(value["profile"], seg, at, library=self.library,
                                    user_id=user_id, cause="mirror", event_time=at,
                                    processing_time=now, late=False).view
                dedupe = value["dedupe"] or {"by_source": {}}
                counts = {"by_source": dict(dedupe["by_source"]),
                          "last_event_time": dedupe.get("last_event_time")}
                view = dict(c.view)
                if self.churn is not None:
                    view.update(churn_fold.state_fields(value["churn"], scorer is not None))
                result.mirrors[user_id] = Mirror(view, counts, int(value.get("version") or 0),
                                                 c.alerts, to_iso(now), c.examples)
        return result

    def _event(self, event: CanonicalEvent, index: int, c: _Customer, now: datetime,
               historical_before: datetime, result: EnvelopeResult) -> None:
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
            # A redelivery: re-send what this event decided (same alert ids, in place, in
            # decision order), re-mirror.
            result.duplicates[event.source] += 1
            c.resend.append(event.event_id)
            _resend(c, event.user_id, event.event_id)
            if self.rewrite_duplicates:
                c.dirty = True
            return
        result.accepted[event.source] += 1
        c.dirty = c.mirror = True
        moment = event.event_time
        result.event_times.append(moment)
        kind = ops_signal(event)
        if kind is not None:
            result.ops.append((kind, moment))
        out = Outputs([], [])
        # Time first: deadlines up to this event's time, in event time.
        self._advance(event.user_id, c, moment, event.event_id, now, historical_before, out)
        seg = value.get("seg")
        previous = evaluated_at(seg)
        late = previous is not None and moment < previous
        as_of = moment if previous is None or moment > previous else previous
        value["profile"] = fold_profile(value["profile"], event, None)
        value["ana"] = analysis_state.fold_event(value.get("ana"), event, self.zone)
        c.base = None  # the profile changed
        decision = decide(value["profile"], seg, as_of, library=self.library,
                          user_id=event.user_id, cause=event.event_id, event_time=moment,
                          processing_time=now, late=late,
                          historical_before=historical_before, write=_next_write(value))
        _apply(c, decision)
        if self.churn is not None:
            state = value["churn"]
            churn_fold.observe(state, event.user_id, decision.view, as_of, self.churn, out)
            churn_fold.score(state, event.user_id, decision.view, self._scorer, self.churn, out,
                             at=as_of, cause=event.event_id, rule_version=self.library.version,
                             event_time=moment, processing_time=now, late=late,
                             historical=moment < historical_before)
        retire_tickets(value["profile"], as_of)
        self._keep(c, event.event_id, out)

    def _keep(self, c: _Customer, by: str, out: Outputs) -> None:
        """Queue the churn outputs of the record ``by`` and remember them for re-sending."""
        if self.churn is None or not (out.examples or out.alerts):
            return
        churn_fold.remember(c.value["churn"], by, _next_write(c.value), out)
        _moves(c.value, out.alerts)
        c.examples.extend(out.examples)
        c.alerts.extend(out.alerts)
        c.mirror = True  # what it made goes out with the customer's mirror
    def _advance(self, user_id: str, c: _Customer, until: datetime, by: str, now: datetime,
                 historical_before: datetime, out: Outputs) -> bool:
        """Apply the customer's deadlines ``<= until``, one evaluation each, in event time:
        the segment rules' (past those no rule reads), the churn label deadline (its positive,
        then an evaluation at it) and the churn re-score deadline. Returns whether any was
        applied (a score of the customer as it is, for a new model, does not count: a tick
        that only did that may be a redelivery and re-sends what it made before)."""
        value = c.value
        seg = value.get("seg")
        if seg is None:
            return False
        if "next_deadline" not in seg or seg.get("rule_version") != self.library.version:
            # a value written before deadlines were stored, or under other rules: find it
            at = evaluated_at(seg)
            if at is None:
                return False
            seg["next_deadline"] = decide(value["profile"], seg, at, library=self.library,
                                          user_id=user_id, cause="rebuild", event_time=at,
                                          processing_time=now, late=False).seg["next_deadline"]
        applied = False
        churn = self.churn
        state = value["churn"] if churn is not None else None
        for _ in range(MAX_STEPS):
            seg = value["seg"]
            deadline = next_deadline_of(seg)
            previous = evaluated_at(seg)
            if deadline is not None and (deadline > until or (
                    previous is not None and deadline <= previous)):
                deadline = None
            elif deadline is not None:
                deadline = self._skip(c, deadline, previous, until)
            label = rescore = None
            if state is not None and churn is not None:
                label = churn_fold.label_due(state, churn)
                if label is not None and label > until:
                    label = None
                if self._scorer is not None:
                    rescore = churn_fold.rescore_due(state, churn)
                    if rescore is not None and rescore < historical_before:
                        rescore = historical_before  # a replay: re-scored once at the present
                    if rescore is not None and (rescore > until or (
                            previous is not None and rescore <= previous)):
                        rescore = None
                    if previous is not None and previous <= until and churn_fold.needs_score(
                            state, self._scorer.version):
                        rescore = previous  # never scored with this model: score it as it is
            due = [t for t in (deadline, label, rescore) if t is not None]
            if not due:
                break
            deadline = min(due)
            if label is not None and label == deadline:
                assert state is not None and churn is not None
                churn_fold.expire(state, user_id, label, churn, out)
                c.dirty = applied = True
                if previous is not None and label <= previous:
                    continue  # (a value written otherwise) labelled; nothing to evaluate
            elif previous is not None and deadline == previous:
                # a score of the customer as it is: no segment can move
                self._score(user_id, c, previous, now, historical_before, out)
                c.dirty = True
                continue
            decision = decide(value["profile"], seg, deadline, library=self.library,
                              user_id=user_id, cause=timer_cause(deadline),
                              event_time=deadline, processing_time=now, late=False,
                              historical_before=historical_before, by=by,
                              write=_next_write(value), base=c.base)
            _apply(c, decision)
            if state is not None and churn is not None:
                churn_fold.score(state, user_id, decision.view, self._scorer, churn, out,
                                 at=deadline, cause=timer_cause(deadline),
                                 rule_version=self.library.version, event_time=deadline,
                                 processing_time=now, late=False,
                                 historical=deadline < historical_before)
            retire_tickets(value["profile"], deadline)
            c.dirty = True
            applied = True
        return applied

    def _score(self, user_id: str, c: _Customer, at: datetime, now: datetime,
               historical_before: datetime, out: Outputs) -> None:
        """Score the customer as of its last evaluation ``at`` (a new model; nothing else
        changes: the view is the one of that evaluation)."""
        assert self.churn is not None
        view = c.view
        if view is None or c.base is None or c.base.at != at:
            decision = decide(c.value["profile"], c.value["seg"], at, library=self.library,
                              user_id=user_id, cause="score", event_time=at,
                              processing_time=now, late=False)
            view = decision.view
            c.view, c.base = view, decision.base
        churn_fold.score(c.value["churn"], user_id, view, self._scorer, self.churn, out,
                         at=at, cause=f"score:{to_iso(at)}:{self._scorer_version()}",
                         rule_version=self.library.version, event_time=at, processing_time=now,
                         late=False, historical=at < historical_before)
        c.mirror = True

    def _scorer_version(self) -> int:
        return self._scorer.version if self._scorer is not None else 0

    def _skip(self, c: _Customer, deadline: datetime, previous: datetime | None,
              until: datetime) -> datetime:
        """The deadline to evaluate next, from the due ``deadline``: past the ones at which
        only a window no rule reads changes (they change no segment, tag or score: evaluating
        them can announce nothing), when the last evaluation (``c.base``, at ``previous``,
        profile unchanged since) tells when the next one that matters is. When none that
        matters is due by ``until``, the last window change by ``until`` is evaluated, so the
        customer ends as of the same moment as stepping through each would leave it."""
        base = c.base
        if base is None or previous is None or base.at != previous:
            return deadline
        relevant = base.next_relevant
        if relevant is not None and relevant <= until:
            return relevant if relevant > deadline else deadline
        last = last_window_change(c.value["profile"], previous, until)
        return last if last is not None and last > deadline else deadline


def _next_write(value: Value) -> int:
    """The version of the table write that will carry this envelope's decisions."""
    return int(value.get("version") or 0) + 1


def _resend(c: _Customer, user_id: str, cause: str) -> None:
    """Queue, in place, the alerts (and churn examples) remembered for ``cause`` (a
    redelivered record)."""
    for alert in resend(c.value.get("seg"), cause, user_id):
        if alert not in c.alerts:
            c.alerts.append(alert)
    again = churn_fold.resend(churn_fold.read(c.value), cause, user_id)
    for alert in again.alerts:
        if alert not in c.alerts:
            c.alerts.append(alert)
    for example in again.examples:
        if example not in c.examples:
            c.examples.append(example)


def _apply(c: _Customer, decision: Decision) -> None:
    """Keep what an evaluation decided: segment state, view, alerts."""
    c.value["seg"] = decision.seg
    c.view = decision.view
    c.base = decision.base
    c.alerts.extend(decision.alerts)
    _moves(c.value, decision.alerts)
    c.mirror = True


def _moves(value: Value, alerts: list[dict[str, Any]]) -> None:
    """Keep the segment moves of new alerts in the analysis state."""
    if alerts:
        ana = value.get("ana")
        if ana is None:
            ana = value["ana"] = analysis_state.new_state()
        analysis_state.record_moves(ana, alerts)
