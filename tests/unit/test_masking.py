"""PII masking: display masks, keyed tokens and the free-text scrubber (pure, stdlib only)."""

import hashlib
import hmac
import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.processors.masking import (
    FREE_TEXT_FIELDS,
    PII_FIELDS,
    find_pii,
    mask_address,
    mask_email,
    mask_field,
    mask_id_number,
    mask_name,
    mask_phone,
    pii_token,
    scrub_text,
)

SECRET = b"test-secret-not-for-production"
MALE_ID = "110105194912310011"  # 17th digit 1 (odd), valid check digit
FEMALE_ID = "11010519491231002X"  # 17th digit 2 (even), check character X
MALE_ID_X = "44030519900101123X"  # 17th digit 3, check character X
TOKEN = re.compile(r"tok_v1_[0-9a-f]{32}")


# --- mask_phone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800138000", "138****8000"),
        ("+86 138-0013-8000", "138****8000"),
        ("86-13800138000", "138****8000"),
        ("138 0013 8000", "138****8000"),
        ("138-0013-8000", "138****8000"),
        ("+8613800138000", "138****8000"),
        ("0086 138 0013 8000", "138****8000"),
        ("(+86) 13800138000", "138****8000"),
        ("１３８００１３８０００", "138****8000"),  # full-width digits
        ("  13800138000\n", "138****8000"),
        ("010-12345678", "010****5678"),
        ("0755-1234567", "075****4567"),
        ("+86 10 1234 5678", "010****5678"),
        ("12345678", "****5678"),  # no area code: only the last 4 shown
        ("1234567", "****4567"),
        ("123456", "****"),
        ("", "****"),
        ("unknown", "****"),
        ("电话", "****"),
    ],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


# --- mask_id_number -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("11010519491231002X", "110***********002X"),
        ("11010519491231002x", "110***********002X"),
        ("110105194912310011", "110***********0011"),
        (" 440305 19900101 123X ", "440***********123X"),
        ("１１０１０５１９４９１２３１００２Ｘ", "110***********002X"),
        ("110105491231002", "110********1002"),  # old 15-digit id
        ("E12345678", "E******78"),  # passport
        ("H1234567", "H*****67"),  # Hong Kong / Macau permit
        ("A12345", "A***45"),
        ("A1234", "****"),
        ("", "****"),
    ],
)
def test_mask_id_number(raw: str, masked: str) -> None:
    assert mask_id_number(raw) == masked


def test_mask_id_number_keeps_length_of_resident_ids() -> None:
    assert len(mask_id_number(FEMALE_ID)) == 18
    assert len(mask_id_number("110105491231002")) == 15


# --- mask_email ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("zhang.wei@example.com", "z***@example.com"),
        ("sophia.johnson159@163.com", "s***@163.com"),
        ("6254098779@qq.com", "6***@qq.com"),
        ("  Tom@Mail.Example.com ", "T***@Mail.Example.com"),
        ("ａｂ＠ｑｑ．ｃｏｍ", "a***@qq.com"),
        ("a@b.co", "a***@b.co"),
        ("no-at-sign.com", "****"),
        ("user@localhost", "****"),
        ("@example.com", "****"),
        ("a@@b.com", "****"),
        ("a b@c.com", "****"),
        ("a@b..com", "****"),
        ("", "****"),
    ],
)
def test_mask_email(raw: str, masked: str) -> None:
    assert mask_email(raw) == masked


# --- mask_name ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "id_number", "masked"),
    [
        ("张伟", MALE_ID, "*先生"),
        ("王芳", FEMALE_ID, "*女士"),
        ("王芳", FEMALE_ID.lower(), "*女士"),
        ("Emma Brown", FEMALE_ID, "*女士"),
        ("刘强", MALE_ID_X, "*先生"),
        ("刘强", MALE_ID_X.lower(), "*先生"),
        ("李明", "110105491231001", "*先生"),  # 15-digit: last digit odd
        ("李娜", "110105491231002", "*女士"),
        ("张伟", "110105194912310012", "张*"),  # bad check digit: gender unknown
        ("张伟", "E12345678", "张*"),
        ("张伟", "", "张*"),
        ("张伟", None, "张*"),
        ("吴燕芳", None, "吴**"),
        ("欧阳娜娜", None, "欧阳**"),
        ("司马相如", None, "司马**"),
        ("诸葛亮", None, "诸葛*"),
        ("上官婉儿", None, "上官**"),
        ("东方", None, "东*"),  # two characters: single surname + given name
        ("张", None, "*"),
        ("John Smith", None, "J*** S****"),
        ("Sophia  Johnson", None, "S*****  J******"),
        ("Ｊｏｈｎ", None, "J***"),
        ("  ", None, ""),
        ("", MALE_ID, ""),
    ],
)
def test_mask_name(raw: str, id_number: str | None, masked: str) -> None:
    assert mask_name(raw, id_number) == masked


def test_mask_name_accepts_non_str_id() -> None:
    assert mask_name("李明", 110105491231001) == "*先生"  # type: ignore[arg-type]


# --- mask_address -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("广东省深圳市南山区科技园路1号2栋301室", "广东省深圳市南山区****"),
        ("北京市朝阳区建设路12号", "北京市朝阳区****"),
        ("上海市浦东新区建设路651号18栋402室", "上海市浦东新区****"),
        ("天津市和平区解放路1号", "天津市和平区****"),
        ("重庆市渝中区人民路5号", "重庆市渝中区****"),
        ("山东省青岛市市南区学府路863号", "山东省青岛市市南区****"),
        ("内蒙古自治区呼和浩特市新城区中山路1号", "内蒙古自治区呼和浩特市新城区****"),
        ("西藏自治区阿里地区噶尔县狮泉河镇", "西藏自治区阿里地区噶尔县****"),
        ("内蒙古自治区锡林郭勒盟正蓝旗上都镇", "内蒙古自治区锡林郭勒盟正蓝旗****"),
        ("浙江省杭州市文一路8号", "浙江省杭州市****"),  # no district: keep the city
        ("深圳市南山区科技园路1号", "深圳市南山区****"),
        ("广东省深圳市南山区", "广东省深圳市南山区"),  # nothing to hide
        ("科技园路1号2栋301室", "****"),
        ("Room 301, 1 Keji Road", "****"),
        ("", "****"),
    ],
)
def test_mask_address(raw: str, masked: str) -> None:
    assert mask_address(raw) == masked


# --- pii_token ----------------------------------------------------------------------------


def test_token_format_and_determinism() -> None:
    token = pii_token("13800138000", SECRET, "phone")
    assert TOKEN.fullmatch(token)
    assert token == pii_token("13800138000", SECRET, "phone")


def test_token_is_keyed_hmac_not_plain_hash() -> None:
    expected = hmac.new(SECRET, b"phone\x0013800138000", hashlib.sha256).hexdigest()[:32]
    assert pii_token("13800138000", SECRET, "phone") == "tok_v1_" + expected
    assert pii_token("13800138000", SECRET, "phone", 2) == "tok_v2_" + expected
    plain = hashlib.sha256(b"13800138000").hexdigest()
    assert plain[:32] not in pii_token("13800138000", SECRET, "phone")


def test_token_depends_on_secret_and_kind() -> None:
    assert pii_token("13800138000", SECRET, "phone") != pii_token("13800138000", b"x", "phone")
    assert pii_token("13800138000", SECRET, "phone") != pii_token("13800138000", SECRET, "other")


def test_token_distinguishes_values() -> None:
    assert pii_token("13800138000", SECRET, "phone") != pii_token("13800138001", SECRET, "phone")


@pytest.mark.parametrize(
    ("kind", "spellings"),
    [
        (
            "phone",
            [
                "13800138000",
                "+86 138-0013-8000",
                "86-13800138000",
                "138 0013 8000",
                "0086 13800138000",
                "１３８００１３８０００",
            ],
        ),
        ("phone", ["010-12345678", "01012345678", "+86 10 1234 5678"]),
        ("email", ["zhang.wei@example.com", " Zhang.Wei@Example.COM ", "ZHANG.WEI@EXAMPLE.COM"]),
        ("id_number", ["11010519491231002X", "11010519491231002x", " 11010519491231002x "]),
        ("name", ["张伟", " 张伟 "]),
    ],
)
def test_token_normalization_equivalence(kind: str, spellings: list[str]) -> None:
    assert len({pii_token(s, SECRET, kind) for s in spellings}) == 1


def test_token_rejects_empty_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        pii_token("13800138000", b"", "phone")


# --- scrub_text / find_pii ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        (
            "想咨询一下会员积分怎么使用，联系电话：15897301101",
            "想咨询一下会员积分怎么使用，联系电话：158****1101",
        ),
        (
            "退货已寄回，请尽快退款。我的手机号是13164249891，邮箱htnmpr69@sina.com",
            "退货已寄回，请尽快退款。我的手机号是131****9891，邮箱h***@sina.com",
        ),
        (
            "請回電 +86 138-0013-8000，身分證號碼11010519491231002x，電郵zhang.wei@example.com。",
            "請回電 138****8000，身分證號碼110***********002X，電郵z***@example.com。",
        ),
        (
            "手機 138 0013 8000 或 86-13900139000，辦公室 010-12345678",
            "手機 138****8000 或 139****9000，辦公室 010****5678",
        ),
        (
            "证件号110105491231002，备用邮箱Tom.Lee@outlook.com",
            "证件号110********1002，备用邮箱T***@outlook.com",
        ),
        (
            "Call me at +8613800138000 or tel13900139000.",
            "Call me at 138****8000 or tel139****9000.",
        ),
        ("全角号码１３８００１３８０００", "全角号码138****8000"),
        ("mobile 13800138000@163.com", "mobile 1***@163.com"),
    ],
)
def test_scrub_text(raw: str, scrubbed: str) -> None:
    assert scrub_text(raw) == scrubbed


@pytest.mark.parametrize(
    "text",
    [
        "订单O202410150004583三天没有物流更新",
        "订单金额1234.50元，退款 99.00",
        "下单日期2024-03-15 10:30:00，签收2024/03/18",
        "请问P1106什么时候补货？",
        "卡号6222021234567890123",  # 19-digit run: not half-masked as an id
        "流水号 1234567890123456",  # 16 digits
        "ID1101051949123100211 ends here",  # id inside a longer run
        "邮编518000，数量 3 件",
        "版本 v1.2.3, build 20240315",
        "",
    ],
)
def test_scrub_text_leaves_non_pii_alone(text: str) -> None:
    assert scrub_text(text) == text
    assert find_pii(text) == []


def test_scrub_text_is_idempotent() -> None:
    text = "電話：+86 138-0013-8000，身分證 11010519491231002x，電郵 Zhang.Wei@Example.com"
    once = scrub_text(text)
    assert scrub_text(once) == once


def test_find_pii_kinds_in_order() -> None:
    text = "电话 +86 138-0013-8000，证件 11010519491231002X，邮箱 a.b@qq.com，座机 0755-12345678"
    assert find_pii(text) == [
        ("phone", "+86 138-0013-8000"),
        ("id_number", "11010519491231002X"),
        ("email", "a.b@qq.com"),
        ("phone", "0755-12345678"),
    ]


# --- mask_field ---------------------------------------------------------------------------


def test_field_tables() -> None:
    assert PII_FIELDS == {
        "phone": "phone",
        "id_number": "id_number",
        "email": "email",
        "user_name": "name",
        "address": "address",
    }
    assert FREE_TEXT_FIELDS == ("description", "note", "notes", "remark", "comment", "content")


def test_mask_field_dispatch() -> None:
    record = {"user_name": "张伟", "id_number": MALE_ID}
    assert mask_field("user_name", "张伟", record) == "*先生"
    assert mask_field("user_name", "张伟") == "张*"
    assert mask_field("user_name", "张伟", {"id_number": None}) == "张*"
    assert mask_field("phone", "+86 138-0013-8000") == "138****8000"
    assert mask_field("phone", 13800138000) == "138****8000"
    assert mask_field("id_number", FEMALE_ID) == "110***********002X"
    assert mask_field("email", "zhang.wei@example.com") == "z***@example.com"
    assert mask_field("address", "北京市朝阳区建设路12号") == "北京市朝阳区****"
    assert mask_field("description", "请回电 13800138000") == "请回电 138****8000"
    assert mask_field("region", "广东省深圳市") == "广东省深圳市"
    assert mask_field("amount", 12.5) == "12.5"
    for field in [*PII_FIELDS, *FREE_TEXT_FIELDS, "region"]:
        assert mask_field(field, None) is None


# --- properties ---------------------------------------------------------------------------

DIGIT = st.sampled_from("0123456789")
MOBILE = st.builds(
    lambda p, rest: "1" + p + "".join(rest),
    st.sampled_from("3456789"),
    st.lists(DIGIT, min_size=9, max_size=9),
)
PHONE = st.builds(
    lambda m, fmt: fmt.format(m=m, a=m[:3], b=m[3:7], c=m[7:]),
    MOBILE,
    st.sampled_from(["{m}", "+86 {a}-{b}-{c}", "86-{m}", "{a} {b} {c}", "+86{m}", "{a}-{b}-{c}"]),
)
# Any id shape with a plausible birth date, check digit right or wrong (a mistyped id is
# personal too); shapes without a birth date (order numbers) are not ids.
BIRTH = st.dates(date(1900, 1, 1), date(2099, 12, 31))
ID18 = st.builds(
    lambda first, area, born, rest, last: first + "".join(area) + born.strftime("%Y%m%d")
    + "".join(rest) + last,
    st.sampled_from("123456789"),
    st.lists(DIGIT, min_size=5, max_size=5),
    BIRTH,
    st.lists(DIGIT, min_size=3, max_size=3),
    st.sampled_from("0123456789Xx"),
)
ID15 = st.builds(
    lambda first, area, born, rest: first + "".join(area) + born.strftime("%y%m%d")
    + "".join(rest),
    st.sampled_from("123456789"),
    st.lists(DIGIT, min_size=5, max_size=5),
    BIRTH,
    st.lists(DIGIT, min_size=3, max_size=3),
)
EMAIL = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.from_regex(r"[a-z0-9][a-z0-9._]{0,15}", fullmatch=True),
    st.sampled_from(["qq.com", "163.com", "gmail.com", "example.com", "mail.example.org"]),
)
# arbitrary text without digits or '@', joined to the value through a boundary character
AROUND = st.text(
    st.characters(exclude_categories=("Nd", "Cs"), exclude_characters="@"), max_size=20
)
BOUNDARY = st.sampled_from([" ", "，", "：", "。", "\n", "张", "電話", "（", "）"])
FIELDS = st.sampled_from([*PII_FIELDS, *FREE_TEXT_FIELDS, "region"])


def digits_only(value: str) -> str:
    return re.sub(r"[^0-9]", "", value)


@settings(max_examples=200, deadline=None)
@given(st.one_of(PHONE, ID18, ID15, EMAIL), AROUND, BOUNDARY, BOUNDARY, AROUND)
def test_scrub_text_removes_embedded_pii(value: str, pre: str, b1: str, b2: str, post: str) -> None:
    out = scrub_text(pre + b1 + value + b2 + post)
    assert value not in out
    if "@" not in value:
        digits = digits_only(value)
        assert digits not in out
        assert digits[-11:] not in out  # national form of a prefixed phone
        assert any(
            kind in ("phone", "id_number") for kind, _ in find_pii(pre + b1 + value + b2 + post)
        )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(PHONE, ID18, EMAIL), min_size=1, max_size=4), BOUNDARY)
def test_scrub_text_removes_several_values(values: list[str], sep: str) -> None:
    out = scrub_text("客户留言：" + sep.join(values) + "。")
    for value in values:
        assert value not in out


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text())
def test_maskers_are_total(text: str, other: str) -> None:
    for fn in (mask_phone, mask_id_number, mask_email, mask_address, scrub_text):
        assert isinstance(fn(text), str)
    assert isinstance(mask_name(text), str)
    assert isinstance(mask_name(text, other), str)
    assert TOKEN.fullmatch(pii_token(text, SECRET, other))
    for kind, found in find_pii(text):
        assert kind in ("phone", "id_number", "email") and found in text


@settings(max_examples=200, deadline=None)
@given(FIELDS, st.one_of(st.none(), st.text(), st.integers(), st.floats()), st.text())
def test_mask_field_is_total(field: str, value: object, id_number: str) -> None:
    out = mask_field(field, value, {"id_number": id_number})
    assert out is None if value is None else isinstance(out, str)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Nd",), exclude_characters="@＠")))
def test_scrub_text_without_digits_or_at_is_identity(text: str) -> None:
    assert scrub_text(text) == text


@settings(max_examples=200, deadline=None)
@given(PHONE, ID18, ID15)
def test_masked_values_never_contain_raw(phone: str, id18: str, id15: str) -> None:
    masked = mask_phone(phone)
    assert phone not in masked and digits_only(phone)[-11:] not in masked
    assert re.fullmatch(r"1[3-9]\d\*{4}\d{4}", masked)
    for raw in (id18, id15):
        masked = mask_id_number(raw)
        assert raw not in masked and raw.upper() not in masked
        assert len(masked) == len(raw) and masked.count("*") == len(raw) - 7


@settings(max_examples=200, deadline=None)
@given(PHONE, PHONE)
def test_phone_tokens_follow_national_number(a: str, b: str) -> None:
    same = digits_only(a)[-11:] == digits_only(b)[-11:]
    assert (pii_token(a, SECRET, "phone") == pii_token(b, SECRET, "phone")) == same


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        ("客户 李娜 来电", "客户 李* 来电"),
        ("工单备注：另外王伟来电。", "工单备注：另外王*来电。"),  # a name after a connective
        ("姓名：王芳，电话13800138000", "姓名：王*，电话138****8000"),
        ("我叫欧阳娜娜", "我叫欧阳**"),
        ("张先生已回访，李女士未接", "*先生已回访，*女士未接"),
        ("想咨询一下会员积分怎么使用", "想咨询一下会员积分怎么使用"),
        ("客户反馈物流太慢", "客户反馈物流太慢"),
    ],
)
def test_names_in_free_text_after_cues_or_before_titles(raw, scrubbed):
    assert scrub_text(raw) == scrubbed
