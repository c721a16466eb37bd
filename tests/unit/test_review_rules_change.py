"""Review finding (issue 9): After a tag-library change (restart with rule_version 2), the stored seg.next_deadline (computed
under version 1) is trusted by _advance and by rebuild_deadlines: idle customers are not
re-evaluated at the new rules' deadlines."""
from datetime import UTC, datetime, timedelta

from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.lifecycle import next_deadline_of
from custpulse.schemas.envelope import tick_record
from custpulse.schemas.segments import load_library

V1, V2 = load_library(), load_library(str(__import__("pathlib").Path(__file__).with_name("data") / "segments_silent_14d.yaml"))
NOW = datetime(2026, 11, 30, tzinfo=UTC)
T0 = datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_new_rules_deadline_is_applied():
    table = {}
    for i in range(3):  # three active hours: 'active'
        e = {"v": 2, "event_id": f"behavior:k:{i:024x}", "source": "behavior", "user_id": "U1",
             "event_time": (T0 + timedelta(hours=i)).isoformat(), "data": {"behavior_type": "browse"},
             "quality": {}}
        r = EnvelopeFold(V1, 5000).fold([e], table.get, NOW)
        table.update(r.writes)
    r = EnvelopeFold(V1, 5000).fold([tick_record("U1", next_deadline_of(table["U1"]["seg"]),
                                    T0 + timedelta(days=8))], table.get, NOW)
    table.update(r.writes)
    print("under v1 at day 8:", table["U1"]["seg"]["activity_segment"], "next", table["U1"]["seg"]["next_deadline"])
    # tick through day 20 (v1 deadlines at 7 d etc.), under the NEW library
    f2 = EnvelopeFold(V2, 5000)
    r = f2.fold([tick_record("U1", next_deadline_of(table["U1"]["seg"]), T0 + timedelta(days=20))],
                table.get, NOW)
    table.update(r.writes)
    seg = table["U1"]["seg"]
    print("after tick to day 20 under v2:", seg["activity_segment"], "rule_version", seg["rule_version"],
          "next", seg["next_deadline"])
    assert seg["activity_segment"] == "silent"  # v2: silent after 14 days without interaction
