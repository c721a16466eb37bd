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
* :func:`field_label`: a field name is kept when it reads as a field name (an ASCII identifier
  with no detectable personal data in it, or CJK made only of known modifiers and field words
  such as 紧急, 联系人, 姓名, 地址, 电话, 时间); otherwise ``field_<8 hex>`` (SHA-256 of
  the name: a stable label to count by, not a secret).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from custpulse.processors.pii_detect import find_spans

SHAPE_LIMIT = 200
_ASCII_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,40}")

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


_MODIFIERS = "|".join("""
    紧急 緊急 备用 備用 常用 其他 其它 第二 第一 家庭 家里 工作 公司 单位 單位
    客户 客戶 用户 用戶 会员 會員 客服 联系 聯繫 收货 收貨 收件 发货 發貨 注册 註冊
    默认 默認 个人 個人 主要 次要 新 旧 舊 主 副 原 扩展 擴展 附加 详细 詳細 订单 訂單
    商品 问题 問題 处理 處理 工单 工單 购买 購買 下单 下單 支付 行为 行為 所在 所属 所屬
    获客 獲客 来源 來源""".split())
_WORDS = "|".join(sorted("""
    姓名 名称 名稱 名字 地址 住址 电话 電話 手机 手機 号码 號碼 邮箱 郵箱 时间 時間 日期
    金额 金額 编号 編號 ID id 状态 狀態 类型 類型 备注 備註 渠道 等级 等級 数量 數量 价格
    價格 单价 單價 原因 评分 評分 内容 內容 描述 城市 省份 区域 區域 性别 性別 年龄 年齡
    生日 账号 賬號 方式 结果 結果 级别 級別 收货人 收貨人 联系人 聯繫人 收件人 负责人
    負責人 经办人 經辦人 持卡人 人 商品 品类 品類 类目 類目 规格 規格 颜色 顏色 尺码 尺碼
    明细 明細 信息 資訊 列表 地区 地區 地域 行业 行業 规模 規模 标记 標記 时长 時長 号 號
    码 碼""".split(), key=len, reverse=True))
_CJK_LABEL = re.compile(rf"(?:{_MODIFIERS}|{_WORDS})*(?:{_WORDS})")
"""A CJK field name is kept only when it is made of known modifiers and field words
(``紧急联系人姓名``, ``家庭住址``): anything else in it (``联系人张伟电话``) may be a value."""


def field_label(name: object) -> str:
    """``name`` itself if it reads as a field name and holds nothing personal, else a hash.

    >>> field_label("紧急联系人姓名"), field_label("联系人张伟电话")[:6]
    ('紧急联系人姓名', 'field_')
    >>> field_label("order_id"), field_label("tel_138_0013_8000")[:6]
    ('order_id', 'field_')
    """
    text = str(name)
    if len(text) <= 40:
        if _ASCII_NAME.fullmatch(text):
            if not find_spans(re.sub(r"[_.\-]", " ", text)):
                return text
        elif _CJK_LABEL.fullmatch(text):
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
