"""Re-evaluation: alerts on moves, stable ids, re-sending after redelivery, deadlines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from custpulse.processors.lifecycle import RECENT_MAX_ENTRIES, RECENT_WRITES, decide, resend
from custpulse.processors.profile import fold_profile
from custpulse.schemas.events import CanonicalEvent
from custpulse.schemas.segments import load_library

LIB = load_library()
T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _profile():
    p = None
    for i, hour in enumerate((0, 2, 4)):
        p = fold_profile(p, CanonicalEvent(f"b{i}", "behavior", "A", T + timedelta(hours=hour),
                                           {"behavior_type": "browse", "channel": "app"}), T)
    return fold_profile(p, CanonicalEvent("o1", "orders", "A", T + timedelta(hours=4),
                                          {"amount": 2000.0, "status": "paid"}), T)


def _decide(profile, seg, as_of, cause):
    return decide(profile, seg, as_of, library=LIB, user_id="A", cause=cause,
                  event_time=as_of, processing_time=as_of, late=False)


def test_time_alone_steps_through_the_chain_once():
    profile = _profile()
    last = T + timedelta(hours=4)
    first = _decide(profile, None, last, "o1")
    assert (first.seg["segment"], first.seg["activity_segment"]) == ("potential", "active")
    moves, seg = [], first.seg
    deadline = first.deadline
    while deadline is not None and deadline <= last + timedelta(days=200):
        d = _decide(profile, seg, deadline, f"timer:{deadline.isoformat()}")
        moves += [(a["group"], a["old"], a["new"]) for a in d.alerts]
        seg, deadline = d.seg, d.deadline
    assert [m for m in moves if m[0] == "activity"] == [
        ("activity", "active", "regular"), ("activity", "regular", "silent"),
        ("activity", "silent", "sleeping"), ("activity", "sleeping", "churned")]
    assert [m for m in moves if m[0] == "value"] == [
        ("value", "potential", "regular"), ("value", "regular", "churn_risk"),
        ("value", "churn_risk", "churned")]


def test_alert_ids_are_stable_and_resent_for_the_same_cause():
    profile = _profile()
    a = _decide(profile, None, T + timedelta(hours=4), "o1")
    b = _decide(profile, None, T + timedelta(hours=4), "o1")
    assert [x["alert_id"] for x in a.alerts] == [x["alert_id"] for x in b.alerts]
    assert resend(a.seg, "o1", "A") == a.alerts
    assert resend(a.seg, "other", "A") == []


def test_remembered_alerts_cover_the_last_writes_and_are_bounded():
    profile = _profile()
    as_of = T + timedelta(hours=4)

    def remember(n: int, writes_per: int) -> dict:
        seg = {"recent": []}
        for i in range(n):
            # no segment yet: every evaluation is a first one, with moves to remember
            seg = {"recent": decide(profile, seg, as_of, library=LIB, user_id="U1",
                                    cause=f"c{i}", event_time=as_of, processing_time=as_of,
                                    late=False, write=i // writes_per).seg["recent"]}
        return seg

    # many moves in few writes (all possibly unannounced at a crash): all kept
    seg = remember(300, 100)
    assert len(seg["recent"]) == 300 and resend(seg, "c0", "U1")
    # one move per write: those of the last RECENT_WRITES writes are kept
    seg = remember(RECENT_WRITES + 10, 1)
    assert len(seg["recent"]) == RECENT_WRITES
    assert resend(seg, f"c{RECENT_WRITES + 9}", "U1") and not resend(seg, "c9", "U1")
    # the hard bound
    seg = remember(RECENT_MAX_ENTRIES + 5, 10**6)
    assert len(seg["recent"]) == RECENT_MAX_ENTRIES and not resend(seg, "c0", "U1")


def test_remembered_alerts_are_rebuilt_byte_for_byte_and_old_entries_still_resend():
    import json

    profile = _profile()
    a = _decide(profile, None, T + timedelta(hours=4), "o1")
    assert len(a.alerts) >= 2
    again = resend(a.seg, "o1", "A")
    assert [json.dumps(x) for x in again] == [json.dumps(x) for x in a.alerts]  # order too
    (entry,) = a.seg["recent"]
    assert "alerts" not in entry and len(json.dumps(entry)) < len(json.dumps(a.alerts)) * 0.7
    # an entry as written before entries were compact: re-sent as it was stored
    old = {"cause": "o0", "by": "o0", "alerts": a.alerts, "w": 1}
    assert resend({"recent": [old]}, "o0", "A") == a.alerts
