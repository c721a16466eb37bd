"""Review finding (issue 9): prune() runs once per envelope, so whether a ticket is already 'kept as aggregates' (and a
later record of it ignored) depends on where the envelope boundary falls, not on arrival order:
same records, same order, two splits -> two profiles."""
import copy
import json
from datetime import UTC, datetime, timedelta

from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.lifecycle import evaluated_at
from custpulse.processors.profile import profile_view
from custpulse.schemas.segments import load_library

LIB = load_library()
NOW = datetime(2026, 11, 30, tzinfo=UTC)
T0 = datetime(2025, 1, 1, 10, tzinfo=UTC)


def ev(i, src, t, data):
    return {"v": 2, "event_id": f"{src}:k:{i:024x}", "source": src, "user_id": "U1",
            "event_time": t.isoformat(timespec="milliseconds"), "data": data, "quality": {}}


RECORDS = [
    ev(1, "tickets", T0, {"ticket_id": "T1", "issue_type": "delivery"}),
    ev(2, "behavior", T0 + timedelta(days=400), {"behavior_type": "browse"}),
    # the 'closed' record of T1 (its event time is opened_at), arriving next
    ev(3, "tickets", T0, {"ticket_id": "T1", "issue_type": "delivery",
                          "closed_at": (T0 + timedelta(days=1)).isoformat(),
                          "satisfaction": 2, "handling_minutes": 30}),
]


def run(splits):
    f, table = EnvelopeFold(LIB, 5000), {}
    for chunk in splits:
        r = f.fold(copy.deepcopy(chunk), lambda u: copy.deepcopy(table.get(u)), NOW)
        table.update(json.loads(json.dumps(r.writes)))
    v = table["U1"]
    view = profile_view(v["profile"], evaluated_at(v["seg"]))
    return {k: view[k] for k in ("tickets_total", "satisfaction_mean", "handling_minutes_mean")}


def test_split_does_not_change_the_profile():
    one = run([RECORDS])
    two = run([RECORDS[:2], RECORDS[2:]])
    print("one envelope:", one, "\ntwo envelopes:", two)
    assert one == two
