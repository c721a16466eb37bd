"""Churn: features from the live profile, and labels from the stream. Pure (no I/O, no clock).

**Features** (:func:`features`) are read from a profile view (:func:`custpulse.processors.profile.
view_and_changes`) as of the scoring time, so they hold only what is known at that event time:
a view as of ``t`` counts no event later than ``t``. Every feature is a finite float (missing
values have a stated stand-in and an ``*_known`` flag where the absence itself says something),
in the units its name says:

=========================  ======================================================================
``recency_days``           days since the last purchase (none: days since registering, else 0)
``frequency_30d``          purchases in the last 30 days
``frequency_90d``          purchases in the last 90 days
``frequency_trend``        ``frequency_30d`` minus the mean 30 days of the 60 days before it
``monetary_30d``           spend in the last 30 days, CNY
``monetary_trend``         ``monetary_30d`` minus the mean 30 days of the 60 days before it, CNY
``interpurchase_days``     mean days between purchases (fewer than two: 0, see ``..._known``)
``orders_total``           purchases ever
``avg_order_value``        mean amount, CNY (none priced: 0)
``visits_7d``              active hours in the last 7 days
``visits_30d``             active hours in the last 30 days
``channels_30d``           channels used in the last 30 days
``inactive_days``          days since the last activity of any kind (none: as ``recency_days``)
``funnel_browse``          browse events ever
``funnel_add_to_cart``     add-to-cart events ever
``tickets_total``          service tickets ever
``open_complaints``        complaints open at the scoring time
``satisfaction``           mean satisfaction (1-5; none rated: 0, see ``..._known``)
``return_rate``            returns and refunds per purchase
``member_rank``            0 regular, 1 silver, 2 gold, 3 platinum, 4 diamond (unknown: 0)
``tenure_days``            days since registering (unknown: 0)
=========================  ======================================================================

**Labels** (:func:`label_step`): a scored snapshot (the features at a scoring time ``s``, with
``a``, the customer's last activity at or before ``s``) is *pending* until either

* the customer is active again (an order or any activity) at a time ``t`` with
  ``s + 1 day <= t < a + H``: a **negative** example (the customer came back), labelled at
  ``t`` (:data:`RETURN_AFTER`; activity sooner after ``s``, or from before ``s`` arriving
  late, moves ``a`` instead); or
* event time reaches ``a + H`` with no activity after ``a``: a **positive** example (churned),
  labelled at ``a + H`` exactly. ``H`` is the churn horizon (default 90 days of event time).

A deadline and an event at the same instant: the deadline is applied first (as the fold does),
so activity exactly at ``a + H`` comes after a positive label. One snapshot is pending per
customer: scoring again while one is pending keeps the older one (memory is one snapshot per
customer). The labels are a function of the customer's events and the times they are scored
at, not of arrival: a replay labels as live operation did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from custpulse.schemas.times import aware_from_iso

HORIZON_DAYS = 90.0
"""Default churn horizon: days of event time without an order or any activity."""

RETURN_AFTER = timedelta(days=1)
"""Activity counts as a return (a negative label) only this long after the scoring or later:
a customer browsing on in the same session has not "come back" (and a busy customer makes at
most about one example a day). Activity sooner moves the snapshot's last activity."""

FEATURES: tuple[str, ...] = (
    "recency_days", "frequency_30d", "frequency_90d", "frequency_trend", "monetary_30d",
    "monetary_trend", "interpurchase_days", "interpurchase_known", "orders_total",
    "avg_order_value", "visits_7d", "visits_30d", "channels_30d", "inactive_days",
    "funnel_browse", "funnel_add_to_cart", "tickets_total", "open_complaints", "satisfaction",
    "satisfaction_known", "return_rate", "member_rank", "tenure_days",
)
"""The feature names, in the order every snapshot lists them."""

FEATURE_LIMIT = 1e12
"""Features are clamped to +-this (1e12 CNY or days is beyond any real value; a larger one
would overflow the scaler's running variance)."""

MEMBER_RANK = {"regular": 0.0, "silver": 1.0, "gold": 2.0, "platinum": 3.0, "diamond": 4.0}


def _number(value: Any, default: float = 0.0) -> float:
    """``value`` as a finite float within +-FEATURE_LIMIT; ``default`` when it is not a finite
    number (booleans are not numbers here)."""
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            return default
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return default
    else:  # subclasses of int or float
        try:
            number = float(value)
        except OverflowError:
            return default
    if -FEATURE_LIMIT <= number <= FEATURE_LIMIT:
        return number
    if number != number or number in (math.inf, -math.inf):
        return default
    return FEATURE_LIMIT if number > 0 else -FEATURE_LIMIT


def _known(value: Any) -> bool:
    """Whether a view value is a number the features use as it is (not a stand-in)."""
    return _number(value, math.nan) == _number(value, 0.0)


def _clamp(number: float) -> float:
    return -FEATURE_LIMIT if number < -FEATURE_LIMIT else (
        FEATURE_LIMIT if number > FEATURE_LIMIT else number)


def features(view: dict[str, Any]) -> dict[str, float]:
    """The churn features of a profile ``view`` (see the module docstring), in
    :data:`FEATURES` order."""
    get = view.get
    tenure = _number(get("days_since_register"))
    recency = _number(get("recency_days"), tenure)
    f30, f90 = _number(get("frequency_30d")), _number(get("frequency_90d"))
    m30, m90 = _number(get("monetary_30d")), _number(get("monetary_90d"))
    interpurchase = get("mean_interpurchase_days")
    satisfaction = get("satisfaction_mean")
    level = get("member_level")
    channels = get("active_channels")
    return {  # every value within +-FEATURE_LIMIT (the trends clamped again)
        "recency_days": recency,
        "frequency_30d": f30,
        "frequency_90d": f90,
        "frequency_trend": _clamp(f30 - (f90 - f30) / 2),
        "monetary_30d": m30,
        "monetary_trend": _clamp(m30 - (m90 - m30) / 2),
        "interpurchase_days": _number(interpurchase),
        "interpurchase_known": 1.0 if _known(interpurchase) else 0.0,
        "orders_total": _number(get("orders_total")),
        "avg_order_value": _number(get("avg_order_value")),
        "visits_7d": _number(get("visits_7d")),
        "visits_30d": _number(get("visits_30d")),
        "channels_30d": float(len(channels)) if isinstance(channels, list) else 0.0,
        "inactive_days": _number(get("inactive_days"), recency),
        "funnel_browse": _number(get("funnel_browse")),
        "funnel_add_to_cart": _number(get("funnel_add_to_cart")),
        "tickets_total": _number(get("tickets_total")),
        "open_complaints": _number(get("open_complaints")),
        "satisfaction": _number(satisfaction),
        "satisfaction_known": 1.0 if _known(satisfaction) else 0.0,
        "return_rate": _number(get("return_rate")),
        "member_rank": MEMBER_RANK.get(level, 0.0) if isinstance(level, str) else 0.0,
        "tenure_days": tenure,
    }


def last_active(view: dict[str, Any]) -> datetime | None:
    """The customer's last activity (order or any behaviour) in a view: the later of
    ``last_order_at`` and ``last_seen_at``, aware UTC; None before any."""
    times = [aware_from_iso(view.get(name)) for name in ("last_order_at", "last_seen_at")]
    known = [t for t in times if t is not None]
    return max(known) if known else None


@dataclass(frozen=True)
class Example:
    """A labelled example: the snapshot's features, its label (1 churned, 0 came back), when
    it was scored and when it was labelled (both aware UTC)."""

    user_id: str
    features: dict[str, float]
    label: int
    scored_at: datetime
    labelled_at: datetime

    def to_wire(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "features": self.features, "label": self.label,
                "scored_at": _iso(self.scored_at), "labelled_at": _iso(self.labelled_at)}

    @classmethod
    def from_wire(cls, data: Any) -> Example:
        """An example as :meth:`to_wire` writes it; ValueError for anything else: a user id
        that is not text, a label other than 0 or 1, a feature not in :data:`FEATURES` or not
        a finite number within :data:`FEATURE_LIMIT`, a time without an offset or out of
        range, a label before its scoring (what another producer may write is not learned)."""
        if not isinstance(data, dict):
            raise ValueError("an example is a JSON object")
        user_id, label, raw = data.get("user_id"), data.get("label"), data.get("features")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be non-empty text")
        if type(label) is not int or label not in (0, 1):
            raise ValueError("label must be 0 or 1")
        if not isinstance(raw, dict) or not raw or not set(raw) <= set(FEATURES):
            raise ValueError("features must be an object of known feature names")
        features: dict[str, float] = {}
        for name, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"feature {name} is not a number")
            try:
                number = float(value)
            except OverflowError:
                raise ValueError(f"feature {name} is out of range") from None
            if not math.isfinite(number) or abs(number) > FEATURE_LIMIT:
                raise ValueError(f"feature {name} is not finite or out of range")
            features[name] = number
        scored = _strict_time(data.get("scored_at"))
        labelled = _strict_time(data.get("labelled_at"))
        if labelled < scored:
            raise ValueError("labelled before scored")
        return cls(user_id, features, label, scored, labelled)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _strict_time(text: Any) -> datetime:
    """An aware ISO 8601 time as UTC, or ValueError (naive, unreadable, out of range)."""
    if not isinstance(text, str):
        raise ValueError("a time must be ISO 8601 text")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a time needs its offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("time out of range") from None


LabelState = dict[str, Any]
"""``{"at": <iso scored_at>, "active": <iso last activity>, "features": {...}}`` or None: the
pending snapshot of one customer (JSON-ready, kept in the customer's table value)."""


def snapshot(pending: LabelState | None, view: dict[str, Any], at: datetime,
             horizon_days: float = HORIZON_DAYS) -> LabelState | None:
    """The pending snapshot after scoring the customer as of ``at`` with ``view``: the one
    already pending if any (the oldest is kept), else a new one; None while the customer has
    no activity (nothing to wait for) or has already reached the horizon at ``at`` (a churned
    customer is not snapshotted again until it comes back)."""
    if pending is not None:
        return pending
    active = last_active(view)
    if active is None or active + timedelta(days=horizon_days) <= at:
        return None
    return {"at": _iso(at), "active": _iso(active), "features": features(view)}


def label_deadline(pending: LabelState | None, horizon_days: float = HORIZON_DAYS
                   ) -> datetime | None:
    """When the pending snapshot becomes a positive example if nothing happens: its last
    activity plus the horizon (None: nothing pending)."""
    if pending is None:
        return None
    return _parse(pending["active"]) + timedelta(days=horizon_days)


def label_step(
    pending: LabelState | None, user_id: str, *, until: datetime,
    active_at: datetime | None = None, horizon_days: float = HORIZON_DAYS,
) -> tuple[LabelState | None, Example | None]:
    """Move the pending snapshot to event time ``until``; ``active_at``: the customer's last
    activity as seen at ``until`` (an order or behaviour event), else None.

    The horizon deadline is applied before activity at the same instant. Activity at least
    :data:`RETURN_AFTER` after the scoring time makes a negative labelled at ``until`` (the
    evaluation that saw it: the event's time, or for an event older than the customer's
    ``as_of``, that ``as_of``), so the labels of one customer are made in strictly
    increasing ``labelled_at``. Other activity later than the snapshot's last activity
    (sooner after the scoring, or from before it arriving late) moves the snapshot's last
    activity (so its horizon) and labels nothing. Returns the pending snapshot left (None
    once labelled) and the example made, if any."""
    if pending is None:
        return None, None
    deadline = label_deadline(pending, horizon_days)
    assert deadline is not None
    scored = _parse(pending["at"])
    if deadline <= until:
        return None, Example(user_id, dict(pending["features"]), 1, scored, deadline)
    if active_at is not None and active_at >= scored + RETURN_AFTER:
        return None, Example(user_id, dict(pending["features"]), 0, scored, until)
    if active_at is not None and active_at > _parse(pending["active"]):
        # activity too soon after the scoring to be a return, or from before it arriving
        # late: it moves the horizon only
        return dict(pending, active=_iso(active_at)), None
    return pending, None
