"""Issue 9, finding 8: time parsing does not guess.

Before, ``"20240315"`` was read as epoch seconds (1970-08-23) and the Excel serial
``45366.4375`` as 1970-01-01, and both were accepted. Now a bare number is read only as the
mapping declares it per field (``time_formats``), otherwise the record is dead-lettered as
``ambiguous_time``; text forms keep working.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from custpulse.errors import ConfigError
from custpulse.processors.ingest import Accepted, IngestConfig, Position, Rejected, ingest
from custpulse.schemas.mapping import load_mapping, load_mappings, standardize
from custpulse.schemas.times import AMBIGUOUS, UNREADABLE, parse_time, read_time

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = b"unit-test-secret-0123456789"
POS = Position("cp.orders", 0, 1)


def _config(mappings=None) -> IngestConfig:
    return IngestConfig(mappings or load_mappings(), SH, SECRET, timedelta(minutes=5))


def _ingest(record: dict, source: str = "orders", config: IngestConfig | None = None):
    raw = json.dumps(record, ensure_ascii=False).encode()
    return ingest(raw, source, POS, config or _config(), NOW)


def _declared(tmp_path: Path, text: str) -> dict:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mappings(path)


@pytest.mark.parametrize(
    "value", ["20240315", 20240315, 45366.4375, "45366.4375", 1710469800, "1710469800000"]
)
def test_bare_numbers_are_ambiguous_without_a_declared_format(value):
    assert read_time(value, SH) == (None, AMBIGUOUS)
    assert parse_time(value, SH) is None  # never 1970-08-23 or 1970-01-01
    fields, problems = standardize({"order_time": value}, load_mapping("orders"), SH)
    assert fields["order_time"] is None
    assert [(p.code, p.field) for p in problems] == [("ambiguous_time", "order_time")]
    assert str(value) not in problems[0].message  # reasons never carry values


@pytest.mark.parametrize("value", ["20240315", 45366.4375])
def test_ambiguous_event_time_is_dead_lettered_with_its_reason(value):
    out = _ingest({"user_id": "U1", "order_time": value, "amount": 5})
    assert isinstance(out, Rejected)
    assert (out.code, out.field) == ("ambiguous_time", "order_time")


def test_ambiguous_other_time_field_is_dead_lettered_too():
    out = _ingest({"user_id": "U1", "opened_at": "2026-11-20 10:00", "closed_at": 20261120},
                  "tickets")
    assert isinstance(out, Rejected) and (out.code, out.field) == ("ambiguous_time", "closed_at")


@pytest.mark.parametrize(("value", "why"), [(-5, UNREADABLE), (float("nan"), UNREADABLE)])
def test_numbers_no_format_reads_are_unreadable_not_ambiguous(value, why):
    assert read_time(value, SH) == (None, why)
    for fmt in ("epoch_s", "epoch_ms", "excel_serial", "yyyymmdd"):
        assert read_time(value, SH, fmt) == (None, UNREADABLE)


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        ("20240315", "yyyymmdd", datetime(2024, 3, 15, tzinfo=SH)),  # local midnight
        (20240315, "yyyymmdd", datetime(2024, 3, 15, tzinfo=SH)),
        (45366.4375, "excel_serial", datetime(2024, 3, 15, 10, 30, tzinfo=SH)),  # local 10:30
        ("45366", "excel_serial", datetime(2024, 3, 15, tzinfo=SH)),
        (61, "excel_serial", datetime(1900, 3, 1, tzinfo=SH)),
        (1, "excel_serial", datetime(1900, 1, 1, tzinfo=SH)),
        (1710469800, "epoch_s", datetime(2024, 3, 15, 2, 30, tzinfo=UTC)),  # UTC by definition
        ("1710469800.5", "epoch_s", datetime(2024, 3, 15, 2, 30, 0, 500000, tzinfo=UTC)),
        (1710469800123, "epoch_ms", datetime(2024, 3, 15, 2, 30, 0, 123000, tzinfo=UTC)),
        ("1710469800000", "epoch_ms", datetime(2024, 3, 15, 2, 30, tzinfo=UTC)),
        ("2024-03-15 10:30", "epoch_ms", datetime(2024, 3, 15, 10, 30, tzinfo=SH)),  # text
    ],
)
def test_declared_formats_read_numbers_exactly(value, fmt, expected):
    moment, why = read_time(value, SH, fmt)
    assert why is None and moment == expected and moment.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        ("2024031", "yyyymmdd"),  # seven digits
        ("20241315", "yyyymmdd"),  # month 13
        (20240315.5, "yyyymmdd"),
        (60, "excel_serial"),  # Excel's fictitious 1900-02-29
        (0, "excel_serial"),
        (1710469800000, "epoch_s"),  # milliseconds declared as seconds: year 56000, refused
    ],
)
def test_declared_formats_refuse_what_they_cannot_read(value, fmt):
    assert read_time(value, SH, fmt) == (None, UNREADABLE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-15 10:30", datetime(2024, 3, 15, 10, 30, tzinfo=SH)),
        ("2024-03-15 10:30:00", datetime(2024, 3, 15, 10, 30, tzinfo=SH)),
        ("2024/3/15", datetime(2024, 3, 15, tzinfo=SH)),
        ("2024/03/15 10:30", datetime(2024, 3, 15, 10, 30, tzinfo=SH)),
        ("2024年3月15日", datetime(2024, 3, 15, tzinfo=SH)),
        ("2024年3月15日 10时30分", datetime(2024, 3, 15, 10, 30, tzinfo=SH)),
        ("2024-03-15T10:30:00+08:00", datetime(2024, 3, 15, 2, 30, tzinfo=UTC)),
        ("2024-03-15T02:30:00Z", datetime(2024, 3, 15, 2, 30, tzinfo=UTC)),
    ],
)
def test_unambiguous_text_forms_need_no_declaration(value, expected):
    assert read_time(value, SH) == (expected, None)
    fields, problems = standardize({"order_time": value}, load_mapping("orders"), SH)
    assert problems == [] and fields["order_time"] == expected


def test_a_declared_field_is_accepted_by_ingest_at_the_right_time(tmp_path):
    mappings = _declared(tmp_path, """
orders:
  time_formats: {order_time: yyyymmdd}
tickets:
  time_formats: {opened_at: excel_serial, closed_at: epoch_ms}
""")
    assert mappings["orders"].time_formats == {"order_time": "yyyymmdd"}
    out = _ingest({"user_id": "U1", "order_time": "20240315", "amount": 5}, "orders",
                  _config(mappings))
    assert isinstance(out, Accepted)
    assert out.event.event_time == datetime(2024, 3, 14, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai
    out = _ingest({"user_id": "U1", "opened_at": 45366.4375, "closed_at": 1710480600000},
                  "tickets", _config(mappings))
    assert isinstance(out, Accepted)
    assert out.event.event_time == datetime(2024, 3, 15, 2, 30, tzinfo=UTC)  # 10:30 Shanghai
    assert out.event.data["closed_at"] == "2024-03-15T05:30:00.000+00:00"
    # other sources and other fields still refuse bare numbers
    out = _ingest({"user_id": "U1", "behavior_time": 20240315}, "behavior", _config(mappings))
    assert isinstance(out, Rejected) and out.code == "ambiguous_time"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("source: orders\ntime_formats: {order_time: epoch_us}\n", "unknown time format"),
        ("source: orders\ntime_formats: {amount: epoch_s}\n", "only to time fields"),
        ("source: orders\ntime_formats: {nope: epoch_s}\n", "not a field of orders"),
        ("source: orders\ntime_formats: [order_time]\n", "not a mapping"),
    ],
)
def test_bad_time_format_declarations_are_one_sentence(tmp_path, text, problem):
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem):
        load_mapping("orders", path)
