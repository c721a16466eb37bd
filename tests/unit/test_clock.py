"""The worker's watermark: minimum over active inputs; lagging inputs hold it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from custpulse.processors.clock import Watermark

WALL = datetime(2026, 11, 30, tzinfo=UTC)


def test_a_source_running_ahead_does_not_drag_the_others_along():
    clock = Watermark(idle_timeout=timedelta(seconds=30))
    clock.observe(datetime(2026, 11, 1, tzinfo=UTC), WALL, "behavior:0")
    clock.observe(datetime(2026, 6, 1, tzinfo=UTC), WALL, "orders:0")
    assert clock.current(WALL) == datetime(2026, 6, 1, tzinfo=UTC)


def test_an_input_with_unread_records_holds_the_watermark_even_before_it_delivers():
    # after a restart only the behaviour partition has been read; orders:0 has a backlog
    clock = Watermark(idle_timeout=timedelta(seconds=30))
    clock.set_lagging({"orders:0"})
    clock.observe(datetime(2026, 10, 31, tzinfo=UTC), WALL, "behavior:0")
    assert clock.current(WALL) is None
    clock.observe(datetime(2026, 6, 1, tzinfo=UTC), WALL, "orders:0")
    # lagging: active whatever the wall clock says
    assert clock.current(WALL + timedelta(hours=1)) == datetime(2026, 6, 1, tzinfo=UTC)
    clock.set_lagging(set())  # caught up, then idle: the end of the data
    assert clock.current(WALL + timedelta(hours=1)) == datetime(2026, 10, 31, tzinfo=UTC)


def test_the_watermark_never_moves_back():
    clock = Watermark(idle_timeout=timedelta(seconds=30))
    clock.observe(datetime(2026, 10, 1, tzinfo=UTC), WALL, "a:0")
    assert clock.current(WALL + timedelta(minutes=5)) == datetime(2026, 10, 1, tzinfo=UTC)
    clock.observe(datetime(2026, 1, 1, tzinfo=UTC), WALL + timedelta(minutes=5), "b:0")
    assert clock.current(WALL + timedelta(minutes=5)) == datetime(2026, 10, 1, tzinfo=UTC)
