"""Churn in the envelope fold (issue 12): labels made by events and ticks in event time, the
label deadline joined to the customer's deadline, re-sending after a redelivery, scores and
band alerts in the profile; and the fold's properties with churn on (hypothesis)."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from custpulse.processors import churn, churn_fold
from custpulse.processors.churn_fold import ChurnConfig
from custpulse.processors.envelope_fold import EnvelopeFold, value_deadline
from custpulse.processors.lifecycle import next_deadline_of
from custpulse.schemas.envelope import pack, tick_records
from tests.unit.test_fold_properties import LIB, NOW, PROPS, USERS, _arrival, _split

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(days=churn.HORIZON_DAYS)
CONFIG = ChurnConfig()


class Recency:
    """A scorer for the fold's tests: p = inactive days / 100 (at most 1), version fixed."""

    def __init__(self, version: int = 7, ready: bool = True) -> None:
        self.version, self.ready = version, ready

    def score(self, x: dict[str, float]) -> float | None:
        return min(1.0, x["inactive_days"] / 100) if self.ready else None

    def explain(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        return [("inactive_days", x["inactive_days"] / 100)][:top]


def order(n: int, at: datetime, user: str = "U1") -> dict[str, Any]:
    return {"event_id": f"orders:o{n}", "source": "orders", "user_id": user,
            "event_time": at.isoformat(),
            "data": {"order_id": f"O{n}", "amount": "100.00", "status": "paid",
                     "channel": "APP"}}


def ticket(n: int, at: datetime, user: str = "U1") -> dict[str, Any]:
    return {"event_id": f"tickets:t{n}", "source": "tickets", "user_id": user,
            "event_time": at.isoformat(),
            "data": {"ticket_id": f"T{n}", "issue_type": "question"}}


class Run:
    """A table folded envelope by envelope (values written back as JSON, like the changelog);
    what every envelope sent, in order."""

    def __init__(self, scorer: Any = None, config: ChurnConfig = CONFIG,
                 freshness: timedelta = timedelta(hours=24)) -> None:
        self.table: dict[str, Any] = {}
        self.folder = EnvelopeFold(LIB, 5000, freshness, churn=config)
        self.scorer = scorer
        self.examples: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []
        self.mirrors: dict[str, Any] = {}

    def fold(self, *records: dict[str, Any]) -> Any:
        result = self.folder.fold(json.loads(pack(list(records)))["records"],
                                  lambda u: copy.deepcopy(self.table.get(u)), NOW, self.scorer)
        self.table.update(json.loads(json.dumps(result.writes)))
        for mirror in result.mirrors.values():
            self.examples += mirror.examples
            self.alerts += mirror.alerts
        self.mirrors.update(result.mirrors)
        return result

    def tick(self, until: datetime, user: str = "U1") -> Any:
        return self.fold(*tick_records([(user, until)], until))


def labels(examples: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(e["label"], e["scored_at"], e["labelled_at"]) for e in examples]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def test_a_return_is_a_negative_and_the_horizon_a_positive_exactly_at_it():
    run = Run()
    run.fold(order(1, T0))
    # the label deadline is the customer's deadline (the segment rules' may be later)
    assert value_deadline(run.table["U1"], CONFIG) <= T0 + H
    assert churn.label_deadline(run.table["U1"]["churn"]["pending"]) == T0 + H
    run.fold(order(2, T0 + timedelta(days=10)))
    assert labels(run.examples) == [(0, iso(T0), iso(T0 + timedelta(days=10)))]
    # the next one expires at the last activity + H: a tick just before does nothing
    last = T0 + timedelta(days=10)
    run.tick(last + H - timedelta(microseconds=1))
    assert len(run.examples) == 1
    run.tick(last + H)
    assert labels(run.examples)[1:] == [(1, iso(last), iso(last + H))]
    assert run.table["U1"]["churn"]["pending"] is None
    # a churned customer is not snapshotted again by a ticket; an order brings it back
    run.fold(ticket(1, last + H + timedelta(days=1)))
    assert run.table["U1"]["churn"]["pending"] is None
    run.fold(order(3, last + H + timedelta(days=2)))
    assert run.table["U1"]["churn"]["pending"]["at"] == iso(last + H + timedelta(days=2))
    assert len(run.examples) == 2


def test_an_event_at_the_horizon_comes_after_the_positive_label():
    run = Run()
    run.fold(order(1, T0))
    run.fold(order(2, T0 + H))  # no tick: the event applies the deadline first
    assert labels(run.examples) == [(1, iso(T0), iso(T0 + H))]
    assert run.table["U1"]["churn"]["pending"]["at"] == iso(T0 + H)


def test_features_of_the_snapshot_know_nothing_of_later_events():
    run = Run()
    run.fold(order(1, T0))
    first = copy.deepcopy(run.table["U1"]["churn"]["pending"])
    run.fold(ticket(1, T0 + timedelta(days=1)), ticket(2, T0 + timedelta(days=2)))
    assert run.table["U1"]["churn"]["pending"] == first  # the oldest is kept
    assert first["features"]["tickets_total"] == 0.0
    assert first["features"]["orders_total"] == 1.0
    run.fold(order(2, T0 + timedelta(days=3)))
    assert run.examples[0]["features"] == first["features"]


def test_a_redelivered_record_re_sends_its_example_and_a_replay_labels_the_same():
    records = [order(1, T0), order(2, T0 + timedelta(days=5)), ticket(1, T0 + timedelta(days=6))]
    run = Run()
    for record in records:
        run.fold(record)
    sent = list(run.examples)
    assert len(sent) == 1
    run.fold(records[1])  # redelivered after its state was durable
    assert run.examples[len(sent):] == sent
    replay = Run()
    replay.fold(*records)
    assert replay.examples == sent


def test_scores_band_alerts_and_the_profile_fields():
    run = Run(Recency(version=7), freshness=timedelta(days=1000))  # 2025 counts as fresh
    run.fold(order(1, T0))
    fields = run.mirrors["U1"].view
    assert fields["churn_probability"] == 0.0 and fields["churn_model_version"] == 7
    assert fields["churn_status"] == "scored" and fields["churn_band"] == "low"
    assert fields["churn_factors"] == [["inactive_days", 0.0]]
    assert not [a for a in run.alerts if a["group"] == "churn"]  # a first low is no news
    # time alone raises the risk: a tick evaluates the customer's deadlines
    run.tick(T0 + timedelta(days=80))
    churn_alerts = [a for a in run.alerts if a["group"] == "churn"]
    assert [(a["old"], a["new"]) for a in churn_alerts] == [("low", "high")]
    assert churn_alerts[0]["cause"].startswith("timer:")
    assert churn_alerts[0]["traits"]["churn_model_version"] == 7
    assert run.mirrors["U1"].view["churn_band"] == "high"
    run.fold(order(2, T0 + timedelta(days=81)))
    assert [(a["old"], a["new"]) for a in run.alerts if a["group"] == "churn"] == [
        ("low", "high"), ("high", "low")]
    # redelivered: the same alert again, same id
    before = len(run.alerts)
    run.fold(order(2, T0 + timedelta(days=81)))
    again = [a for a in run.alerts[before:] if a["group"] == "churn"]
    assert again == [a for a in run.alerts[:before]
                     if a["group"] == "churn" and a["cause"] == "orders:o2"]
    assert len(again) == 1


def test_a_replay_re_scores_only_once_it_reaches_the_present():
    fresh = Run(Recency(version=1), freshness=timedelta(days=1000))
    replay = Run(Recency(version=1))  # freshness 24 h: all of 2025 is history
    for run in (fresh, replay):
        run.fold(order(1, T0))
        run.tick(T0 + timedelta(days=29))  # before any rule deadline
    # weekly re-scores after the last rule deadline
    fresh_at = datetime.fromisoformat(fresh.table["U1"]["churn"]["at"])
    assert T0 + timedelta(days=22) < fresh_at <= T0 + timedelta(days=29)
    # the replay: scored at the rule deadlines only (its last evaluation), not weekly
    at = datetime.fromisoformat(replay.table["U1"]["churn"]["at"])
    assert at == datetime.fromisoformat(replay.table["U1"]["seg"]["evaluated_at"])
    assert at < T0 + timedelta(days=28)
    # its re-score waits for the present (the label deadline comes first here)
    state = replay.table["U1"]["churn"]
    assert churn_fold.rescore_due(state, CONFIG) < NOW - timedelta(days=1)
    assert value_deadline(replay.table["U1"], CONFIG, NOW - timedelta(days=1)) == min(
        T0 + H, next_deadline_of(replay.table["U1"]["seg"]))


def test_no_score_before_the_model_is_ready_and_none_without_a_model():
    run = Run(None)
    run.fold(order(1, T0))
    view = run.mirrors["U1"].view
    assert view["churn_status"] == "no_model" and view["churn_probability"] is None
    run.scorer = Recency(version=1, ready=False)
    run.fold(order(2, T0 + timedelta(days=1)))
    view = run.mirrors["U1"].view
    assert view["churn_status"] == "learning" and view["churn_probability"] is None
    assert view["churn_model_version"] == 1 and view["churn_factors"] == []


# ------------------------------------------------------------------ properties, churn on

def _fold(envelopes: list[list[Any]], table: dict[str, Any] | None = None,
          scorer: Any = None) -> tuple[dict[str, Any], list[list[dict]], list[list[dict]]]:
    table = {} if table is None else table
    folder = EnvelopeFold(LIB, 5000, churn=CONFIG)
    examples, alerts = [], []
    for chunk in envelopes:
        result = folder.fold(json.loads(pack(chunk))["records"],
                             lambda u: copy.deepcopy(table.get(u)), NOW, scorer)
        table.update(json.loads(json.dumps(result.writes)))
        examples.append([e for m in result.mirrors.values() for e in m.examples])
        alerts.append([a for m in result.mirrors.values() for a in m.alerts])
    return table, examples, alerts


def _state(table: dict[str, Any]) -> dict[str, Any]:
    """Every field but the write bookkeeping (version, what is remembered for re-sending)."""
    out = {}
    for user, value in table.items():
        value = copy.deepcopy(value)
        value.pop("version", None)
        if value.get("seg"):
            value["seg"]["recent"] = None
        if value.get("churn"):
            value["churn"]["sent"] = None
        out[user] = value
    return out


def _per_user(chunks: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in (x for chunk in chunks for x in chunk):
        out.setdefault(item["user_id"], []).append(item)
    return out


def _example_key(example: dict[str, Any]) -> tuple[str, str]:
    return example["user_id"], example["labelled_at"]


def _alert_key(alert: dict[str, Any]) -> str:
    return alert["alert_id"]


def _firsts(per_user: dict[str, list[dict[str, Any]]], key: Any) -> dict[str, list[dict]]:
    """Each customer's items in order, repeats (same key) left out; a repeat must be equal."""
    out: dict[str, list[dict[str, Any]]] = {}
    for user, items in per_user.items():
        seen: dict[Any, dict[str, Any]] = {}
        for item in items:
            if key(item) in seen:
                assert seen[key(item)] == item
                continue
            seen[key(item)] = item
        out[user] = list(seen.values())
    return out


def _with_ticks(wires: list[dict[str, Any]], rng: random.Random,
                n: int = 8) -> list[dict[str, Any]]:
    """Ticks as the worker's timer sends them: at a random place of the arrival, for a customer
    already seen, up to the watermark there (the latest event time so far)."""
    places = sorted(rng.sample(range(1, len(wires)), min(n, len(wires) - 1)), reverse=True)
    out = list(wires)
    for place in places:
        before = wires[:place]
        until = max(datetime.fromisoformat(w["event_time"]) for w in before)
        user = rng.choice(sorted({w["user_id"] for w in before}))
        out.insert(place, tick_records([(user, until)], until)[0])
    return out


@PROPS
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 80), min_size=1,
                                                       max_size=4),
       disorder=st.sampled_from([0.0, 0.05, 0.3]))
def test_any_split_gives_the_same_churn_state_examples_and_alerts(seed, sizes, disorder):
    rng = random.Random(seed)
    wires = _with_ticks(_arrival(rng, rng.sample(USERS, 3), disorder), rng)
    scorer = Recency(version=3)
    reference, ref_examples, ref_alerts = _fold([wires], scorer=scorer)
    table, examples, alerts = _fold(_split(wires, sizes), scorer=scorer)
    assert _state(table) == _state(reference)
    # the same ones in the same order; a tick re-sends what an earlier tick with the same
    # watermark made (it may be a redelivery): within one envelope such a repeat is merged,
    # across envelopes it goes out again, with the same id and content
    assert _firsts(_per_user(examples), _example_key) == _firsts(_per_user(ref_examples),
                                                                 _example_key)
    assert _firsts(_per_user(alerts), _alert_key) == _firsts(_per_user(ref_alerts), _alert_key)
    assert any(ref_examples), "the history labels something"


@PROPS
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 80), min_size=1,
                                                       max_size=3),
       redeliveries=st.integers(0, 30), crash=st.floats(0, 1), durable=st.integers(0, 4),
       disorder=st.sampled_from([0.0, 0.05]))
def test_redeliveries_and_any_crash_point_send_every_example_with_the_same_state(
        seed, sizes, redeliveries, crash, durable, disorder):
    rng = random.Random(seed)
    wires = _with_ticks(_arrival(rng, rng.sample(USERS, 3), disorder), rng)
    scorer = Recency(version=3)
    reference, ref_examples, ref_alerts = _fold([wires], scorer=scorer)
    delivered = list(wires)
    for _ in range(redeliveries):
        at = rng.randint(1, len(delivered))
        delivered.insert(at, copy.deepcopy(delivered[rng.randrange(at)]))
    envelopes = _split(delivered, sizes)
    committed = int(crash * len(envelopes))
    durable_up_to = min(len(envelopes), committed + durable)
    table, first, first_alerts = _fold(envelopes[:durable_up_to], scorer=scorer)
    sent = [e for chunk in first[:committed] for e in chunk]
    announced = [a for chunk in first_alerts[:committed] for a in chunk]
    table, second, second_alerts = _fold(envelopes[committed:], table, scorer=scorer)
    sent += [e for chunk in second for e in chunk]
    announced += [a for chunk in second_alerts for a in chunk]
    assert _state(table) == _state(reference)
    # every example of the undisturbed run is sent, and no other: the trainer keeps the
    # first of each (user, labelled_at), which is the same example
    key = lambda e: (e["user_id"], e["labelled_at"])  # noqa: E731
    ref = {key(e): e for chunk in ref_examples for e in chunk}
    assert len(ref) == sum(len(chunk) for chunk in ref_examples)
    assert {key(e) for e in sent} == set(ref)
    for example in sent:
        assert example == ref[key(example)]
    by_id = {a["alert_id"]: a for a in announced}
    assert {a["alert_id"] for chunk in ref_alerts for a in chunk} == set(by_id)


def test_a_churn_alert_can_trigger_the_win_back_campaign(tmp_path):
    from custpulse.processors.campaigns import campaign_triggers, load_campaigns
    path = tmp_path / "campaigns.yaml"
    path.write_text("version: 1\nholdout_share: 0\ntriggers:\n  - name: churn_model_winback\n"
                    "    when: {group: churn, to: high}\n    action: {type: offer, campaign: "
                    "win_back_offer, channel: app_push, description: win back}\n")
    run = Run(Recency(version=2), freshness=timedelta(days=400))  # a move of last month counts
    run.fold(order(1, NOW - timedelta(days=85)))
    run.tick(NOW - timedelta(days=5))
    alert = next(a for a in run.alerts if a["group"] == "churn")
    assert (alert["old"], alert["new"], alert["historical"]) == ("low", "high", False)
    (trigger,) = campaign_triggers(load_campaigns(str(path)), alert)
    assert trigger["action"]["campaign"] == "win_back_offer" and trigger["user_id"] == "U1"


def test_a_worker_never_goes_back_a_model_version():
    from custpulse.processors.churn_model import ChurnModel
    from custpulse.streams.churn_scoring import ModelHolder

    def message(version: int) -> dict[str, Any]:
        model = ChurnModel(min_labels=1)
        model.version = version
        return {"v": 1, "model": model.to_snapshot(), "offset": 0, "published_at": "x"}

    holder = ModelHolder()
    assert holder.adopt(message(3)) and holder.current.version == 3
    assert not holder.adopt(message(2)) and holder.current.version == 3  # an older one, late
    assert not holder.adopt(message(3))
    assert not holder.adopt({"model": {"kind": "other"}})  # not a model: kept, not raised
    assert holder.adopt(message(5)) and holder.current.version == 5


# ------------------------------------------------------------------ review findings

def test_a_positive_made_by_a_tick_alone_is_sent_whatever_the_horizon():
    for days in (30, 60, 90, 120, 180):
        config = ChurnConfig(horizon_days=days)
        run = Run(None, config)
        run.fold(order(1, T0))
        horizon = T0 + timedelta(days=days)
        run.tick(horizon + timedelta(seconds=1))
        assert labels(run.examples) == [(1, iso(T0), iso(horizon))], days


def test_a_tick_past_the_horizon_moves_the_customer_to_it_so_later_events_are_late():
    config = ChurnConfig(horizon_days=50)
    run = Run(None, config)
    run.fold(order(1, T0))
    run.tick(T0 + timedelta(days=60))  # the watermark passed the horizon
    assert labels(run.examples) == [(1, iso(T0), iso(T0 + timedelta(days=50)))]
    assert run.table["U1"]["seg"]["evaluated_at"] >= iso(T0 + timedelta(days=50))
    # an order from before the horizon arrives late: no label goes back in time, and a
    # ticket does not snapshot the churned customer again
    run.fold(order(2, T0 + timedelta(days=40)), ticket(1, T0 + timedelta(days=61)))
    assert len(run.examples) == 1
    run.fold(order(3, T0 + timedelta(days=70)))
    times = [e["labelled_at"] for e in run.examples]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_a_redelivered_tick_re_sends_its_example_after_the_worker_got_a_model():
    run = Run(None)
    run.fold(order(1, T0))
    tick = tick_records([("U1", T0 + H + timedelta(hours=1))], T0 + H + timedelta(hours=1))
    run.fold(*tick)
    assert len(run.examples) == 1
    run.scorer = Recency(version=1)  # a model arrived; the tick is redelivered
    run.fold(*tick)
    assert run.examples[1:] == run.examples[:1]


def test_remembered_outputs_stay_bounded_for_a_busy_customer():
    run = Run(Recency(version=1))
    n = 0
    for _ in range(60):
        records = []
        for _k in range(30):  # an order every 12 hours
            n += 1
            records.append(order(n, T0 + timedelta(hours=12 * n)))
        run.fold(*records)
    state = run.table["U1"]["churn"]
    assert len(state["sent"]) <= 200
    assert len(json.dumps(run.table["U1"])) < 300_000
    # one return a day at most: an order 12 hours after the scoring is not a return
    assert len(run.examples) <= n // 2 + 1


def test_an_unreadable_churn_state_is_started_afresh_and_crashes_nothing():
    good = Run(None)
    good.fold(order(1, T0))
    hostile = [
        "text", 5, [], {"pending": "x"}, {"pending": {"at": "2025-01-01T00:00:00"}},
        dict(good.table["U1"]["churn"], sent=None), dict(good.table["U1"]["churn"], p="0.3"),
        dict(good.table["U1"]["churn"], factors=[["a"]]),
        dict(good.table["U1"]["churn"], sent=[{"w": "1", "by": "x", "ex": [], "al": []}]),
        dict(good.table["U1"]["churn"], pending=dict(good.table["U1"]["churn"]["pending"],
                                                     features={"phone": "13800000000"})),
    ]
    for state in hostile:
        run = Run(Recency(version=1))
        run.table["U1"] = dict(copy.deepcopy(good.table["U1"]), churn=state)
        value_deadline(run.table["U1"], CONFIG)  # the rebalance's rebuild reads it too
        run.fold(order(2, T0 + timedelta(days=3)), order(2, T0 + timedelta(days=3)))
        run.tick(T0 + timedelta(days=200))
        assert "13800000000" not in json.dumps(run.examples) + json.dumps(run.table)
        assert all(set(e["features"]) == set(churn.FEATURES) for e in run.examples)


def test_a_redelivered_tick_re_sends_its_alerts_when_it_now_also_scores():
    run = Run(Recency(version=1, ready=False))  # a model still learning
    run.fold(order(1, T0))
    tick = tick_records([("U1", T0 + timedelta(days=40))], T0 + timedelta(days=40))
    run.fold(*tick)
    first = [a for a in run.alerts if a["cause"].startswith("timer:")]
    assert first
    run.scorer = Recency(version=2)  # ready now; the tick is redelivered
    before = len(run.alerts)
    run.fold(*tick)
    again = run.alerts[before:]
    assert all(a in again for a in first)


def test_a_redelivery_re_sends_every_example_of_a_big_envelope():
    run = Run(None)
    records = [order(n, T0 + timedelta(days=n)) for n in range(260)]
    run.fold(*records)
    made = list(run.examples)
    assert len(made) == 259
    run.fold(*records)  # the whole envelope redelivered
    assert run.examples[len(made):] == made
