"""Regression cases from the adversarial review of the personal data policy (issue 10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from custpulse.processors.excerpt import field_label
from custpulse.processors.identity import content_id, scoped_id
from custpulse.processors.importing import parse_rows, prepare
from custpulse.processors.ingest import Accepted, IngestConfig, Position, excerpt_raw, ingest
from custpulse.processors.masking import scrub_text
from custpulse.processors.policy import MAX_CATEGORY, MAX_FREE_TEXT, protect_identifier
from custpulse.schemas.mapping import load_mappings, standardize

SH = ZoneInfo("Asia/Shanghai")
SECRET = b"k" * 32
MAPPINGS = load_mappings()
CONFIG = IngestConfig(MAPPINGS, SH, SECRET)
NOW = datetime(2026, 11, 30, tzinfo=UTC)
POS = Position("cp.orders", 0, 1)
ORDER = {"user_id": "U1", "order_time": "2026-11-20 10:00:00"}


def run(record: dict, source: str = "orders"):
    return ingest(json.dumps(record, ensure_ascii=False).encode(), source, POS, CONFIG, NOW)


def test_a_personal_state_value_is_not_hashed_raw_into_the_event_id():
    out = run({**ORDER, "order_id": "O1", "status": "13800138000"})
    assert isinstance(out, Accepted)
    raw_id = scoped_id("orders", "k", {"order_id": "O1", "status": "13800138000"})
    assert out.event.event_id != raw_id


def test_import_content_ids_do_not_hash_undeclared_or_personal_values():
    row = {"客户ID": "U1", "下单时间": "2026-11-20 10:00:00", "订单金额": "10",
           "商品明细": [{"sku": "P1", "联系电话": "13800138000"}]}
    (prepared,) = prepare(parse_rows(json.dumps(row, ensure_ascii=False).encode(), "jsonl"),
                          MAPPINGS["orders"], SH, secret=SECRET)
    fields, _ = standardize(row, MAPPINGS["orders"], SH)
    assert prepared.event_id != content_id("orders", fields, 1)
    again = prepare(parse_rows(json.dumps(row, ensure_ascii=False).encode(), "jsonl"),
                    MAPPINGS["orders"], SH, secret=SECRET)
    assert again[0].event_id == prepared.event_id  # still stable


@pytest.mark.parametrize("amount", [6222021234567890128, "6222021234567890128", 13800138000,
                                    "13,800,138,000"])
def test_numbers_that_are_cards_or_phones_are_rejected(amount):
    out = run({**ORDER, "amount": amount})
    assert out.code == "personal_number"
    assert "6222021234567890128" not in json.dumps(out.payload)
    assert "13800138000" not in json.dumps(out.payload).replace(",", "")


@pytest.mark.parametrize("text", ["阳光小区5栋2单元301", "幸福社区3号楼", "华润大厦A座1201室",
                                  "阳光花园B栋302", "建国门外大街甲6号", "李庄村3组15号",
                                  "文三路90号", "三里屯路19号院"])
def test_compound_and_lettered_addresses_are_masked(text):
    assert scrub_text(text) == "****"


@pytest.mark.parametrize("text, name", [("客户李娜的订单已退款", "李娜"), ("客户李娜已退款", "李娜"),
                                        ("张伟 先生来电", "张伟"), ("张伟(先生)", "张伟")])
def test_more_cued_names_are_masked(text, name):
    assert name not in scrub_text(text)


@pytest.mark.parametrize("text", ["13,800,138,000", "138_0013_8000", "138–0013–8000",
                                  "138·0013·8000", "一三八零零一三八零零零"])
def test_more_phone_spellings_are_masked(text):
    masked = scrub_text(text)
    assert "0013" not in masked.replace(",", "") and "零零一三" not in masked


@pytest.mark.parametrize("text", ["zhang伟@qq.com", "zhang@example。com", "zhang.wei@ example.com"])
def test_more_email_spellings_are_masked(text):
    assert "zhang" not in scrub_text(text)


def test_field_names_holding_names_or_phones_are_labels():
    for name in ("联系人张伟电话", "客户张伟的手机", "王小明先生地址", "(张伟)电话", "张伟收货地址",
                 "tel_138_0013_8000"):
        assert field_label(name).startswith("field_"), name
    for name in ("紧急联系人姓名", "家庭住址", "收货地址", "商品明细", "order_id", "remark2"):
        assert field_label(name) == name


def test_deep_nesting_and_lone_surrogates_are_dead_letters_not_errors():
    assert ingest(b"[" * 100_000, "orders", POS, CONFIG, NOW).code == "not_json"
    assert excerpt_raw("[" * 100_000)["bytes"] == 100_000
    assert parse_rows(b"[" * 100_000, "jsonl")[0].error == "not_json"
    surrogate = json.dumps({**ORDER, "user_id": "\ud800x"}).encode()
    assert ingest(surrogate, "orders", POS, CONFIG, NOW).code == "not_json"
    assert isinstance(run({**ORDER, "user_id": "U\U0001F600"}), Accepted)  # a valid pair is fine


def test_long_texts_are_cut_before_they_are_scanned():
    out = run({**ORDER, "channel": "中" * 16_000 + "@"})
    assert len(out.event.data["channel"]) <= MAX_CATEGORY
    ticket = run({"user_id": "U1", "opened_at": "2026-11-20", "description": "问" * 20_000},
                 "tickets")
    assert len(ticket.event.data["description"]) == MAX_FREE_TEXT
    assert protect_identifier("A" * 500, SECRET).startswith("tok_v1_")


@pytest.mark.parametrize("value", ["O202401010930035", "T20240101000123", "U000123", "P1001",
                                   "773012345678901", "1710469800000", "6901234567892"])
def test_ordinary_ids_stay_as_they_are(value):
    assert protect_identifier(value, SECRET) == value


@pytest.mark.parametrize("text", ["客户 无法登录", "客户：已处理", "用户 体验很好", "金额1,299.50元"])
def test_ordinary_ticket_text_is_not_mangled(text):
    assert scrub_text(text) == text
