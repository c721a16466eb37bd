"""Exact commits on the events topic: never past an offset the fold has not acknowledged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from custpulse.streams.exact_offsets import (
    AHEAD,
    BEHIND,
    NEXT,
    LogOrder,
    contiguous_commit,
    is_stalled,
)


def test_commit_is_the_run_that_starts_at_the_committed_offset():
    assert contiguous_commit([6, 7, 8, 10], 6) == (9, [10])


def test_a_missing_head_commits_nothing_even_one_past():
    # Faust's own rule lets min(acked) be committed + 1: offset 6 would be committed over.
    assert contiguous_commit([7, 8, 9], 6) == (None, [7, 8, 9])
    assert contiguous_commit([13, 14], 6) == (None, [13, 14])


def test_below_the_floor_and_duplicates_are_dropped():
    assert contiguous_commit([3, 4, 6, 6, 7], 6) == (8, [])


def test_nothing_committed_and_no_log_start_commits_nothing():
    assert contiguous_commit([0, 1, 2], None) == (None, [0, 1, 2])


@given(st.integers(0, 50), st.lists(st.integers(0, 120), max_size=60))
def test_never_commits_an_offset_that_was_not_acknowledged(floor, acked):
    commit, rest = contiguous_commit(acked, floor)
    if commit is not None:
        assert set(range(floor, commit)) <= set(acked)
        assert commit not in set(acked)
        assert all(o > commit for o in rest)
    else:
        assert floor not in set(acked)
    assert rest == sorted(set(rest))


def test_stalled_when_nothing_of_the_partition_came_and_the_head_is_not_in_the_fold():
    kw = dict(floor=6, since=100.0, highwater=20, stall_s=5.0)
    assert not is_stalled(now=104.0, pending=[], acked=[], idle_s=10.0, **kw)
    assert is_stalled(now=105.0, pending=[], acked=[], idle_s=5.0, **kw)
    assert is_stalled(now=106.0, pending=[13, 14], acked=[7, 8], idle_s=6.0, **kw)
    assert not is_stalled(now=106.0, pending=[6, 7], acked=[], idle_s=6.0, **kw)  # in the fold
    assert not is_stalled(now=106.0, pending=[], acked=[6, 7], idle_s=6.0, **kw)  # not committed yet
    assert not is_stalled(now=106.0, pending=[], acked=[], idle_s=1.0, **kw)  # the partition flows


def test_not_stalled_at_the_log_end_or_without_a_floor():
    kw = dict(since=0.0, now=100.0, pending=[], acked=[], idle_s=100.0)
    assert not is_stalled(floor=20, highwater=20, **kw)
    assert not is_stalled(floor=None, highwater=20, **kw)
    assert not is_stalled(floor=6, highwater=None, **kw)


def test_log_order_after_a_seek_folds_each_offset_once_in_order():
    order = LogOrder()
    # the rest of an earlier fetch (20, 21) arrives before the re-fetch from committed 6
    seen = [(o, order.admit("p", o, 1, 6)) for o in [20, 21, 6, 7, 6, 8]]
    assert seen == [(20, AHEAD), (21, AHEAD), (6, NEXT), (7, NEXT), (6, BEHIND), (8, NEXT)]
    assert order.expected("p") == 9


def test_a_new_generation_starts_again_at_the_committed_offset():
    order = LogOrder()
    assert [order.admit("p", o, 1, 0) for o in (0, 1, 2)] == [NEXT] * 3
    assert order.admit("p", 1, 2, 1) == NEXT  # after a rebalance: committed 1, fold again
    assert order.admit("p", 3, 2, 1) == AHEAD


@given(st.integers(0, 20), st.lists(st.integers(0, 40), max_size=80))
def test_admitted_offsets_are_consecutive_from_the_floor(floor, arrivals):
    order = LogOrder()
    folded = [o for o in arrivals if order.admit("p", o, 1, floor) == NEXT]
    assert folded == list(range(floor, floor + len(folded)))


def test_skip_to_the_log_start_when_what_we_wait_for_expired():
    order = LogOrder()
    assert order.admit("p", 500, 1, 100) == AHEAD  # committed 100, the log now starts at 500
    order.skip_to("p", 500)
    assert order.admit("p", 500, 1, None) == NEXT
    order.skip_to("p", 400)  # never backwards
    assert order.expected("p") == 501


def _consumer_and_message(offset: int):
    from faust.types import TP, Message

    from custpulse.settings import Settings
    from custpulse.streams.app import create_app

    settings = Settings()
    app, _ = create_app(settings)
    consumer = app.consumer
    tp = TP(settings.events_topic, 0)
    consumer._committed_offset[tp] = 6
    app.topics._acking_topics.add(settings.events_topic)  # as once the fold agent subscribes
    message = Message(settings.events_topic, 0, offset, 0.0, 0, [], b"k", b"v", None, tp=tp)
    return consumer, message, tp


def test_a_message_the_fold_did_not_take_is_never_counted_acknowledged():
    consumer, message, tp = _consumer_and_message(6)
    assert consumer.ack(message) is False  # skipped by Faust's stream: not ours to count
    assert consumer._new_offset(tp) is None
    consumer, message, tp = _consumer_and_message(6)
    consumer.admitted(message)
    assert consumer.ack(message) is True
    assert consumer._new_offset(tp) == 7


def test_faust_would_commit_over_a_missing_head_ours_does_not():
    consumer, message, tp = _consumer_and_message(7)  # offset 6 never came
    consumer.admitted(message)
    assert consumer.ack(message) is True
    assert consumer._new_offset(tp) is None


def test_the_faust_internals_we_replace_are_still_there():
    """ExactOffsetsConsumer relies on faust-streaming 0.15's drain loop reading the read
    offsets through ``_read_offset.__getitem__`` and recording gaps with ``_add_gap``; an
    upgrade that changes either must fail here, not lose data in production."""
    import inspect

    from faust.transport.consumer import Consumer

    drain = inspect.getsource(Consumer._drain_messages)
    assert "self._read_offset.__getitem__" in drain
    assert "self._add_gap(" in drain
    assert "min(acked) - committed_offset > 1" in inspect.getsource(Consumer._new_offset)
