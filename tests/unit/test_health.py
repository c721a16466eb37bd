"""Liveness and readiness decisions (pure)."""

from custpulse.processors.health import Health, ProgressWatch


def test_a_lagging_partition_that_does_not_move_stalls_and_moving_heals_it():
    w = ProgressWatch(stall_after_s=60)
    w.observe("events-0", 100, 150, now_s=0)
    assert w.stalled(59) == []
    w.observe("events-0", 100, 170, now_s=59)  # more arrives, nothing committed
    assert w.stalled(60) == ["events-0"]
    w.observe("events-0", 120, 170, now_s=61)  # it moves
    assert w.stalled(100) == []
    assert w.stalled(121) == ["events-0"]


def test_no_lag_never_stalls_and_unassigned_partitions_are_forgotten():
    w = ProgressWatch(stall_after_s=10)
    w.observe("p0", 50, 50, now_s=0)
    assert w.stalled(1000) == []
    w.observe("p1", None, 5, now_s=0)  # never committed, has records: lags
    assert w.stalled(10) == ["p1"]
    w.observe("p0", 50, 60, now_s=1000)  # lag starts now: the clock starts now
    assert w.stalled(1009) == ["p1"]
    w.keep_only({"p0"})
    assert w.stalled(2000) == ["p0"]


def test_health_answers():
    h = Health(ProgressWatch(30), beat_after_s=5)
    assert h.readiness() == (False, {"ready": False, "because": "starting"})
    h.set_ready(True)
    assert h.readiness()[0]
    h.beat(100)
    assert h.liveness(104)[0]
    live, details = h.liveness(106)
    assert not live and "event loop silent" in details["problems"][0]
    h.beat(106)
    h.watch.observe("events-1", 0, 9, 106)
    h.check_progress(200)
    live, details = h.liveness(106)
    assert not live and "events-1" in details["problems"][0]


def test_the_http_app_answers_health_and_metrics():
    from prometheus_client import CollectorRegistry, Counter

    from custpulse.streams.http import health_app

    registry = CollectorRegistry()
    Counter("custpulse_demo", "demo", registry=registry).inc()
    h = Health(ProgressWatch(30), beat_after_s=5)
    now = [100.0]
    app = health_app(registry, h, clock=lambda: now[0])

    def get(path):
        seen = {}
        body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""},
                            lambda status, headers: seen.update(status=status)))
        return seen["status"], body

    status, body = get("/healthz/ready")
    assert status.startswith("503") and b"starting" in body
    h.set_ready(True)
    assert get("/healthz/ready")[0].startswith("200")
    h.beat(100.0)
    assert get("/healthz/live")[0].startswith("200")
    now[0] = 200.0
    status, body = get("/healthz/live")
    assert status.startswith("503") and b"event loop silent" in body
    assert b"custpulse_demo_total 1.0" in get("/metrics")[1]
