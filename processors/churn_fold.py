"""The churn part of a customer's table value: labels made in the fold, the live score, its
risk band and the alerts of band changes. Pure: the model is an argument (``scorer``), like time.

The state, kept in the ``profiles`` table value as ``value["churn"]`` (JSON-ready)::

    {"pending": <LabelState | None>,   # the one snapshot waiting for its label
     "p": <probability | None>, "mv": <model version | None>, "at": "<iso as_of of the score>",
     "band": "high" | "low" | None, "factors": [[feature, contribution], ...],
     "sent": [{"w": <write version>, "by": "<record>",
               "ex": [[label, scored_at, labelled_at, [features]], ...],
               "al": [<alert>, ...]}, ...]}

**Labels** (see :mod:`custpulse.processors.churn`): every evaluation of an event takes a
snapshot when none is pending and the customer is active and not past the horizon; a return
(the last activity moves past the snapshot's) makes a negative at that evaluation; the
horizon deadline (last activity + horizon) makes a positive labelled exactly there, applied by
the fold before anything at the same instant, like every deadline. The label deadline joins
the customer's next deadline (:func:`deadline`), so a replay labels as live operation did,
whatever the batching. Labels are decided at arrival, like alerts: the same arrival order gives
the same examples (an event older than the customer's ``as_of`` counts as a return at that
``as_of``); a customer's labels are made in increasing ``labelled_at``.

**Scores** are computed at every evaluation the fold makes (each event, each deadline a rule
needs, and a re-score deadline ``rescore_days`` after the last score while the customer is
not churned) with the model version the worker has then; ``at`` says as of when. So a score
is at most ``rescore_days`` of event time old, and a dormant customer's rising risk is seen
within that. A re-score deadline older than the freshness horizon of the wall clock (a
replay of history, whose alerts are historical and trigger nothing) is moved to that
horizon: a replayed customer is scored at its events and rule deadlines, and re-scored once
the replay reaches the present. Scores and band alerts depend on the model version in use
(processing time) and on which evaluations were made: they are re-sent identically after a
redelivery, but unlike labels they are not a function of the events alone. Until the model
has learned its minimum of labels (or before a worker has any model) there is no
probability: ``p`` is None and the profile says ``churn_status`` ``learning`` (or
``no_model``), never a made-up 0.5. A worker without a model keeps the last score it stored.

**Band**: ``high`` when ``p >= threshold``, else ``low``. Entering or leaving ``high`` is an
alert of group ``churn`` (``old``/``new`` the bands; the first score is an alert only when it is
``high``), with the same id rules as segment alerts (cause: the event, or ``timer:<deadline>``).

**Re-sending**: the examples and churn alerts of the customer's last
:data:`~custpulse.processors.lifecycle.RECENT_WRITES` table writes are remembered under the
record that made them (``by``), so a redelivered record re-sends the same ones (the trainer
drops repeated examples by their ``labelled_at``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from custpulse.processors.alerts import segment_alert
from custpulse.processors.churn import (
    FEATURES,
    HORIZON_DAYS,
    features,
    label_deadline,
    label_step,
    last_active,
    snapshot,
)
from custpulse.processors.lifecycle import RECENT_WRITES
from custpulse.schemas.times import aware_from_iso, to_iso

ChurnState = dict[str, Any]
GROUP = "churn"
HIGH, LOW = "high", "low"
DEFAULT_THRESHOLD = 0.5
TOP_FACTORS = 3


class Scorer(Protocol):
    """What the fold scores with (:class:`~custpulse.processors.churn_model.ChurnModel`)."""

    version: int

    def score(self, x: dict[str, float]) -> float | None: ...

    def explain(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]: ...


DEFAULT_RESCORE_DAYS = 7.0


@dataclass(frozen=True)
class ChurnConfig:
    """``horizon_days``: days of event time without activity that make a churned customer;
    ``threshold``: the probability from which a customer is in band ``high``;
    ``rescore_days``: a scored customer not yet churned is scored again at most this many days
    of event time after its last score, events or not (0: only when the rules evaluate it)."""

    horizon_days: float = HORIZON_DAYS
    threshold: float = DEFAULT_THRESHOLD
    rescore_days: float = DEFAULT_RESCORE_DAYS


@dataclass
class Outputs:
    """What the churn steps of one customer made in a fold: examples to send (wire form) and
    alerts (segment alert form, group ``churn``)."""

    examples: list[dict[str, Any]]
    alerts: list[dict[str, Any]]


SENT_MAX_ENTRIES = 200
"""A bound on remembered outputs per customer (besides the last ``RECENT_WRITES`` writes):
beyond it those of the oldest writes are forgotten (never those of the write being made)."""


def empty() -> ChurnState:
    return {"pending": None, "p": None, "mv": None, "at": None, "band": None, "factors": [],
            "sent": []}


def _readable(state: Any) -> bool:
    """Whether ``state`` has the shape this module writes (values come from a changelog that
    another version, or damage, may have written: what is not readable is started afresh)."""
    if not isinstance(state, dict):
        return False
    pending = state.get("pending")
    if pending is not None:
        if not isinstance(pending, dict) or aware_from_iso(pending.get("at")) is None or (
                aware_from_iso(pending.get("active")) is None):
            return False
        x = pending.get("features")
        if not isinstance(x, dict) or set(x) != _NAMES or not all(
                type(v) is float and math.isfinite(v) for v in x.values()):
            return False
    p, mv = state.get("p"), state.get("mv")
    if p is not None and not (type(p) is float and 0.0 <= p <= 1.0):
        return False
    if mv is not None and type(mv) is not int:
        return False
    if state.get("at") is not None and aware_from_iso(state.get("at")) is None:
        return False
    if state.get("band") not in (None, HIGH, LOW):
        return False
    factors, sent = state.get("factors"), state.get("sent")
    if not isinstance(factors, list) or not all(
            isinstance(f, list) and len(f) == 2 and isinstance(f[0], str)
            and type(f[1]) in (int, float) for f in factors):
        return False
    return isinstance(sent, list) and all(
        isinstance(e, dict) and type(e.get("w")) is int and isinstance(e.get("by"), str)
        and isinstance(e.get("ex"), list) and isinstance(e.get("al"), list)
        and all(isinstance(x, list) and len(x) == 4 and isinstance(x[3], list)
                and len(x[3]) == len(FEATURES) for x in e["ex"])
        for e in sent)


_NAMES = frozenset(FEATURES)


def read(value: Mapping[str, Any]) -> ChurnState | None:
    """The churn state of a table value, None when it has none or an unreadable one."""
    state = value.get("churn")
    return state if _readable(state) else None


def of(value: dict[str, Any]) -> ChurnState:
    """The churn state of a table value, created empty in it when absent or unreadable (the
    fold calls this once per customer and envelope before any other function here)."""
    state = value.get("churn")
    if state is None or not _readable(state):
        state = value["churn"] = empty()
    return state


def deadline(value: Mapping[str, Any], config: ChurnConfig) -> datetime | None:
    """When the pending snapshot of the value becomes a positive (None: nothing pending)."""
    state = read(value)
    return None if state is None else label_due(state, config)


def unscored(value: Mapping[str, Any], version: int) -> bool:
    """Whether the customer has no probability and was not scored with model ``version`` or a
    later one (a new model, or the first, may score it now)."""
    state = read(value)
    return True if state is None else needs_score(state, version)


def rescore_deadline(value: Mapping[str, Any], config: ChurnConfig) -> datetime | None:
    """When the customer is scored again with no event: ``rescore_days`` after its last score,
    while it has a probability and is not churned (a snapshot is pending); else None."""
    state = read(value)
    return None if state is None else rescore_due(state, config)


# The same on a state already read (by :func:`of`), for the fold's inner loop.

def label_due(state: ChurnState, config: ChurnConfig) -> datetime | None:
    return label_deadline(state["pending"], config.horizon_days)


def needs_score(state: ChurnState, version: int) -> bool:
    mv = state["mv"]
    return state["p"] is None and (mv is None or mv < version)


def rescore_due(state: ChurnState, config: ChurnConfig) -> datetime | None:
    if config.rescore_days <= 0 or state["p"] is None or state["pending"] is None:
        return None
    at = aware_from_iso(state["at"])
    return None if at is None else at + timedelta(days=config.rescore_days)


def expire(state: ChurnState, user_id: str, until: datetime, config: ChurnConfig,
           out: Outputs) -> bool:
    """Apply the label deadline if it is ``<= until`` (a positive). Returns whether it was."""
    pending, example = label_step(state.get("pending"), user_id, until=until,
                                  horizon_days=config.horizon_days)
    if example is None:
        return False
    state["pending"] = pending
    out.examples.append(example.to_wire())
    return True


def observe(state: ChurnState, user_id: str, view: dict[str, Any], at: datetime,
            config: ChurnConfig, out: Outputs) -> None:
    """After the evaluation of an event as of ``at`` (``view``: the profile view then): a
    return labels the pending snapshot negative, then a new snapshot is taken if none is
    pending. Deadlines ``<= at`` were applied before (:func:`expire`)."""
    pending, example = label_step(state.get("pending"), user_id, until=at,
                                  active_at=last_active(view),
                                  horizon_days=config.horizon_days)
    if example is not None:
        out.examples.append(example.to_wire())
    state["pending"] = snapshot(pending, view, at, config.horizon_days)


def score(state: ChurnState, user_id: str, view: dict[str, Any], scorer: Scorer | None,
          config: ChurnConfig, out: Outputs, *, at: datetime, cause: str, rule_version: int,
          event_time: datetime, processing_time: datetime, late: bool,
          historical: bool) -> None:
    """Score the evaluation's ``view`` (as of ``at``) and announce a band change (its alert
    has the evaluation's cause, event time and flags, like a segment alert). Without a scorer
    (the worker has no model yet) the stored score stays."""
    if scorer is None:
        return
    x = features(view)
    p = scorer.score(x)
    state["p"] = None if p is None else float(p)
    state["mv"] = int(scorer.version)
    state["at"] = at.astimezone(UTC).isoformat()  # microseconds: deadlines are exact
    old = state.get("band")
    new = None if p is None else (HIGH if p >= config.threshold else LOW)
    if new is None:
        return
    state["band"] = new
    if new != old and HIGH in (old, new):
        out.alerts.append(segment_alert(
            user_id=user_id, group=GROUP, old=old, new=new, rule_version=rule_version,
            traits={"churn_probability": round(p, 6), "churn_model_version": scorer.version,
                    "churn_threshold": config.threshold},
            cause=cause, event_time=event_time, processing_time=processing_time, late=late,
            historical=historical))


def finish(state: ChurnState, view: dict[str, Any] | None, scorer: Scorer | None,
           write: int) -> None:
    """At the end of the fold for a customer written as version ``write``: the top factors of
    its score (once per write, from the view of its last evaluation), and the remembered
    outputs of writes older than the last ``RECENT_WRITES`` forgotten."""
    if scorer is not None and view is not None and state.get("p") is not None and (
            state.get("mv") == scorer.version):
        state["factors"] = [[name, round(value, 6)] for name, value in
                            scorer.explain(features(view), TOP_FACTORS)]
    elif state.get("p") is None:
        state["factors"] = []
    floor = write - RECENT_WRITES
    kept = [entry for entry in state["sent"] if entry["w"] > floor]
    if len(kept) > SENT_MAX_ENTRIES:  # the oldest writes' first; this write's are all kept
        current = [entry for entry in kept if entry["w"] >= write]
        older = [entry for entry in kept if entry["w"] < write]
        kept = older[len(older) - max(0, SENT_MAX_ENTRIES - len(current)):] + current
    state["sent"] = kept


def remember(state: ChurnState, by: str, write: int, outputs: Outputs) -> None:
    """Keep what the record ``by`` made (examples, churn alerts) for re-sending. Examples are
    kept compact: ``[label, scored_at, labelled_at, [features in FEATURES order]]``."""
    if not outputs.examples and not outputs.alerts:
        return
    compact = [[e["label"], e["scored_at"], e["labelled_at"],
                [e["features"][name] for name in FEATURES]] for e in outputs.examples]
    state["sent"].append({"w": write, "by": by, "ex": compact, "al": list(outputs.alerts)})


def resend(state: Mapping[str, Any] | None, by: str, user_id: str) -> Outputs:
    """The examples and churn alerts the record ``by`` made (a redelivery re-sends them);
    ``state`` read by :func:`of` (or None)."""
    out = Outputs([], [])
    if state is None:
        return out
    for entry in state["sent"]:
        if entry["by"] == by:
            out.examples.extend(
                {"user_id": user_id, "features": dict(zip(FEATURES, values, strict=True)),
                 "label": label, "scored_at": scored, "labelled_at": labelled}
                for label, scored, labelled, values in entry.get("ex") or [])
            out.alerts.extend(entry.get("al") or [])
    return out


def profile_fields(state: Mapping[str, Any] | None, has_model: bool) -> dict[str, Any]:
    """The churn fields of the profile hash (see docs/contract.md)."""
    return state_fields(state if state is not None and _readable(state) else empty(),
                        has_model)


def _shown(text: Any) -> str | None:
    """A stored time as the profile shows times (ISO 8601 UTC, milliseconds, like as_of)."""
    moment = aware_from_iso(text)
    return None if moment is None else to_iso(moment)


def state_fields(state: Mapping[str, Any], has_model: bool) -> dict[str, Any]:
    """:func:`profile_fields` of a state already read (by :func:`of`)."""
    p = state.get("p")
    if p is not None:
        status = "scored"
    elif state.get("mv") is not None or has_model:
        status = "learning"
    else:
        status = "no_model"
    return {"churn_probability": None if p is None else round(float(p), 6),
            "churn_model_version": state.get("mv"),
            "churn_band": state.get("band") if p is not None else None,
            "churn_factors": [[n, v] for n, v in state.get("factors") or []],
            "churn_scored_at": _shown(state.get("at")),
            "churn_status": status}


