"""PII masking for custpulse (PIPL): display masks, keyed join tokens and a free-text scrubber.

Raw personal information must not travel past the ingest step. This module offers two
deliberately separate tools:

* **Display masking** (``mask_phone``, ``mask_id_number``, ``mask_email``, ``mask_name``,
  ``mask_address``, ``scrub_text``, ``mask_field``) turns a value into a readable,
  irreversible form such as ``138****8000`` or ``*先生`` for profiles, alerts, dashboards and
  logs. Masks are not unique (many phones share ``138****8000``): never join on them.
* **Tokens** (``pii_token``) are keyed pseudonyms for joins and de-duplication only:
  ``tok_`` + HMAC-SHA256 under a secret kept outside the data, over a normalized value, so
  different spellings of one phone give one token. Never a plain hash: phones and id numbers
  have so few possible values that an unkeyed hash is reversed by enumerating them all;
  without the secret a token can be neither recomputed nor reversed.

Pure (stdlib only, no I/O, no clock) and total: every ``str`` input gives a ``str`` and
nothing raises, except ``pii_token`` with an empty secret.

>>> scrub_text("请回电 +86 138-0013-8000，邮箱 zhang.wei@example.com")
'请回电 138****8000，邮箱 z***@example.com'
>>> pii_token("+86 138-0013-8000", b"k", "phone") == pii_token("13800138000", b"k", "phone")
True
"""

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from custpulse.processors.pii_detect import find_spans, mask_card, valid_id18

PII_FIELDS: dict[str, str] = {
    "phone": "phone",
    "id_number": "id_number",
    "email": "email",
    "user_name": "name",
    "address": "address",
}
FREE_TEXT_FIELDS: tuple[str, ...] = ("description", "note", "notes", "remark", "comment", "content")

_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 "
    "独孤 南宫 西门 申屠 澹台 太史 万俟 闻人 东郭 百里 呼延 钟离 宗政 濮阳 淳于 单于 "
    "太叔 公冶 赫连 拓跋 司空 第五 左丘 谷梁 羊舌 微生 梁丘 公西 段干 亓官 司寇 子车 "
    "颛孙 巫马 公良 乐正 漆雕 闾丘".split()
)
_ID18 = re.compile(r"[1-9][0-9]{16}[0-9X]")
_ID15 = re.compile(r"[1-9][0-9]{14}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_EMAIL = re.compile(r"([^@\s]+)@((?:[\w-]+\.)+[^\W\d_]{2,})")
_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")

# Address prefix: [province | autonomous region] [municipality | city | prefecture] [district].
# Bodies are lazy, bounded and may not run through the next level's marker or a street word.
_H = r"[\u4e00-\u9fff]"
_PROV = rf"(?:(?![省市区县路街巷号]){_H}){{2,7}}?(?:省|自治区|特别行政区)"
_CITY = rf"(?:北京|上海|天津|重庆)市|(?:(?![省市区县路街巷号]){_H}){{1,8}}?(?:自治州|地区|盟|市)"
_DIST = rf"(?:(?![省区县旗路街巷号]){_H}){{1,8}}?(?:区|县|旗)"
_ADDRESS = re.compile(rf"(?:{_PROV})?(?:{_CITY})?(?:{_DIST})?")

# Free-text detection (phones, ids, cards, e-mails) lives in processors/pii_detect.py.


def _nfkc(value: object) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip()


def _national_digits(value: str) -> str:
    """ASCII digits of a phone number without the +86 / 0086 / 86 country prefix."""
    s = _nfkc(value)
    digits = "".join(c for c in s if "0" <= c <= "9")
    intl = False
    if digits.startswith("0086"):
        digits, intl = digits[4:], True
    elif digits.startswith("86") and (
        s.lstrip("( ").startswith("+") or (len(digits) == 13 and digits[2] == "1")
    ):
        digits, intl = digits[2:], True
    if intl and digits and digits[0] != "0" and not _MOBILE.fullmatch(digits):
        digits = "0" + digits  # +86 10 1234 5678 is the landline 010-12345678
    return digits


def mask_phone(value: str) -> str:
    """Display form of a phone number: first 3 and last 4 national digits around '****'.

    Numbers of 7-8 digits (no area code) keep only the last 4, so no digit set is shown whole.

    >>> mask_phone("13800138000"), mask_phone("+86 138-0013-8000"), mask_phone("86-13800138000")
    ('138****8000', '138****8000', '138****8000')
    >>> mask_phone("138 0013 8000"), mask_phone("010-12345678"), mask_phone("12345678")
    ('138****8000', '010****5678', '****5678')
    >>> mask_phone("12345"), mask_phone("n/a")
    ('****', '****')
    """
    digits = _national_digits(value)
    if len(digits) >= 9:
        return f"{digits[:3]}****{digits[-4:]}"
    return f"****{digits[-4:]}" if len(digits) >= 7 else "****"


def mask_id_number(value: str) -> str:
    """Resident ids (18 or 15 chars) keep first 3 and last 4; other ids first 1 and last 2.

    >>> mask_id_number("11010519491231002X"), mask_id_number("11010519491231002x")
    ('110***********002X', '110***********002X')
    >>> mask_id_number("110105491231002"), mask_id_number("E12345678"), mask_id_number("A123")
    ('110********1002', 'E******78', '****')
    """
    s = _SPACE.sub("", _nfkc(value))
    if _ID18.fullmatch(s.upper()) or _ID15.fullmatch(s):
        s = s.upper()
        return s[:3] + "*" * (len(s) - 7) + s[-4:]
    return "****" if len(s) < 6 else s[0] + "*" * (len(s) - 3) + s[-2:]


def mask_email(value: str) -> str:
    """First character of the local part, then '***@domain'; anything else is '****'.

    >>> mask_email("zhang.wei@example.com"), mask_email(" Tom@QQ.com "), mask_email("no-at.com")
    ('z***@example.com', 'T***@QQ.com', '****')
    """
    m = _EMAIL.fullmatch(_nfkc(value))
    return f"{m[1][0]}***@{m[2]}" if m else "****"


def _title(id_number: object) -> str | None:
    """'先生' or '女士' from a valid 18-digit (check digit verified) or 15-digit id number."""
    if id_number is None:
        return None
    s = _SPACE.sub("", _nfkc(id_number)).upper()
    if _ID18.fullmatch(s):
        if not valid_id18(s):
            return None
        digit = s[16]
    elif _ID15.fullmatch(s):
        digit = s[14]
    else:
        return None
    return "先生" if int(digit) % 2 else "女士"


def mask_name(value: str, id_number: str | None = None) -> str:
    """'*先生' / '*女士' when a valid id number gives the gender, else mask all but the surname.

    >>> mask_name("张伟", "11010519491231002X"), mask_name("李娜", "110105491231002")
    ('*女士', '*女士')
    >>> mask_name("张伟"), mask_name("欧阳娜娜"), mask_name("John Smith"), mask_name(" ")
    ('张*', '欧阳**', 'J*** S****', '')
    """
    s = _nfkc(value)
    if not s:
        return ""
    title = _title(id_number)
    if title:
        return "*" + title
    if _CJK.match(s):
        if len(s) == 1:
            return "*"
        keep = 2 if len(s) > 2 and s[:2] in _COMPOUND_SURNAMES else 1
        return s[:keep] + "*" * (len(s) - keep)
    return re.sub(r"\S+", lambda m: m[0][0] + "*" * (len(m[0]) - 1), s)


def mask_address(value: str) -> str:
    """Keep the administrative prefix down to district/county level and mask the rest.

    >>> mask_address("广东省深圳市南山区科技园路1号2栋301室")
    '广东省深圳市南山区****'
    >>> mask_address("上海市浦东新区建设路651号"), mask_address("浙江省杭州市文一路8号")
    ('上海市浦东新区****', '浙江省杭州市****')
    >>> mask_address("科技园路1号"), mask_address("")
    ('****', '****')
    """
    s = _nfkc(value)
    m = _ADDRESS.match(s)
    prefix = m[0] if m else ""
    if not prefix:
        return "****"
    return prefix + "****" if len(prefix) < len(s) else prefix


def _normalize(kind: str, value: str) -> str:
    if kind == "phone":
        return _national_digits(value) or _nfkc(value)
    if kind == "email":
        return _nfkc(value).lower()
    if kind == "id_number":
        return _SPACE.sub("", _nfkc(value)).upper()
    return _nfkc(value)


TOKEN_PREFIX = "tok_v"  # noqa: S105 (a prefix, not a password)
"""Every token starts ``tok_v<version>_``: the version of the secret that made it (rotation:
docs/contract.md, "Tokens and the secret")."""


def pii_token(value: str, secret: bytes, kind: str, version: int = 1) -> str:
    """Keyed join token: ``tok_v<version>_`` + 32 hex chars of HMAC-SHA256(secret, kind NUL
    normalized value). ``version`` names the secret (``CUSTPULSE_PII_SECRET_VERSION``), so a
    token says which secret made it and tokens of two secrets never look alike.

    >>> key = b"s3cret"
    >>> pii_token("13800138000", key, "phone") == pii_token("86-138 0013 8000", key, "phone")
    True
    >>> pii_token("a@b.com", key, "email") == pii_token("a@b.com", b"other", "email")
    False
    >>> len(pii_token("x", key, "name")), pii_token("x", key, "name", 2)[:7]
    (39, 'tok_v2_')
    """
    if not secret:
        raise ValueError("pii_token needs a non-empty secret")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError("pii_token needs a positive whole version")
    message = f"{kind}\x00{_normalize(kind, str(value))}".encode("utf-8", "surrogatepass")
    digest = hmac.new(bytes(secret), message, hashlib.sha256).hexdigest()[:32]
    return f"{TOKEN_PREFIX}{version}_{digest}"


def find_pii(text: str) -> list[tuple[str, str]]:
    """(kind, substring) for every phone, resident id and email found in free text.

    >>> find_pii("订单O202410150004583，电话138 0013 8000，证件11010519491231002x")
    [('phone', '138 0013 8000'), ('id_number', '11010519491231002x')]
    """
    text = str(text)
    return [(kind, text[a:b]) for a, b, kind in find_spans(text)]


SHORT_TEXT = 64
"""Strings up to this length are scrubbed through a bounded memo: categorical values
(channels, regions, statuses) repeat on almost every record. The memo lives in the ingest
process only, beside the raw record it came from; nothing of it is written anywhere."""


def scrub_text(text: str) -> str:
    """Replace every phone, resident id and email in free text by its masked form.

    >>> scrub_text("金额1234.50，日期2024-03-15，订单O202410150004583，手机13800138000")
    '金额1234.50，日期2024-03-15，订单O202410150004583，手机138****8000'
    """
    text = str(text)
    if len(text) <= SHORT_TEXT:
        return _scrub_short(text)
    return _scrub(text)


@lru_cache(maxsize=16384)
def _scrub_short(text: str) -> str:
    return _scrub(text)


def _scrub(text: str) -> str:
    parts, last = [], 0
    for a, b, kind in find_spans(text):
        parts += [text[last:a], _MASKERS[kind](text[a:b])]
        last = b
    parts.append(text[last:])
    return _scrub_names("".join(parts))


# Names in free text cannot be found by their shape; they are found after a cue word
# ("客户 李娜", "姓名：王芳", "我叫张伟") or before an honorific ("张先生", "欧阳女士").
_NAME_AFTER_CUE_TEXT = (
    r"(姓名|联系人|聯繫人|聯絡人|收件人|收货人|收貨人|我叫|名字是|名字叫)([\s:：是为為]*)"
    r"([\u4e00-\u9fff]{2,4})"
    r"|(客户|客戶|顾客|顧客|用户|用戶)([\s:：]+)([SURNAMES][\u4e00-\u9fff]{1,2})"
)
# 253 of the most frequent single-character surnames (compound ones: _COMPOUND_SURNAMES).
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞"
    "左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕"
    "屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧"
    "闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_NAME_AFTER_CUE = re.compile(_NAME_AFTER_CUE_TEXT.replace("SURNAMES", _SURNAMES))
_NAME_TITLED = re.compile(
    rf"([{_SURNAMES}][\u4e00-\u9fff]{{0,2}}?)\s?[(（]?(先生|女士|小姐|老师|老師|经理|經理)")
# Words after which a sentence may go on with a name (另外王伟来电): a name glued to a verb
# after it counts there as at the start of a phrase.
_CONNECTIVES = "|".join(f"(?<={w})" for w in (
    "另外", "还有", "還有", "而且", "并且", "並且", "以及", "同时", "同時", "然后", "然後", "后来",
    "後來", "今天", "昨天", "刚才", "剛才", "随后", "隨後", "此外", "其中"))
# A surname-led name glued to a cue before it (客户李娜) or to a verb after it (李娜来电).
_NAME_GLUED = re.compile(
    rf"(客户|客戶|顾客|顧客|用户|用戶|联系人|收货人|持卡人|业主|患者|学员)([{_SURNAMES}][\u4e00-\u9fff]{{1,2}}?)"
    r"(?=来电|致电|反映|反馈|投诉|表示|称|说|要求|咨询|来访|下单|退货|的|已|在|于|[，。,.;；:：、!！?？)）\s]|$)"
    rf"|(?:(?<![\u4e00-\u9fff])|{_CONNECTIVES})([{_SURNAMES}][\u4e00-\u9fff]{{1,2}}?)"
    r"(?=来电|致电|反映|反馈|投诉|表示|称|说|要求|咨询|来访)"
)
_NAME_BEFORE_TITLE = re.compile(
    r"(?<![\u4e00-\u9fff])([\u4e00-\u9fff]{1,2})(先生|女士|小姐|老师|老師|经理|經理)"
)


def _mask_cued_name(m: re.Match[str]) -> str:
    cue, gap, name = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(4, 5, 6)
    return cue + gap + mask_name(name)


def scrub_names(text: str) -> str:
    """Names masked by :func:`_scrub_names` only (no other detection)."""
    return _scrub_names(text)


def _scrub_names(text: str) -> str:
    """Mask names found after cue words or before honorifics (a heuristic; see module doc).

    >>> _scrub_names("客户 李娜 来电，张先生已回访")
    '客户 李* 来电，*先生已回访'
    """
    text = _NAME_AFTER_CUE.sub(_mask_cued_name, text)
    text = _NAME_GLUED.sub(
        lambda m: m.group(1) + mask_name(m.group(2)) if m.group(1) else mask_name(m.group(3)),
        text)
    text = _NAME_TITLED.sub(lambda m: "*" + m.group(2), text)
    return _NAME_BEFORE_TITLE.sub(lambda m: "*" + m.group(2), text)


_MASKERS: dict[str, Callable[[str], str]] = {
    "phone": mask_phone,
    "id_number": mask_id_number,
    "email": mask_email,
    "bank_card": mask_card,
    "address": mask_address,
    "street_address": lambda _: "****",
    "name": mask_name,
}


def mask_as(kind: str, value: object, id_number: object = None) -> str:
    """Display mask of a value of a personal ``kind`` (``phone``, ``id_number``, ``email``,
    ``bank_card``, ``address``, ``name``); any other kind is ``****``.

    >>> mask_as("phone", "13800138000"), mask_as("name", "王芳"), mask_as("wechat", "wx_abc")
    ('138****8000', '王*', '****')
    """
    text = value if isinstance(value, str) else str(value)
    if kind == "name":
        return mask_name(text, None if id_number is None else str(id_number))
    masker = _MASKERS.get(kind)
    return masker(text) if masker is not None else "****"


def mask_field(field: str, value: object, record: dict | None = None) -> str | None:
    """Mask one canonical field: PII_FIELDS by kind, FREE_TEXT_FIELDS scrubbed, others as str.

    >>> mask_field("user_name", "王芳", {"id_number": "11010519491231002X"})
    '*女士'
    >>> mask_field("phone", 13800138000), mask_field("email", None), mask_field("region", "北京市")
    ('138****8000', None, '北京市')
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    kind = PII_FIELDS.get(field)
    if kind == "name":
        return mask_name(text, record.get("id_number") if isinstance(record, dict) else None)
    if kind:
        return _MASKERS[kind](text)
    return scrub_text(text) if field in FREE_TEXT_FIELDS else text
