"""Issue 9, finding 1: an event's id names what happened, not where its bytes were.

Before, a redelivered order (same order_id, no message key) got a new id from its new log
offset, an import id hashed the file's bytes and row number (so a re-export with one row
appended, or an Excel re-save turning ``1299.00`` into ``1299``, counted every row again), and
the raw id ``1001`` in orders and in tickets was one id. These tests fail on that code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from custpulse.errors import ConfigError
from custpulse.processors.identity import (
    business_key_id,
    content_id,
    event_identity,
    is_custpulse_id,
    offset_id,
    own_event_id,
)
from custpulse.processors.importing import ImportRow, merge_by_event_time, parse_rows, prepare
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.schemas.mapping import load_mapping, load_mappings, standardize
from custpulse.streams.cli import import_inputs
from custpulse.streams.importer import files_in_dir, source_of_name

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MAPPINGS = load_mappings()
CONFIG = IngestConfig(MAPPINGS, SH, b"unit-test-secret-0123456789", timedelta(minutes=5))
ID_LENGTH = 24


def _ingest(record: dict, source: str, offset: int, partition: int = 0) -> Accepted:
    raw = json.dumps(record, ensure_ascii=False).encode()
    out = ingest(raw, source, Position(f"cp.{source}", partition, offset), CONFIG, NOW)
    assert isinstance(out, Accepted), out
    return out


def _ids(data: bytes, source: str, fmt: str = "csv") -> list[str]:
    """The event ids of a file's rows, in file order."""
    rows = prepare(parse_rows(data, fmt), MAPPINGS[source], SH, keep_order=True,
                   secret=CONFIG.secret)
    return [r.event_id for r in rows]


ORDER = {"客户ID": "U1", "订单编号": "O1001", "购买时间": "2026-11-20 10:00:00",
         "订单金额": "1299.00", "订单状态": "已支付"}


# --- business keys -----------------------------------------------------------------------------


def test_a_redelivered_order_without_key_gets_the_same_id_at_another_offset():
    first = _ingest(ORDER, "orders", offset=7).event.event_id
    again = _ingest(ORDER, "orders", offset=4711, partition=3).event.event_id
    assert first == again
    assert first.startswith("orders:k:") and len(first) == len("orders:k:") + ID_LENGTH
    # the same order spelled by another export (other names, value spellings, number form)
    other = {"customer_id": "U1", "order_no": "O1001", "purchase_time": "2026/11/20 10:00",
             "total": 1299, "order_status": "paid"}
    assert _ingest(other, "orders", offset=9).event.event_id == first


def test_the_same_raw_id_in_orders_and_tickets_gives_two_ids():
    order = _ingest({"user_id": "U1", "order_id": "1001", "order_time": "2026-11-20"},
                    "orders", offset=1).event.event_id
    ticket = _ingest({"user_id": "U1", "ticket_id": "1001", "opened_at": "2026-11-20"},
                     "tickets", offset=1).event.event_id
    assert order != ticket
    own_order = _ingest({"user_id": "U1", "event_id": "1001", "order_time": "2026-11-20"},
                        "orders", offset=2).event.event_id
    own_ticket = _ingest({"user_id": "U1", "event_id": "1001", "opened_at": "2026-11-20"},
                         "tickets", offset=2).event.event_id
    assert own_order != own_ticket
    assert own_order.startswith("orders:") and own_ticket.startswith("tickets:")


def test_ticket_opened_and_closed_are_two_events_but_redeliveries_are_not():
    opened = {"user_id": "U1", "ticket_id": "T9", "opened_at": "2026-11-20 09:00"}
    closed = {**opened, "closed_at": "2026-11-20 11:00", "satisfaction": 4}
    ids = [_ingest(r, "tickets", offset=o).event.event_id
           for o, r in enumerate([opened, closed, opened, closed])]
    assert ids[0] != ids[1]
    assert ids[2] == ids[0] and ids[3] == ids[1]


def test_an_order_status_change_is_a_new_event_of_the_same_order():
    paid = _ingest(ORDER, "orders", offset=1).event.event_id
    returned = _ingest({**ORDER, "订单状态": "已退货", "购买时间": "2026-11-21 10:00:00"},
                       "orders", offset=2).event.event_id
    assert paid != returned


def test_a_customer_record_is_identified_by_its_version():
    v1 = {"user_id": "U1", "updated_at": "2026-11-01 08:00", "member_level": "白银"}
    v2 = {**v1, "updated_at": "2026-11-02 08:00", "member_level": "黄金"}
    a = _ingest(v1, "customers", offset=1).event.event_id
    assert _ingest(v1, "customers", offset=99).event.event_id == a
    assert _ingest(v2, "customers", offset=2).event.event_id != a
    # no version: a live record is named by its log position (documented rule 4)
    plain = {"user_id": "U1", "register_date": "2025-01-01"}
    assert _ingest(plain, "customers", offset=5).event.event_id == offset_id(
        "customers", "cp.customers", 0, 5)


def test_a_keyless_live_behaviour_event_is_named_by_its_log_position():
    event = {"user_id": "U1", "behavior_type": "浏览", "behavior_time": "2026-11-20 10:00"}
    a = _ingest(event, "behavior", offset=3).event.event_id
    assert a == offset_id("behavior", "cp.behavior", 0, 3) and a.startswith("behavior:o:")
    assert _ingest(event, "behavior", offset=3).event.event_id == a  # the same message again
    assert _ingest({**event, "event_id": "ev-1"}, "behavior", offset=8).event.event_id == \
        _ingest({**event, "event_id": "ev-1"}, "behavior", offset=9).event.event_id


def test_ids_never_carry_raw_values():
    phone = "13800138000"
    ids = [
        _ingest({"user_id": "U1", "event_id": phone, "order_time": "2026-11-20"}, "orders",
                1).event.event_id,
        _ingest({"user_id": "U1", "order_id": phone, "order_time": "2026-11-20"}, "orders",
                2).event.event_id,
    ]
    assert all(phone not in i and is_custpulse_id("orders", i) for i in ids)


def test_an_importer_id_is_kept_only_by_its_own_source():
    imported = content_id("orders", {"user_id": "U1"}, 1)
    assert own_event_id("orders", {"event_id": imported}, {}) == imported
    foreign = own_event_id("tickets", {"event_id": imported}, {})
    assert foreign != imported and foreign.startswith("tickets:k:")


def test_a_user_mapping_can_declare_the_business_key(tmp_path: Path):
    path = tmp_path / "m.yaml"
    path.write_text("behavior:\n  fields:\n    log_id: [日志编号]\n  classes:\n    log_id: identifier\n"
                    "  identity:\n    key: [log_id]\n",
                    encoding="utf-8")
    mapping = load_mappings(path)["behavior"]
    assert mapping.identity_key == ("log_id",) and mapping.identity_state == ()
    fields, _ = standardize({"user_id": "U1", "日志编号": "L1"}, mapping, SH)
    assert business_key_id("behavior", fields, mapping) is not None
    for text, problem in [
        ("source: orders\nidentity: {key: [nope]}\n", "not a field of orders"),
        ("source: orders\nidentity: {keys: [order_id]}\n", "unknown key 'keys' at identity"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=problem):
            load_mapping("orders", path)


# --- imports: canonical content and occurrence numbers -----------------------------------------

# Orders without an order id (an old POS export): the content rule applies.
EXPORT = (
    "客户ID,购买时间,订单金额,渠道\n"
    "U1,2024-03-15 10:30:00,1299.00,APP\n"
    "U2,2024-03-16 09:00:00,58.50,网页\n"
    "U1,2024-03-15 10:30:00,1299.00,APP\n"  # the same purchase twice: two events
)


def test_two_identical_rows_in_one_file_are_two_events():
    ids = _ids(EXPORT.encode(), "orders")
    assert len(set(ids)) == 3 and ids[0] != ids[2]
    assert all(i.startswith("orders:c:") for i in ids)


def test_a_csv_resaved_by_excel_keeps_every_id():
    resaved = (  # Excel: numbers lose trailing zeros, dates get its own spelling, BOM, CRLF
        "\ufeff客户ID,购买时间,订单金额,渠道\r\n"
        "U1,2024/3/15 10:30,1299,APP\r\n"
        "U2,2024/3/16 9:00,58.5,网页\r\n"
        "U1,2024/3/15 10:30,1299,APP\r\n"
    )
    assert _ids(resaved.encode(), "orders") == _ids(EXPORT.encode(), "orders")


def test_a_reexport_with_a_new_column_and_rows_appended_keeps_the_old_ids():
    old = _ids(EXPORT.encode(), "orders")
    appended = (
        EXPORT.replace("渠道\n", "渠道,导出批次\n").replace("APP\n", "APP,\n").replace("网页\n", "网页,\n")
        + "U3,2024-03-17 12:00:00,10.00,APP,B2\n"
        + "U1,2024-03-15 10:30:00,1299.00,APP,B2\n"  # a third identical purchase: new
    )
    new = _ids(appended.encode(), "orders")
    assert new[:3] == old
    assert len(set(new)) == 5 and not set(new[3:]) & set(old)


def test_rows_with_a_business_key_keep_it_in_imports():
    data = "user_id,order_id,order_time,amount\nU1,O1,2024-03-15 10:30,1299.00\n"
    (key_id,) = _ids(data.encode(), "orders")
    resaved = "user_id,order_id,order_time,amount\nU1,O1,2024/3/15 10:30,1299\n"
    assert _ids(resaved.encode(), "orders") == [key_id]
    assert key_id.startswith("orders:k:")


def test_the_importer_and_the_worker_agree_on_every_id():
    data = EXPORT + "U4,2024-03-18 08:00:00,1.00,APP\n"
    rows = prepare(parse_rows(data.encode(), "csv"), MAPPINGS["orders"], SH, secret=CONFIG.secret)
    keyed = "user_id,order_id,order_time\nU1,O7,2024-03-15\n"
    rows += prepare(parse_rows(keyed.encode(), "csv"), MAPPINGS["orders"], SH,
                    secret=CONFIG.secret)
    for offset, row in enumerate(rows):
        event = _ingest(row.record, "orders", offset=offset).event
        assert event.event_id == row.event_id
        assert row.key == event.user_id and row.event_time == event.event_time


def test_event_identity_needs_an_occurrence_or_a_position_without_a_key():
    fields, _ = standardize({"user_id": "U1"}, MAPPINGS["behavior"], SH)
    with pytest.raises(ValueError):
        event_identity("behavior", {}, fields, MAPPINGS["behavior"])


# --- several files merged by event time --------------------------------------------------------


def test_several_files_are_merged_by_event_time_stably():
    customers = prepare(parse_rows(
        b'{"user_id": "U1", "register_date": "2024-03-01 00:00"}\n'
        b'{"user_id": "U2", "register_date": "2024-03-03 00:00"}\n', "jsonl"),
        MAPPINGS["customers"], SH, secret=CONFIG.secret)
    orders = prepare(parse_rows(
        b'{"user_id": "U1", "order_time": "2024-03-02 00:00", "order_id": "A"}\n'
        b'{"user_id": "U2", "order_time": "2024-03-03 00:00", "order_id": "B"}\n'
        b'{"user_id": "U3", "order_time": "someday", "order_id": "C"}\n'
        b'not json\n', "jsonl"), MAPPINGS["orders"], SH, secret=CONFIG.secret)
    merged = merge_by_event_time([customers, orders])
    order = [(i, r.row_number) for i, r in merged]
    # U1 registers, U1 orders, then the tie at 03-03: the file given first goes first
    assert order == [(0, 1), (1, 1), (0, 2), (1, 2), (1, 3), (1, 4)]
    kept = merge_by_event_time([customers, orders], keep_order=True)
    assert [(i, r.row_number) for i, r in kept] == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3),
                                                   (1, 4)]
    assert merge_by_event_time([]) == []
    assert merge_by_event_time([[ImportRow(1, {})]]) == [(0, ImportRow(1, {}))]


def test_import_arguments_single_pairs_and_folders(tmp_path: Path):
    assert import_inputs(["orders", "data/orders.jsonl"]) == [("orders", Path("data/orders.jsonl"))]
    assert import_inputs(["orders=a.csv", "behavior=b.jsonl"]) == [
        ("orders", Path("a.csv")), ("behavior", Path("b.jsonl"))]
    for bad in (["shops=a.csv"], ["orders"], ["orders=", "x"], ["a.csv", "b.csv"]):
        with pytest.raises(Exception, match="SOURCE=FILE"):
            import_inputs(bad)
    for name in ("tickets.csv", "orders_2024.jsonl", "behavior.jsonl", "customers.csv",
                 "README.md", "orders.xlsx", "orders.xls"):
        (tmp_path / name).write_text("", encoding="utf-8")
    found = [(s, p.name) for s, p in files_in_dir(tmp_path)]
    assert found == [("customers", "customers.csv"), ("behavior", "behavior.jsonl"),
                     ("orders", "orders.xlsx"), ("orders", "orders_2024.jsonl"),
                     ("tickets", "tickets.csv")]
    assert source_of_name("Orders-march.CSV") == "orders" and source_of_name("shops.csv") is None
