"""Review finding (issue 9): A re-sent alert (redelivered event) is appended after the alerts of new events of the same
envelope: per customer the stream says potential->high_value first and then (re-sent)
regular->potential / None->potential, i.e. the LAST alert names a segment the customer left.
Happens after an ingest crash (raw records re-read and re-enveloped together with new ones)."""
from datetime import UTC, datetime, timedelta

from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.schemas.segments import load_library

LIB = load_library()
NOW = datetime(2026, 11, 30, tzinfo=UTC)
T0 = datetime(2026, 10, 1, 10, tzinfo=UTC)


def order(i, days, amount):
    return {"v": 2, "event_id": f"orders:k:{i:024x}", "source": "orders", "user_id": "U1",
            "event_time": (T0 + timedelta(days=days)).isoformat(), "quality": {},
            "data": {"order_id": f"o{i}", "status": "paid", "amount": amount}}


def test_last_alert_names_the_current_segment():
    f, table = EnvelopeFold(LIB, 5000), {}
    first = [order(1, 0, 6000)]
    r = f.fold(first, table.get, NOW)
    table.update(r.writes)   # crash before announce
    # redelivery of order 1 together with new orders (same envelope)
    env = first + [order(i, i, 6000) for i in range(2, 12)]
    r = f.fold(env, table.get, NOW)
    table.update(r.writes)
    alerts = [(a["group"], a["old"], a["new"]) for a in r.mirrors["U1"].alerts if a["group"] == "value"]
    print("value alerts in send order:", alerts, "current:", table["U1"]["seg"]["segment"])
    assert alerts[-1][2] == table["U1"]["seg"]["segment"]
