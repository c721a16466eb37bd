"""The worker's watermark: minimum over active inputs; lagging inputs hold it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.clock import InputReport, Watermark

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


# Reports: ingest processes tell fold processes what they know of each input (issue 11).


def test_reports_of_two_processes_make_one_watermark():
    feed = Watermark(idle_timeout=timedelta(seconds=30))
    feed.apply("orders:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), WALL, False, WALL))
    feed.apply("behavior:0", InputReport(datetime(2026, 11, 1, tzinfo=UTC), WALL, False, WALL))
    assert feed.current(WALL) == datetime(2026, 6, 1, tzinfo=UTC)


def test_a_lagging_or_silent_report_holds_the_watermark():
    feed = Watermark(idle_timeout=timedelta(seconds=30), stale_after=timedelta(seconds=10))
    feed.apply("orders:0", InputReport(None, None, True, WALL))  # assigned, nothing read yet
    feed.apply("behavior:0", InputReport(datetime(2026, 11, 1, tzinfo=UTC), WALL, False, WALL))
    assert feed.current(WALL) is None
    feed.apply("orders:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), WALL, False, WALL))
    assert feed.current(WALL) == datetime(2026, 6, 1, tzinfo=UTC)
    later = WALL + timedelta(minutes=5)  # both idle, but orders' reader went quiet 5 min ago
    feed.apply("behavior:0", InputReport(datetime(2026, 11, 1, tzinfo=UTC), WALL, False, later))
    assert feed.current(later) == datetime(2026, 6, 1, tzinfo=UTC)  # held by the stale report
    feed.apply("orders:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), WALL, False, later))
    assert feed.current(later) == datetime(2026, 11, 1, tzinfo=UTC)  # fresh: the end of data


def test_reports_of_an_earlier_run_read_back_at_start_hold_the_watermark():
    """A replay: the compacted topic still holds the last run's reports (its end of data)."""
    feed = Watermark(idle_timeout=timedelta(seconds=30))
    old = WALL - timedelta(days=2)
    feed.apply("orders:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), old, False, old),
               received=WALL)
    assert feed.current(WALL) is None
    # the new reader reports: nothing acknowledged yet, records unread
    feed.apply("orders:0", InputReport(None, None, True, WALL), received=WALL)
    assert feed.current(WALL) is None
    feed.apply("orders:0", InputReport(datetime(2024, 1, 1, tzinfo=UTC), WALL, True, WALL),
               received=WALL)
    assert feed.current(WALL) == datetime(2024, 1, 1, tzinfo=UTC)


def test_a_stale_report_holds_in_wall_mode_too_and_a_retired_input_is_forgotten():
    feed = Watermark(mode="wall", idle_timeout=timedelta(seconds=30))
    feed.apply("orders:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), WALL, False, WALL))
    assert feed.current(WALL) == WALL
    assert feed.current(WALL + timedelta(hours=1)) == WALL  # its reader went quiet: hold
    feed.forget("orders:0")
    assert feed.current(WALL + timedelta(hours=1)) == WALL + timedelta(hours=1)


def test_the_senders_clock_matters_only_for_the_age_of_seen():
    """An ingest host 11 s behind: its reports are fresh by the receiver's clock."""
    feed = Watermark(idle_timeout=timedelta(seconds=30))
    behind = WALL - timedelta(seconds=11)
    feed.apply("orders:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), behind, False, behind),
               received=WALL)
    feed.apply("empty:0", InputReport(None, None, False, behind), received=WALL)
    assert feed.current(WALL) == datetime(2026, 6, 1, tzinfo=UTC)


def test_a_report_replaces_the_input_but_the_watermark_never_moves_back():
    feed = Watermark()
    feed.apply("a:0", InputReport(datetime(2026, 6, 2, tzinfo=UTC), WALL, False, WALL))
    assert feed.current(WALL) == datetime(2026, 6, 2, tzinfo=UTC)
    feed.apply("a:0", InputReport(datetime(2026, 6, 1, tzinfo=UTC), WALL, False, WALL))
    assert feed.current(WALL) == datetime(2026, 6, 2, tzinfo=UTC)


_STEP = st.tuples(
    st.sampled_from(["observe", "lagging", "wait"]),
    st.sampled_from(["orders:0", "orders:1", "behavior:0"]),
    st.integers(0, 400),  # event time: days after 2025-01-01
    st.integers(0, 90),  # wall-clock seconds that pass
    st.sets(st.sampled_from(["orders:0", "orders:1", "behavior:0"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=30), st.sampled_from(["follow", "wall"]))
def test_a_clock_fed_by_reports_equals_the_clock_they_come_from(steps, mode):
    """What a fold process computes from fresh reports is what the ingest process's own clock
    says, for any history of events, lagging sets and idle time."""
    local = Watermark(timedelta(minutes=5), mode, timedelta(seconds=30))
    feed = Watermark(timedelta(minutes=5), mode, timedelta(seconds=30))
    wall = WALL
    lagging: set[str] = set()
    assigned = {"orders:0", "orders:1", "behavior:0"}
    for action, name, day, seconds, lag in steps:
        wall += timedelta(seconds=seconds)
        if action == "observe":
            local.observe(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day), wall, name)
        elif action == "lagging":
            lagging = set(lag)
            local.set_lagging(lagging)
        for input in assigned:  # the ingest process reports every input it reads
            feed.apply(input, local.report(input, input in lagging, wall))
        assert feed.current(wall) == local.current(wall)
