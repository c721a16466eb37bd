"""The ingest decision and the event-count fold (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from custpulse.processors.counting import fold_count, total
from custpulse.processors.ingest import Accepted, Position, Rejected, ingest
from custpulse.schemas.events import CanonicalEvent, offset_event_id
from custpulse.schemas.times import parse_time

SH = ZoneInfo("Asia/Shanghai")
POS = Position("cp.orders", 2, 99)


def _ingest(payload, source="orders"):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ingest(raw, source, POS, SH)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not_json"),
        (b"{", "not_json"),
        ([1, 2], "not_object"),
        ("text", "not_object"),
        ({"order_time": "2024-01-01"}, "missing_user_id"),
        ({"user_id": "", "order_time": "2024-01-01"}, "missing_user_id"),
        ({"user_id": {"a": 1}, "order_time": "2024-01-01"}, "missing_user_id"),
        ({"user_id": "U1"}, "missing_event_time"),
        ({"user_id": "U1", "order_time": "31/02/2024"}, "bad_event_time"),
        (b"{" + b'"a":' + b'"' + b"x" * 1_000_001 + b'"}', "oversized"),
    ],
)
def test_rejections(payload, code):
    out = _ingest(payload)
    assert isinstance(out, Rejected)
    assert out.code == code


def test_rejection_message_never_contains_values():
    out = _ingest({"user_id": "U1", "order_time": "13800138000-secret"})
    assert isinstance(out, Rejected)
    assert "13800138000" not in out.message


def test_accepted_event_uses_own_id_or_log_position():
    out = _ingest({"user_id": " U1 ", "order_time": "2024-01-01 08:00:00", "event_id": "E1"})
    assert isinstance(out, Accepted)
    assert out.event == CanonicalEvent("E1", "orders", "U1", datetime(2024, 1, 1, tzinfo=UTC))
    out = _ingest({"user_id": 5, "order_time": 1704067200000})
    assert out.event.event_id == offset_event_id("cp.orders", 2, 99)
    assert out.event.user_id == "5"


def test_each_source_reads_its_own_time_field():
    assert isinstance(_ingest({"user_id": "U", "behavior_time": "2024-01-01"}, "behavior"), Accepted)
    assert isinstance(_ingest({"user_id": "U", "opened_at": "2024-01-01"}, "tickets"), Accepted)
    assert isinstance(_ingest({"user_id": "U", "register_date": "2024-01-01"}, "customers"), Accepted)
    assert _ingest({"user_id": "U", "order_time": "2024-01-01"}, "behavior").code == (
        "missing_event_time"
    )


def test_wire_round_trip():
    ev = CanonicalEvent("e", "tickets", "U9", datetime(2024, 5, 1, 3, 4, 5, tzinfo=SH))
    wire = json.loads(json.dumps(ev.to_wire()))
    assert wire["event_time"] == "2024-04-30T19:04:05.000+00:00"
    assert CanonicalEvent.from_wire(wire) == ev


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2024-03-15 10:30:00", "2024-03-15T10:30:00+08:00"),
        ("2024/03/15 10:30", "2024-03-15T10:30:00+08:00"),
        ("2024-03-15", "2024-03-15T00:00:00+08:00"),
        ("2024-03-15T10:30:00Z", "2024-03-15T10:30:00+00:00"),
        ("2024-03-15T10:30:00", "2024-03-15T10:30:00+08:00"),
        ("1710469800", "2024-03-15T02:30:00+00:00"),
        (1710469800123, "2024-03-15T02:30:00.123000+00:00"),
    ],
)
def test_time_formats(value, iso):
    assert parse_time(value, SH).isoformat() == iso


@pytest.mark.parametrize("value", [None, "", True, "yesterday", -5, float("nan"), [], "2024-13-01"])
def test_unreadable_times(value):
    assert parse_time(value, SH) is None


def _ev(event_id, source="orders", hour=0):
    return CanonicalEvent(event_id, source, "U1", datetime(2024, 1, 1, hour, tzinfo=UTC))


def test_fold_counts_once_per_event_id_and_keeps_latest_time():
    state = None
    verdicts = []
    for ev in [_ev("a", hour=5), _ev("b", "behavior", 3), _ev("a", hour=5), _ev("c", hour=9)]:
        state, verdict = fold_count(state, ev)
        verdicts.append(verdict)
    assert verdicts == ["accepted", "accepted", "duplicate", "accepted"]
    assert state["by_source"] == {"orders": 2, "behavior": 1}
    assert total(state) == 3
    assert state["last_event_time"] == "2024-01-01T09:00:00.000+00:00"


def test_fold_does_not_mutate_its_input():
    state, _ = fold_count(None, _ev("a"))
    snapshot = json.dumps(state, sort_keys=True)
    fold_count(state, _ev("b"))
    assert json.dumps(state, sort_keys=True) == snapshot


def test_fold_is_idempotent_under_replay_of_any_prefix():
    events = [_ev(str(i % 7), hour=i % 24) for i in range(30)]
    once = None
    for ev in events:
        once, _ = fold_count(once, ev)
    twice = once
    for ev in events[:13]:
        twice, _ = fold_count(twice, ev)
    assert twice == once
    assert total(once) == 7
