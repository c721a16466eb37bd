"""Properties of the pure core (hypothesis), over realistic histories of all four sources.

For a random history (synthetic customers of all four sources, ingested as the worker would):

* any split into envelopes gives the same state (every field of every table value) and, for the
  same arrival order, the same alerts in the same order;
* any set of redeliveries (earlier records sent again later, in other envelopes) and any crash
  point (state durable up to some envelope, offsets committed up to an earlier one, the rest
  redelivered) give the same state, and every alert of the undisturbed run is announced, with
  the same id and content, and no other;
* any permutation of arrival gives the same profile view (every field), the same counts and
  the same analysis state (daily counters, ticket issue types, baskets; segment moves follow the
  arrival order like the alerts).
"""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custpulse.processors import synthetic
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.processors.lifecycle import evaluated_at
from custpulse.processors.profile import profile_view
from custpulse.schemas.envelope import pack
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES

END = datetime(2026, 10, 31, tzinfo=UTC)
NOW = datetime(2026, 11, 30, tzinfo=UTC)
LIB = load_library()
ZONE = ZoneInfo("Asia/Shanghai")
CONFIG = IngestConfig(load_mappings(), ZONE, b"property-test-secret-1")


def _history() -> dict[str, list[dict[str, Any]]]:
    """Canonical events (wire form) per user: 8 synthetic customers, 12 months."""
    records = synthetic.generate(8, 12, END, seed=19)
    by_user: dict[str, list[dict[str, Any]]] = {}
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            out = ingest(json.dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), CONFIG, END + timedelta(days=1))
            assert isinstance(out, Accepted), out
            by_user.setdefault(out.event.user_id, []).append(out.event.to_wire())
    for wires in by_user.values():
        wires.sort(key=lambda w: w["event_time"])
    return by_user


HISTORY = _history()
USERS = sorted(HISTORY)
PROPS = settings(max_examples=12, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _arrival(rng: random.Random, users: list[str], disorder: float) -> list[dict[str, Any]]:
    """An arrival order: sources interleaved by time, with a share of records moved later
    (out of order)."""
    wires = sorted((w for u in users for w in HISTORY[u]), key=lambda w: w["event_time"])
    late = [w for w in wires if rng.random() < disorder]
    keep = [w for w in wires if all(w is not x for x in late)]
    for w in late:
        keep.insert(rng.randint(0, len(keep)), w)
    return keep


def _split(wires: list[Any], sizes: list[int]) -> list[list[Any]]:
    out, i, k = [], 0, 0
    while i < len(wires):
        n = sizes[k % len(sizes)]
        out.append(wires[i:i + n])
        i += n
        k += 1
    return out


def _fold(envelopes: list[list[Any]], table: dict[str, Any] | None = None,
          max_ids: int = 5000) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """Fold envelopes into a dict table (written back through ``writes`` only, as JSON, like
    the changelog). Returns the table and the alerts of each envelope in decision order."""
    table = {} if table is None else table
    folder = EnvelopeFold(LIB, max_ids, zone=ZONE)
    alerts = []
    for chunk in envelopes:
        result = folder.fold(json.loads(pack(chunk))["records"],
                             lambda u: copy.deepcopy(table.get(u)), NOW)
        table.update(json.loads(json.dumps(result.writes)))
        alerts.append([a for m in result.mirrors.values() for a in m.alerts])
    return table, alerts


def _state(table: dict[str, Any]) -> dict[str, Any]:
    """Every field of every value except the write bookkeeping: ``version`` (it counts
    writes, so batching) and ``seg.recent`` (alerts remembered for re-sending, kept for the
    customer's last writes)."""
    return {u: {k: ({**v, "recent": None} if k == "seg" and v else v)
                for k, v in value.items() if k != "version"} for u, value in table.items()}


def _flat(alerts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [a for chunk in alerts for a in chunk]


def _per_user(alerts: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Each customer's alerts in decision order (customers are independent: they may sit in
    different partitions, so only the order within a customer is defined)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in _flat(alerts):
        out.setdefault(alert["user_id"], []).append(alert)
    return out


@PROPS
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 80), min_size=1,
                                                       max_size=4),
       disorder=st.sampled_from([0.0, 0.05, 0.3]))
def test_any_split_gives_the_same_state_and_the_same_alerts(seed, sizes, disorder):
    rng = random.Random(seed)
    wires = _arrival(rng, rng.sample(USERS, 3), disorder)
    reference, ref_alerts = _fold([wires])
    table, alerts = _fold(_split(wires, sizes))
    assert _state(table) == _state(reference)
    assert _per_user(alerts) == _per_user(ref_alerts)


@PROPS
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 80), min_size=1,
                                                       max_size=3),
       redeliveries=st.integers(0, 30), crash=st.floats(0, 1), durable=st.integers(0, 4))
def test_redeliveries_and_any_crash_point_give_the_same_state_and_every_alert(
        seed, sizes, redeliveries, crash, durable):
    rng = random.Random(seed)
    wires = _arrival(rng, rng.sample(USERS, 3), 0.05)
    reference, ref_alerts = _fold([wires])
    # redeliveries: copies of earlier records arrive again later
    delivered = list(wires)
    for _ in range(redeliveries):
        at = rng.randint(1, len(delivered))
        delivered.insert(at, copy.deepcopy(delivered[rng.randrange(at)]))
    envelopes = _split(delivered, sizes)
    committed = int(crash * len(envelopes))
    durable_up_to = min(len(envelopes), committed + durable)
    # first run: state durable up to `durable_up_to`; alerts announced only for committed
    # envelopes (the crash may come before any announcement of the others)
    table, first = _fold(envelopes[:durable_up_to])
    announced = _flat(first[:committed])
    # restart: everything after the committed offset is delivered again
    table, second = _fold(envelopes[committed:], table)
    announced += _flat(second)
    assert _state(table) == _state(reference)
    by_id = {a["alert_id"]: a for a in announced}
    assert {a["alert_id"] for a in _flat(ref_alerts)} == set(by_id)
    for alert in _flat(ref_alerts):
        assert by_id[alert["alert_id"]] == alert


@PROPS
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 200))
def test_any_permutation_gives_the_same_profile_and_counts(seed, size):
    rng = random.Random(seed)
    users = rng.sample(USERS, 3)
    wires = [w for u in users for w in HISTORY[u]]
    ordered, _ = _fold([sorted(wires, key=lambda w: w["event_time"])])
    rng.shuffle(wires)
    shuffled, _ = _fold(_split(wires, [size]))
    assert set(shuffled) == set(ordered)
    for user, value in ordered.items():
        as_of = evaluated_at(value["seg"])
        assert as_of == evaluated_at(shuffled[user]["seg"])
        assert profile_view(shuffled[user]["profile"], as_of) == profile_view(
            value["profile"], as_of)
        assert shuffled[user]["dedupe"]["by_source"] == value["dedupe"]["by_source"]
        assert set(shuffled[user]["dedupe"]["ids"]) == set(value["dedupe"]["ids"])
        mine, theirs = shuffled[user]["ana"], value["ana"]
        assert {k: mine[k] for k in ("days", "issues", "baskets")} == {
            k: theirs[k] for k in ("days", "issues", "baskets")}
