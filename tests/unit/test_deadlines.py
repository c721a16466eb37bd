"""The deadline index keeps microsecond-exact deadlines (thresholds sit 1 us after a day)."""

from datetime import UTC, datetime, timedelta

from custpulse.state.deadlines import DeadlineIndex

T = datetime(2026, 3, 31, 16, 0, tzinfo=UTC) + timedelta(microseconds=1)


def test_pop_due_is_exact_ordered_and_deduplicated():
    index = DeadlineIndex()
    index.add("b", T + timedelta(days=1))
    index.add("a", T)
    index.add("a", T)
    index.add("c", None)
    assert len(index) == 2
    assert index.pop_due(T - timedelta(microseconds=1)) == []
    assert index.pop_due(T) == [("a", T)]
    assert index.pop_due(T + timedelta(days=2)) == [("b", T + timedelta(days=1))]
    assert len(index) == 0


def test_deadlines_are_kept_per_partition():
    index = DeadlineIndex()
    index.add("a", T + timedelta(days=1), 2)
    index.add("b", T, 0)
    index.add("c", T + timedelta(days=5), 2)
    index.add("b", T, 0)  # the same entry once
    assert len(index) == 3
    assert index.due_partitions(T) == [0]
    assert index.due_partitions(T + timedelta(days=1)) == [0, 2]
    assert index.earliest(2) == T + timedelta(days=1) and index.earliest(7) is None
    assert index.pop_due(T + timedelta(days=9), partition=2) == [
        ("a", T + timedelta(days=1)), ("c", T + timedelta(days=5))]
    assert index.pop_due(T + timedelta(days=9)) == [("b", T)]
    index.add("d", T, 1)
    index.clear()
    assert len(index) == 0 and index.due_partitions(T + timedelta(days=9)) == []


def test_next_deadline_with_a_daylight_saving_zone_is_after_as_of():
    from zoneinfo import ZoneInfo

    from custpulse.processors.segments import next_deadline
    from custpulse.schemas.segments import load_library

    library = load_library()
    berlin = ZoneInfo("Europe/Berlin")
    anchor = datetime(2026, 3, 1, 12, tzinfo=berlin)  # DST starts on 29 March
    for hours in range(0, 24 * 200, 7):
        as_of = (anchor + timedelta(hours=hours)).astimezone(UTC)
        at = next_deadline(library, {"last_order_at": anchor, "last_seen_at": anchor},
                           as_of=as_of)
        assert at is None or at > as_of
