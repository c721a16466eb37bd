"""Ops monitor: spikes and drops against a trailing baseline, dedup, bounded memory."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.errors import ConfigError
from custpulse.processors.ops import KINDS, OpsConfig, OpsMonitor

T0 = datetime(2026, 1, 1, tzinfo=UTC)  # bucket boundary (60 s buckets)
NOW = T0 + timedelta(minutes=65)  # window = minutes [60, 65), baseline = minutes [0, 60)


def minute(m: int, second: int = 0) -> datetime:
    return T0 + timedelta(minutes=m, seconds=second)


def feed(mon: OpsMonitor, kind: str, per_bucket: int, minutes: range) -> None:
    for m in minutes:
        mon.observe(kind, minute(m, 30), per_bucket)


BASELINE = range(0, 60)
WINDOW = range(60, 65)


def steady(mon: OpsMonitor, in_per_bucket=100, dl_per_bucket=1) -> None:
    feed(mon, "in", in_per_bucket, BASELINE)
    feed(mon, "deadletter", dl_per_bucket, BASELINE)


def kinds(alerts):
    return [a["kind"] for a in alerts]


# --- dead-letter spikes -----------------------------------------------------------------------


def test_deadletter_spike_fires_once_per_window():
    mon = OpsMonitor()
    steady(mon)  # baseline rate 60 / 6000 = 1% -> threshold max(3 * 1%, 5%) = 5%
    feed(mon, "in", 100, WINDOW)
    feed(mon, "deadletter", 20, WINDOW)  # window rate 100 / 500 = 20%
    [alert] = mon.check(NOW)
    start, end = "2026-01-01T01:00:00.000+00:00", "2026-01-01T01:05:00.000+00:00"
    assert alert["kind"] == "deadletter_spike"
    assert alert["alert_id"] == "o-b83ce9cb379b32a759b874b2"
    assert (
        alert["alert_id"]
        == "o-" + hashlib.sha256(f"deadletter_spike\x00{start}".encode()).hexdigest()[:24]
    )
    assert (alert["window_start"], alert["window_end"]) == (start, end)
    assert (alert["value"], alert["baseline"], alert["threshold"]) == (0.2, 0.01, 0.05)
    assert alert["detail"]["window"]["in"] == 500 and alert["detail"]["window"]["deadletter"] == 100
    assert alert["detail"]["baseline"]["in"] == 6000
    assert alert["v"] == 1 and json.loads(json.dumps(alert)) == alert
    msg = alert["message"]
    assert msg.endswith(".") and "\n" not in msg and "20.0%" in msg and start in msg
    # not again on re-check: same now, later in the same open bucket, after a late event
    assert mon.check(NOW) == []
    assert mon.check(NOW + timedelta(seconds=59)) == []
    mon.observe("deadletter", minute(62), 50)
    assert mon.check(NOW) == []


def test_no_alert_for_steady_traffic():
    mon = OpsMonitor()
    steady(mon)
    feed(mon, "in", 100, WINDOW)
    feed(mon, "deadletter", 1, WINDOW)
    assert mon.check(NOW) == []


def test_threshold_is_inclusive_at_the_floor():
    for window_dl, fires in ((24, False), (25, True)):  # 24/500 = 4.8%, 25/500 = 5%
        mon = OpsMonitor()
        steady(mon, dl_per_bucket=0)
        feed(mon, "in", 100, WINDOW)
        mon.observe("deadletter", minute(61), window_dl)
        assert kinds(mon.check(NOW)) == (["deadletter_spike"] if fires else [])


def test_threshold_follows_the_baseline_rate():
    # baseline 4% -> threshold 3 * 4% = 12%: 10% in the window does not fire, 12% does
    for window_dl, fires in ((50, False), (60, True)):
        mon = OpsMonitor()
        steady(mon, dl_per_bucket=4)
        feed(mon, "in", 100, WINDOW)
        mon.observe("deadletter", minute(60), window_dl)
        alerts = mon.check(NOW)
        assert kinds(alerts) == (["deadletter_spike"] if fires else [])
        if fires:
            assert (alerts[0]["baseline"], alerts[0]["threshold"]) == (0.04, 0.12)


def test_no_deadletter_alert_below_min_volume():
    mon = OpsMonitor()
    steady(mon)
    feed(mon, "in", 9, WINDOW)  # 45 < min_volume 50
    feed(mon, "deadletter", 9, WINDOW)  # 100% dead-lettered, but too few events
    assert mon.check(NOW) == []
    mon.observe("in", minute(64), 5)  # now 50 in the window
    assert kinds(mon.check(NOW)) == ["deadletter_spike"]


def test_next_window_is_a_new_alert():
    mon = OpsMonitor()
    steady(mon)
    feed(mon, "in", 100, range(60, 66))
    feed(mon, "deadletter", 20, range(60, 66))
    first = mon.check(NOW)
    second = mon.check(NOW + timedelta(minutes=1))
    assert kinds(first) == kinds(second) == ["deadletter_spike"]
    assert first[0]["alert_id"] != second[0]["alert_id"]
    assert second[0]["window_start"] == "2026-01-01T01:01:00.000+00:00"


# --- complaints ----------------------------------------------------------------------------


def test_complaint_spike_over_a_quiet_baseline():
    mon = OpsMonitor()
    feed(mon, "ticket", 10, BASELINE)
    for m in range(0, 60, 6):
        mon.observe("complaint", minute(m), 1)  # 10 per hour -> 10 * 5 / 60 = 0.83 per window
    mon.observe("complaint", minute(61), 4)
    assert mon.check(NOW) == []  # 4 < complaint_min 5
    mon.observe("complaint", minute(63), 1)
    [alert] = mon.check(NOW)
    assert alert["kind"] == "complaint_spike"
    assert (alert["value"], alert["baseline"], alert["threshold"]) == (5, 0.833333, 5.0)
    assert mon.check(NOW) == []


def test_complaint_threshold_scales_the_baseline_to_the_window():
    # 1 complaint per bucket -> 5 per window -> threshold 3 * 5 = 15
    for count, fires in ((14, False), (15, True)):
        mon = OpsMonitor()
        feed(mon, "complaint", 1, BASELINE)
        mon.observe("complaint", minute(60), count)
        assert kinds(mon.check(NOW)) == (["complaint_spike"] if fires else [])


# --- funnel --------------------------------------------------------------------------------


def funnel_baseline(mon: OpsMonitor, atc=10, orders=3) -> None:
    feed(mon, "add_to_cart", atc, BASELINE)  # 600 carts, 180 orders: 30% -> threshold 15%
    feed(mon, "order", orders, BASELINE)


def test_funnel_drop():
    mon = OpsMonitor()
    funnel_baseline(mon)
    feed(mon, "add_to_cart", 10, WINDOW)
    feed(mon, "order", 1, WINDOW)  # 5 / 50 = 10% < 15%
    [alert] = mon.check(NOW)
    assert alert["kind"] == "funnel_drop"
    assert (alert["value"], alert["baseline"], alert["threshold"]) == (0.1, 0.3, 0.15)
    assert "10.0%" in alert["message"]


def test_no_funnel_drop_above_threshold():
    mon = OpsMonitor()
    funnel_baseline(mon)
    feed(mon, "add_to_cart", 10, WINDOW)
    mon.observe("order", minute(60), 8)  # 16% >= 15%
    assert mon.check(NOW) == []


def test_no_funnel_drop_on_small_volumes():
    mon = OpsMonitor()
    funnel_baseline(mon)
    feed(mon, "add_to_cart", 5, WINDOW)  # 25 < funnel_min_volume 30
    assert mon.check(NOW) == []
    small = OpsMonitor()
    small.observe("add_to_cart", minute(0), 29)  # baseline carts 29 < 30
    small.observe("order", minute(0), 29)
    feed(small, "add_to_cart", 10, WINDOW)
    assert small.check(NOW) == []


# --- empty baseline, config, input checks ---------------------------------------------------


def test_no_alert_when_baseline_is_empty():
    mon = OpsMonitor()
    feed(mon, "in", 100, WINDOW)
    feed(mon, "deadletter", 100, WINDOW)
    feed(mon, "complaint", 50, WINDOW)
    feed(mon, "add_to_cart", 100, WINDOW)
    assert mon.check(NOW) == []
    assert OpsMonitor().check(NOW) == []


def test_times_in_other_zones_land_in_the_same_bucket():
    mon = OpsMonitor()
    shanghai = timezone(timedelta(hours=8))
    mon.observe("in", minute(60, 30).astimezone(shanghai), 7)
    assert mon.snapshot(NOW.astimezone(shanghai))["window"]["in"] == 7


@pytest.mark.parametrize(
    "change",
    [{"bucket_s": 0}, {"window_buckets": 1.5}, {"min_volume": -1}, {"complaint_factor": True}],
)
def test_config_validation(change):
    with pytest.raises(ConfigError):
        OpsConfig(**change)


def test_observe_rejects_bad_input():
    mon = OpsMonitor()
    with pytest.raises(ValueError):
        mon.observe("click", T0)
    with pytest.raises(ValueError):
        mon.observe("in", T0, -1)
    with pytest.raises(ValueError):
        mon.observe("in", datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        mon.check(datetime(2026, 1, 1))


def test_snapshot():
    mon = OpsMonitor()
    assert mon.snapshot()["window_start"] is None
    steady(mon)
    feed(mon, "in", 100, WINDOW)
    snap = mon.snapshot(NOW)
    assert snap["window_start"] == "2026-01-01T01:00:00.000+00:00"
    assert snap["baseline_start"] == "2026-01-01T00:00:00.000+00:00"
    assert snap["window"]["in"] == 500 and snap["baseline"] == {
        "in": 6000, "deadletter": 60, "complaint": 0, "add_to_cart": 0, "order": 0, "ticket": 0
    }  # fmt: skip
    assert json.loads(json.dumps(snap)) == snap
    mon.check(NOW)
    assert mon.snapshot() == snap


# --- memory ---------------------------------------------------------------------------------


def test_memory_bounded_after_10000_buckets():
    mon = OpsMonitor()
    fired = set()
    for m in range(10_000):
        mon.observe("in", minute(m), 100)
        mon.observe("deadletter", minute(m), 40 if m % 500 < 10 else 1)
        mon.observe("complaint", minute(m), 1)
        fired.update(a["alert_id"] for a in mon.check(minute(m + 1)))
    assert fired  # spikes were seen ...
    assert len(mon._buckets) <= 66  # ... but only window + baseline (+ the open bucket) are held
    assert len(mon._fired) <= 3 * 66


def test_memory_bounded_without_checks():
    mon = OpsMonitor()
    for m in range(10_000):
        mon.observe("in", minute(m))
    assert mon.snapshot()["buckets_held"] <= 2 * 65 + 2


def test_events_older_than_the_horizon_are_dropped_and_counted():
    mon = OpsMonitor()
    mon.check(NOW)
    mon.observe("in", minute(-1), 3)  # before the baseline of the latest check
    mon.observe("in", minute(0), 2)  # first baseline bucket: kept
    snap = mon.snapshot()
    assert snap["late_dropped"] == 3 and snap["baseline"]["in"] == 2


# --- property: never raises -----------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(("observe", "check")),
        st.sampled_from(KINDS),
        st.integers(min_value=-3 * 3600, max_value=3 * 3600),  # seconds around NOW
        st.integers(min_value=0, max_value=200),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_observe_and_check_never_raise(sequence):
    cfg = OpsConfig(
        window_buckets=2, baseline_buckets=3, min_volume=1, complaint_min=1, funnel_min_volume=1
    )
    mon = OpsMonitor(cfg)
    seen = set()
    for op, kind, offset, n in sequence:
        at = NOW + timedelta(seconds=offset)
        if op == "observe":
            mon.observe(kind, at, n)
        else:
            for alert in mon.check(at):
                assert alert["alert_id"] not in seen  # once per (kind, window start)
                seen.add(alert["alert_id"])
                json.dumps(alert)
        assert len(mon._buckets) <= 2 * 5 + 2
    json.dumps(mon.snapshot())
