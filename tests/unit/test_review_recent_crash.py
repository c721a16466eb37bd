"""Review finding (issue 9): Crash after the changelog writes of D envelopes are acknowledged, before they are announced
(Delivery: up to 16 queued + 16 in the announcing batch). Redelivery must announce every alert
of the undisturbed run (contract "Delivery"). Default envelope size 500."""
import copy
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from custpulse.processors import synthetic
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.schemas.envelope import pack, partition_for
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES

END = datetime(2026, 10, 31, tzinfo=UTC)
NOW = datetime(2026, 11, 30, tzinfo=UTC)
LIB = load_library()
CONFIG = IngestConfig(load_mappings(), ZoneInfo("Asia/Shanghai"), b"property-test-secret-1")


def partition0(n=40):
    records = synthetic.generate(n, 12, END, seed=19)
    wires = []
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            out = ingest(json.dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), CONFIG, END + timedelta(days=1))
            if isinstance(out, Accepted):
                wires.append(out.event.to_wire())
    wires.sort(key=lambda w: w["event_time"])
    return [w for w in wires if partition_for(w["user_id"], 4) == 0]


def fold(envs, table):
    f = EnvelopeFold(LIB, 5000)
    out = []
    for chunk in envs:
        r = f.fold(json.loads(pack(chunk))["records"], lambda u: copy.deepcopy(table.get(u)), NOW)
        table.update(json.loads(json.dumps(r.writes)))
        out.append([a for m in r.mirrors.values() for a in m.alerts])
    return out


def test_crash_with_8_unannounced_envelopes_loses_no_alert():
    wires = partition0()
    envs = [wires[i:i + 500] for i in range(0, len(wires), 500)]
    ref = [a for e in fold(envs, {}) for a in e]
    committed, durable = 0, min(8, len(envs))
    table = {}
    first = fold(envs[:durable], table)
    announced = [a for e in first[:committed] for a in e]
    second = fold(envs[committed:], table)
    announced += [a for e in second for a in e]
    missing = {a["alert_id"] for a in ref} - {a["alert_id"] for a in announced}
    print(f"envelopes={len(envs)} reference alerts={len(ref)} missing={len(missing)}")
    assert not missing
