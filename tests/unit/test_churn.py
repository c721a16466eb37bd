"""Churn features, labels from the stream and the online model (issue 12), without I/O."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors import churn
from custpulse.processors.churn_model import ChurnModel, roc_auc_of
from custpulse.processors.profile import fold_profile, view_and_changes
from custpulse.schemas.events import CanonicalEvent

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(days=churn.HORIZON_DAYS)


def _order(user: str, at: datetime, n: int, amount: float = 100.0) -> CanonicalEvent:
    return CanonicalEvent(f"o{n}", "orders", user, at,
                          {"order_id": f"O{n}", "amount": amount, "status": "paid"})


def _view(events: list[CanonicalEvent], at: datetime) -> dict:
    state = None
    for event in events:
        state = fold_profile(state, event, at)
    return view_and_changes(state, at, frozenset())[0]


def replay(timeline: list[CanonicalEvent], until: datetime) -> list[tuple]:
    """Labels of one customer's timeline (sorted by time), scored at each event, the horizon
    deadline applied before activity at the same instant: (label, scored_at, labelled_at)."""
    pending = None
    seen: list[CanonicalEvent] = []
    out = []
    for event in timeline:
        at = event.event_time
        deadline = churn.label_deadline(pending)
        if deadline is not None and deadline <= at:
            pending, example = churn.label_step(pending, "U", until=deadline)
            out.append(example)
        pending, example = churn.label_step(pending, "U", until=at, active_at=at)
        if example is not None:
            out.append(example)
        seen.append(event)
        pending = churn.snapshot(pending, _view(seen, at), at)
    deadline = churn.label_deadline(pending)
    if deadline is not None and deadline <= until:
        out.append(churn.label_step(pending, "U", until=deadline)[1])
    return [(e.label, e.scored_at, e.labelled_at, tuple(e.features.items())) for e in out]


def test_a_label_exactly_at_the_horizon_is_positive_and_just_before_it_negative():
    first = _order("U", T0, 1)
    at_horizon = replay([first, _order("U", T0 + H, 2)], T0 + 2 * H)
    # the deadline first; the order at the horizon is a new snapshot, which expires in turn
    assert [(label, labelled) for label, _, labelled, _ in at_horizon] == [
        (1, T0 + H), (1, T0 + 2 * H)]
    just_before = replay([first, _order("U", T0 + H - timedelta(microseconds=1), 2)],
                         T0 + H - timedelta(microseconds=1))
    assert [(label, labelled) for label, _, labelled, _ in just_before] == [
        (0, T0 + H - timedelta(microseconds=1))]


def test_a_returning_customer_gives_a_negative_and_a_new_snapshot():
    events = [_order("U", T0, 1), _order("U", T0 + timedelta(days=10), 2)]
    labels = replay(events, T0 + timedelta(days=10) + H)
    assert [(label, scored, labelled) for label, scored, labelled, _ in labels] == [
        (0, T0, T0 + timedelta(days=10)),
        (1, T0 + timedelta(days=10), T0 + timedelta(days=10) + H)]


def test_the_pending_snapshot_is_the_oldest_and_holds_nothing_later():
    first = _view([_order("U", T0, 1, 10.0)], T0)
    pending = churn.snapshot(None, first, T0)
    later = _view([_order("U", T0, 1, 10.0), _order("U", T0 + timedelta(hours=1), 2, 999.0)],
                  T0 + timedelta(hours=1))
    again = churn.snapshot(pending, later, T0 + timedelta(hours=1))
    assert again is pending and again["features"] == churn.features(first)
    assert again["features"]["orders_total"] == 1 and again["features"]["monetary_30d"] == 10.0


def test_features_are_finite_floats_in_order_whatever_the_view():
    assert list(churn.features({})) == list(churn.FEATURES)
    odd = {"recency_days": float("nan"), "frequency_30d": True, "member_level": ["x"],
           "active_channels": ["APP", "web"], "satisfaction_mean": float("inf")}
    values = churn.features(odd)
    assert all(type(v) is float and v == v and abs(v) != float("inf") for v in values.values())
    assert values["channels_30d"] == 2.0 and values["satisfaction_known"] == 0.0  # inf: unknown
    huge = churn.features({"monetary_30d": 10**400, "monetary_90d": -1e308, "frequency_30d": 1e308,
                           "frequency_90d": -1e308, "active_channels": "APP"})
    assert all(abs(v) <= churn.FEATURE_LIMIT for v in huge.values())
    assert huge["channels_30d"] == 0.0 and huge["monetary_30d"] == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 400 * 24), min_size=1, max_size=12), st.randoms())
def test_a_redelivered_or_reordered_history_labels_the_same(hours, rnd):
    """The same events, delivered again (duplicates removed upstream by id) and in another
    order among equal times, give the same labels, features included."""
    events = [_order("U", T0 + timedelta(hours=h), n) for n, h in enumerate(sorted(hours))]
    until = events[-1].event_time + 2 * H
    expected = replay(events, until)
    shuffled = sorted(events, key=lambda e: (e.event_time, rnd.random()))
    redelivered = {e.event_id: e for e in shuffled + shuffled}  # dedupe by id
    assert replay(sorted(redelivered.values(), key=lambda e: e.event_time), until) == expected
    # scored at an order (its last activity); orders less than a day later move the last
    # activity a; a positive is a + H with no order from a day after the scoring until then,
    # a negative the first such order before it
    times = sorted({e.event_time for e in events})
    day = churn.RETURN_AFTER
    for label, scored, labelled, _ in expected:
        active = max(t for t in times if scored <= t < scored + day)
        returns = [t for t in times if scored + day <= t]
        if label == 1:
            assert labelled == active + H and not [t for t in returns if t < labelled]
        else:
            assert labelled == returns[0] and labelled < active + H


def test_examples_from_other_producers_are_read_strictly():
    good = churn.Example("U1", {"recency_days": 3.0}, 1, T0, T0 + H).to_wire()
    assert churn.Example.from_wire(json.loads(json.dumps(good))).label == 1
    bad = [
        "x", {}, dict(good, user_id=None), dict(good, label=7), dict(good, label=0.9),
        dict(good, label=True), dict(good, features={"recency_days": 10**400}),
        dict(good, features={"recency_days": float("nan")}), dict(good, features={"nope": 1}),
        dict(good, features={"recency_days": "3"}), dict(good, features={}),
        dict(good, scored_at="2025-01-01T00:00:00"), dict(good, labelled_at="0001-01-01T00:00:00+01:00"),
        dict(good, labelled_at="2024-01-01T00:00:00+00:00"), dict(good, scored_at=5),
    ]
    for data in bad:
        try:
            churn.Example.from_wire(data)
        except ValueError:
            continue
        raise AssertionError(f"accepted {data!r}")


def test_the_model_refuses_what_would_poison_it():
    model = ChurnModel(min_labels=1)
    model.learn(churn.Example("U1", {"recency_days": 3.0}, 0, T0, T0))
    before = model.to_snapshot()
    for x in ({"recency_days": float("inf")}, {"recency_days": 1e200}, {"unknown": 1.0}):
        try:
            model.learn(churn.Example("U1", x, 1, T0, T0))
        except ValueError:
            continue
        raise AssertionError(f"learned {x!r}")
    assert model.to_snapshot() == before


def _example(rng: random.Random, n: int) -> churn.Example:
    recency = rng.uniform(0, 120)
    x = {name: 0.0 for name in churn.FEATURES}
    x.update(recency_days=recency, frequency_30d=float(rng.randint(0, 4)),
             open_complaints=float(rng.random() < 0.1))
    label = int(rng.random() < 1 / (1 + 2.718 ** (4 - recency / 20 - 2 * x["open_complaints"])))
    at = T0 + timedelta(hours=n)
    return churn.Example(f"U{n}", x, label, at, at)


def test_no_score_before_enough_labels_then_scores_and_factors():
    rng = random.Random(3)
    model = ChurnModel(min_labels=50)
    x = _example(rng, 0).features
    for n in range(49):
        model.learn(_example(rng, n))
    assert model.score(x) is None and model.status()["scoring"] is False
    model.learn(_example(rng, 49))
    score = model.score(x)
    assert score is not None and 0.0 < score < 1.0
    (name, _), *_ = model.explain({**x, "recency_days": 119.0})
    assert name == "recency_days"


def test_the_model_learns_the_mechanism():
    rng = random.Random(5)
    model = ChurnModel(min_labels=10)
    for n in range(3000):
        model.learn(_example(rng, n))
    status = model.status()
    assert status["roc_auc"] > 0.8
    assert status["weights"]["recency_days"] > 0 and status["weights"]["open_complaints"] > 0
    assert sum(d["examples"] for d in status["calibration"]) == 3000


def test_a_restored_snapshot_scores_and_learns_on_exactly_as_the_original():
    rng = random.Random(9)
    model = ChurnModel(min_labels=20)
    for n in range(500):
        model.learn(_example(rng, n))
    model.version = 7
    restored = ChurnModel.from_snapshot(json.loads(json.dumps(model.to_snapshot())))
    assert restored.status() == model.status() and restored.version == 7
    more = [_example(rng, n) for n in range(500, 900)]
    assert [restored.learn(e) for e in more] == [model.learn(e) for e in more]
    assert restored.to_snapshot() == model.to_snapshot()
    x = more[0].features
    assert restored.score(x) == model.score(x) and restored.explain(x) == model.explain(x)


def test_histogram_auc_matches_the_pairwise_definition():
    rng = random.Random(1)
    pairs = [(rng.random(), rng.random() < 0.3) for _ in range(400)]
    histogram = [[0] * 1000, [0] * 1000]
    for p, y in pairs:
        histogram[int(y)][min(999, int(p * 1000))] += 1
    pos = [int(p * 1000) for p, y in pairs if y]
    neg = [int(p * 1000) for p, y in pairs if not y]
    pairwise = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    assert abs(roc_auc_of(histogram) - pairwise) < 1e-12
    assert roc_auc_of([[1] * 1000, [0] * 1000]) is None


def test_the_churn_generator_is_deterministic_and_churners_fall_silent():
    from custpulse.processors.synthetic import churn_history  # noqa: PLC0415
    end = datetime(2026, 6, 30, tzinfo=UTC)
    rows, churned = churn_history(60, 6, end, seed=2)
    assert (rows, churned) == churn_history(60, 6, end, seed=2)
    assert 0 < sum(t is not None for t in churned.values()) < 60
    names = {"orders": "order_time", "behavior": "behavior_time", "tickets": "opened_at"}
    for source, items in rows.items():
        times = [datetime.fromisoformat(r[names[source]]) for r in items]
        assert times == sorted(times) and all(t <= end for t in times)
        for row, t in zip(items, times, strict=True):
            stop = churned[row["user_id"]]
            assert stop is None or t < stop
