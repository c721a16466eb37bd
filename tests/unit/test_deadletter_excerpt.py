"""Dead letters keep a structured excerpt, never raw personal text (issue 10 findings)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.excerpt import field_label, shape_text
from custpulse.processors.ingest import IngestConfig, Position, excerpt_raw, ingest
from custpulse.schemas.mapping import load_mappings

CONFIG = IngestConfig(load_mappings(), ZoneInfo("Asia/Shanghai"), b"k" * 32, timedelta(minutes=5))
POS = Position("cp.orders", 0, 7)
NOW = datetime(2026, 11, 20, tzinfo=UTC)
NAME, ADDRESS, PHONE = "王小明", "广东省深圳市南山区科技园路1号2栋301室", "13800138000"


def dumped(outcome) -> str:
    return json.dumps(outcome.payload, ensure_ascii=False) + outcome.message


def test_a_line_with_a_trailing_comma_keeps_its_shape_not_its_values():
    raw = json.dumps({"客户姓名": NAME, "地址": ADDRESS, "电话": PHONE}, ensure_ascii=False)
    out = ingest((raw[:-1] + ",}").encode(), "orders", POS, CONFIG, NOW)
    assert out.code == "not_json"
    text = dumped(out)
    assert NAME not in text and "科技园路" not in text and PHONE not in text
    assert out.payload["shape"].endswith(",}")


def test_a_json_array_keeps_only_types():
    out = ingest(json.dumps([{"姓名": NAME, "收货地址": ADDRESS}], ensure_ascii=False).encode(),
                 "orders", POS, CONFIG, NOW)
    assert out.code == "not_object"
    assert NAME not in dumped(out) and "科技园路" not in dumped(out)


def test_undeclared_fields_and_nested_values_do_not_leak():
    record = {"user_id": "U1", "order_time": "never", "紧急联系人姓名": NAME, "家庭住址": ADDRESS,
              "items": [{"收货人": NAME, "收货地址": ADDRESS, "sku": "A1"}],
              f"备用{PHONE}": "x"}
    out = ingest(json.dumps(record, ensure_ascii=False).encode(), "orders", POS, CONFIG, NOW)
    assert out.code == "bad_event_time"
    text = dumped(out)
    assert NAME not in text and "科技园路" not in text and PHONE not in text
    assert out.payload["家庭住址"] == "广东省深圳市南山区****"  # masked by what its name says
    assert out.payload["紧急联系人姓名"] == "王**"


def test_importer_rows_keep_an_excerpt():
    assert excerpt_raw('{"姓名": "王小明",}') == {"bytes": 24, "shape": '{"aa": "aaa",}'}
    assert excerpt_raw('["王小明"]') == {"bytes": 13, "types": ["<array 1>", "<text 3>"]}


def test_field_labels():
    assert field_label("紧急联系人姓名") == "紧急联系人姓名"
    assert field_label("order_time") == "order_time"
    assert field_label("王小明").startswith("field_")
    assert field_label(PHONE).startswith("field_")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_a_shape_never_holds_a_letter_or_digit_of_the_text(text):
    shape = shape_text(text)
    assert all(c in "a9?" or (c.isascii() and not c.isalnum()) for c in shape.replace(
        "true", "").replace("false", "").replace("null", ""))


def test_a_personal_user_id_travels_as_its_token():
    from custpulse.processors.masking import pii_token

    for raw, kind in ((PHONE, "phone"), ("zhang.wei@example.com", "email"),
                      ("11010519491231002X", "id_number")):
        record = {"user_id": raw, "order_time": "2026-11-19 10:00:00", "amount": 10}
        out = ingest(json.dumps(record).encode(), "orders", POS, CONFIG, NOW)
        assert out.event.user_id == pii_token(raw, b"k" * 32, kind)
        assert raw not in json.dumps(out.event.to_wire(), ensure_ascii=False)
    record = {"user_id": "C000123", "order_time": "2026-11-19 10:00:00", "amount": 10}
    assert ingest(json.dumps(record).encode(), "orders", POS, CONFIG, NOW).event.user_id == "C000123"


def test_unmapped_field_names_are_labels():
    record = {"user_id": "U1", "order_time": "2026-11-19 10:00:00", "amount": 10,
              PHONE: "x", "家庭住址": ADDRESS}
    out = ingest(json.dumps(record, ensure_ascii=False).encode(), "orders", POS, CONFIG, NOW)
    text = json.dumps(out.event.to_wire(), ensure_ascii=False)
    assert PHONE not in text and "科技园路" not in text


def test_nested_values_carry_only_their_declared_keys():
    record = {"user_id": "U1", "order_time": "2026-11-19 10:00:00", "amount": 10,
              "items": [{"sku": "A1", "qty": 2, "收货人": NAME, "收货地址": ADDRESS,
                         "联系电话": PHONE, PHONE: 1}, "王小明 13800138000"]}
    out = ingest(json.dumps(record, ensure_ascii=False).encode(), "orders", POS, CONFIG, NOW)
    text = json.dumps(out.event.to_wire(), ensure_ascii=False)
    assert NAME not in text and "科技园路" not in text and PHONE not in text
    assert out.event.data["items"] == [{"product_id": "A1", "quantity": 2}]
    dropped = out.event.quality["unmapped_fields"]
    assert {"items.收货人", "items.收货地址", "items.联系电话", "items[]"} <= set(dropped)
    assert all(PHONE not in label for label in dropped)
