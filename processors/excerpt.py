"""What a dead letter may keep of a record it cannot carry: structure, never raw text.

A dead letter must let an operator see *why* a record failed without carrying its personal
data (PIPL; issue 10). The raw record stays findable by its topic/partition/offset (or file and
row) in the raw input, which only authorised operators read. So:

* :func:`shape_text`: a line that is not JSON becomes its *shape*: JSON punctuation, spaces and
  ``true``/``false``/``null`` kept; every letter (any script) becomes ``a``, every digit ``9``;
  bounded to 200 characters. A trailing comma or a missing quote stays visible, values do not.
* :func:`describe`: any JSON value as types: ``"<text 3>"``, ``"<number>"``, ``True``, ``None``,
  ``{"<field>": ...}`` and ``["<array 3>", <first item>]``, field names through
  :func:`field_label`.
* :func:`field_label`: a field name is kept when it reads as a field name (ASCII identifier, or
  up to 16 characters ending in a common field word such as 姓名, 地址, 电话, 时间) and carries no
  detectable personal data; otherwise ``field_<8 hex>`` (SHA-256 of the name: a stable label to
  count by, not a secret).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from custpulse.processors.pii_detect import find_spans

SHAPE_LIMIT = 200
_ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,40}")
_FIELD_WORDS = re.compile(
    r"(?:姓名|名称|名字|地址|住址|电话|手机|号码|邮箱|时间|日期|金额|编号|ID|id|状态|类型|备注|渠道|"
    r"等级|数量|价格|单价|原因|评分|内容|描述|来源|城市|省份|区域|性别|年龄|生日|账号|方式|结果|级别|"
    r"收货人|联系人|收件人|负责人|经办人|持卡人|商品|品类|类目|规格|颜色|尺码)$")
_KEEP_WORDS = {"true", "false", "null"}


_KIND_BY_NAME = (
    ("phone", re.compile(r"phone|mobile|tel|手机|电话|手機|電話|联系方式", re.I)),
    ("id_number", re.compile(r"id_?card|id_?number|身份证|证件|身份證|證件", re.I)),
    ("email", re.compile(r"e-?mail|邮箱|郵箱|电邮", re.I)),
    ("address", re.compile(r"address|addr|地址|住址|住所", re.I)),
    ("user_name", re.compile(r"^name$|_name$|姓名|名字|收货人|联系人|收件人|持卡人", re.I)),
)


def pii_kind_by_name(name: str) -> str | None:
    """The canonical PII field an undeclared field's *name* suggests (``紧急联系人电话`` ->
    ``phone``), so a dead letter can show its value display-masked; None otherwise."""
    for kind, pattern in _KIND_BY_NAME:
        if pattern.search(name):
            return kind
    return None


def field_label(name: object) -> str:
    """``name`` itself if it reads as a field name and holds nothing personal, else a hash."""
    text = str(name)
    plain = not find_spans(text)
    if plain and (_ASCII_NAME.fullmatch(text) or (len(text) <= 16 and _FIELD_WORDS.search(text)
                                                   and not re.search(r"[0-9]", text))):
        return text
    return "field_" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def shape_text(text: str, limit: int = SHAPE_LIMIT) -> str:
    """The shape of a text: punctuation kept, letters ``a``, digits ``9``.

    >>> shape_text('{"姓名": "王小明", "电话": 13800138000,}')
    '{"aa": "aaa", "aa": 99999999999,}'
    """
    out = []
    for word in re.finditer(r"[^\W\d_]+|\d|.", text[:limit], re.S):
        w = word[0]
        if w in _KEEP_WORDS:
            out.append(w)
        elif w[0].isdigit():
            out.append("9")
        elif w[0].isalpha():
            out.append("a" * len(w))
        else:
            out.append(w if w.isascii() else "?")
    return "".join(out)


def describe(value: Any, depth: int = 0) -> Any:
    """Types of a JSON value, field names through :func:`field_label`, first array item.

    >>> describe({"收货人": "王小明", "items": [{"sku": "A1", "qty": 2}]})
    {'收货人': '<text 3>', 'items': ['<array 1>', {'sku': '<text 2>', 'qty': '<number>'}]}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return "<number>"
    if isinstance(value, str):
        return f"<text {len(value)}>"
    if depth >= 4:
        return "<nested>"
    if isinstance(value, dict):
        return {field_label(k): describe(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        head = [describe(value[0], depth + 1)] if value else []
        return [f"<array {len(value)}>", *head]
    return f"<{type(value).__name__}>"
