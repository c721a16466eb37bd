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
