"""Personal data in free text, in the forms real CRM and service systems write it (issue 10)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.masking import scrub_text
from custpulse.processors.pii_detect import find_spans, luhn, valid_id15, valid_id18

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def with_check_digit(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


def luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn(body + d):
            return body + d
    raise AssertionError


@pytest.mark.parametrize("text, raw", [
    ("客户电话1380 013 8000请回电", "1380 013 8000"),
    ("电话138.0013.8000", "138.0013.8000"),
    ("公司电话(010) 8888 6666转客服", "8888 6666"),
    ("海外来电+86 10 8888 6666", "8888 6666"),
    ("Tel13800138000", "13800138000"),
    # right after a card whose tail reads as a landline (found by the importer property test)
    ("工单备注：6200 0000 0000 0100 206，1300 000 0000。", "1300 000 0000"),
    ("6200 0000 0000 0100 206,1300 000 0000", "1300 000 0000"),
])
def test_phones_in_any_grouping(text, raw):
    out = scrub_text(text)
    assert raw not in out
    assert re.sub(r"\D", "", raw) not in re.sub(r"\D", "", out)


@pytest.mark.parametrize("form", [
    "id11010519491231002X", "身份证 110105 19491231 002X", "110105-19491231-002X",
    "证件号：1101 0519 4912 3100 2X", "110105491231002",
])
def test_id_numbers_with_prefixes_and_separators(form):
    out = scrub_text(f"客户{form}已核验")
    assert "19491231" not in re.sub(r"\D", "", out)
    assert any(kind == "id_number" for *_, kind in find_spans(f"客户{form}已核验"))


def test_checksums():
    assert valid_id18("11010519491231002X") and not valid_id18("110105194912310021")
    assert valid_id15("110105491231002") and not valid_id15("110105491331002")
    assert luhn("4111111111111111") and not luhn("4111111111111112")


def test_bank_cards_by_luhn_and_order_ids_stay():
    out = scrub_text("退款到卡号 6222 0212 3456 7890 128，订单O202410150004583")
    assert "6222" not in out and "0212 3456" not in out
    assert "****0128" in out and "O202410150004583" in out


@pytest.mark.parametrize("text, raw", [
    ("邮箱张伟@例子.中国", "张伟"), ("邮箱 zhang(at)example.com", "zhang"),
    ("联系 li.na+vip@QQ.com 即可", "li.na+vip"), ("邮箱ｚｈａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ｚｈａｎｇ"),
])
def test_emails_internationalised_and_spelled_out(text, raw):
    assert raw not in scrub_text(text)


@pytest.mark.parametrize("text, raw", [
    ("李娜来电说快递没到", "李娜"), ("客户李娜投诉物流慢", "李娜"), ("王小明先生来电", "王小明"),
    ("欧阳娜娜女士反馈", "欧阳娜娜"), ("收货人张伟，电话13800138000", "张伟"),
])
def test_names_without_a_separated_cue(text, raw):
    assert raw not in scrub_text(text)


def test_numbers_dates_and_amounts_stay():
    text = "金额1234.50，日期2024-03-15 10:00:00，订单O202410150004583，数量12"
    assert scrub_text(text) == text


GROUPINGS = st.sampled_from([(3, 4, 4), (4, 3, 4), (3, 3, 5)])
SEPS = st.sampled_from([" ", "-", ".", ""])
AROUND = st.text(st.characters(exclude_categories=("Nd", "Cs", "Lu", "Ll"),
                               exclude_characters="@＠"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.integers(3, 9), st.integers(0, 10**9 - 1), GROUPINGS, SEPS, AROUND, AROUND)
def test_any_mobile_in_any_grouping_is_masked(second, rest, grouping, sep, pre, post):
    digits = f"1{second}{rest:09d}"
    parts, i = [], 0
    for n in grouping:
        parts.append(digits[i:i + n])
        i += n
    out = scrub_text(pre + " " + sep.join(parts) + " " + post)
    assert digits not in re.sub(r"\D", "", out)


@settings(max_examples=200, deadline=None)
@given(st.integers(10**16, 10**17 - 1), st.sampled_from([" ", "-", ""]),
       st.sampled_from(["", "id", "ID:", "身份证", "No."]), AROUND)
def test_any_valid_id_in_any_separator_form_is_masked(body, sep, prefix, post):
    id18 = with_check_digit(str(body))
    form = sep.join([id18[:6], id18[6:14], id18[14:]])
    out = scrub_text(prefix + form + " " + post)
    assert id18[6:14] not in re.sub(r"\D", "", out)


@settings(max_examples=200, deadline=None)
@given(st.integers(10**14, 10**15 - 1), st.sampled_from([" ", "-", ""]), AROUND)
def test_any_luhn_card_is_masked(body, sep, post):
    card = luhn_complete(str(body))
    form = sep.join(card[i:i + 4] for i in range(0, 16, 4))
    out = scrub_text("卡号" + form + "，" + post)
    assert card[4:12] not in re.sub(r"\D", "", out)
