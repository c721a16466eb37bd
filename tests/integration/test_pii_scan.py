"""Issue 10, end to end: no raw personal value anywhere past ingest, on the real Kafka and Redis.

Input files for all four sources (customers and orders as JSON lines, behaviour as CSV,
tickets as JSON lines) carry personal values in every position the product can meet:

* mapped personal fields (name, phone, resident id with a valid GB 11643 check digit, e-mail,
  address);
* user ids that *are* personal data (a mobile, an e-mail, a resident id);
* unmapped fields holding raw values (``紧急联系人姓名``, ``紧急联系人电话``, ``家庭住址``, ``备注``,
  an unmapped CSV column);
* nested JSON in order ``items`` (a list, and a JSON text) with consignee, address and phone;
* free text in ticket descriptions: phones as ``1350 013 5000``, ``137.0013.7000``,
  ``(010) 8888 6666``, ``+86 21 5555 7777``, ids as ``id510107199211240065`` and with spaces or
  dashes, e-mails ``张伟@例子.中国`` and ``zhang(at)example.com``, names ``李娜来电`` and
  ``客户周晓燕``, a Luhn-valid bank card, a street address;
* records the worker dead-letters (unreadable time, no user id, negative amount, satisfaction
  out of range) and lines the importer dead-letters (broken JSON with a trailing comma, a JSON
  array, CSV rows with extra cells holding a phone and a name).

They go through the real ``custpulse import`` into the raw topics, a real ``custpulse worker``
processes them (log captured to a file), and the test waits until the worker's own counters
balance (in = accepted + dead-lettered + duplicates, in = rows the importer sent) and the
pipeline has no lag. Then it scans, for every raw value of :func:`build_inputs`:

* **Kafka**: every topic of this run except the four raw inputs (``<prefix>events``,
  ``deadletter``, ``segment-changes``, ``campaign-triggers``, ``ops-alerts``, the Faust
  changelog and any other ``<app id>-*`` topic) plus the broker's internal topics
  (``__consumer_offsets``), every record from the log start: key, value and headers. Topics of
  other (earlier) test runs are left out: they hold other runs' data;
* **Redis**: every key (SCAN) except those of other test runs' prefixes, its name and content by
  type (strings, hashes, sets, sorted sets with scores, lists, streams with entry ids; other
  types via DUMP);
* **text**: the worker's log, the importer's stdout/stderr and the worker's ``/metrics`` page.

A raw value is searched in the forms a leak takes: as written; lower-cased (e-mails, Latin
text); JSON ``\\uXXXX`` escapes and Python ``\\xNN`` UTF-8 byte escapes of non-ASCII text; for
phones, ids and cards (7 digits or more) its digits with any separators between them
(``138-0013-8000``, ``138 0013 8000``), between non-digit boundaries, also without a country
code or trunk zero. Legitimate masks stay out of the search: ``138****8000`` breaks the digits,
names are searched whole (``王**`` keeps the surname), addresses by their street part
(``广东省深圳市南山区****`` keeps the district prefix). Failures list each value's class, where it
was put, where it was found and an excerpt in which every raw value is replaced by ``[****]``.

A canary (a raw name and phone planted under this run's Redis prefix, then removed) proves the
scanner is not blind before its verdict counts.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from custpulse.settings import SOURCES, Settings

from .conftest import WorkerProcess, free_port, run_cli, wait_drained

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CONTEXT = 40
"""Characters of context on each side of a hit in the report."""
REDACTED = "[****]"
"""What stands for a raw value in the report (bracketed: the product's own masks are ``****``)."""
_SEPARATORS = r"[\s\-.()/]{0,2}"
"""What may stand between the digits of a leaked number (``138-0013-8000``, ``(010) 8888``)."""
_OTHER_RUN = re.compile(r"^(?:custpulse-)?it[0-9a-f]{8}[.:\-]")
"""Topic / key names of isolated test runs (``conftest.isolated_settings``)."""


# --- what is searched ------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """One raw personal value put into the input: its class, where it was put, the value as
    written, and (addresses) the parts to search instead of the whole value."""

    kind: str  # phone, id_number, bank_card, email, name, address
    where: str
    value: str
    parts: tuple[str, ...] = ()

    @cached_property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in sorted(search_forms(self)))


def _escapes(text: str) -> set[str]:
    """The escaped spellings of non-ASCII text: JSON ``\\uXXXX`` (lower and upper hex, as
    ``json.dumps`` writes them) and Python's ``\\xNN`` byte escapes of its UTF-8."""
    if text.isascii():
        return set()
    json_form = json.dumps(text)[1:-1]
    upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m[1].upper(), json_form)
    byte_form = repr(text.encode())[2:-1]
    return {json_form, upper, byte_form}


def _digit_pattern(digits: str) -> str:
    """Digits with any separators between them, not glued to other digits."""
    body = _SEPARATORS.join(re.escape(c) if c != "X" else "[Xx]" for c in digits)
    return rf"(?<![0-9]){body}(?![0-9])"


def digit_forms(raw: Raw) -> set[str]:
    """The digit strings of a phone, id or card: as written, without a country code and with
    or without the trunk zero of a landline, and a landline's subscriber number; 7+ digits."""
    digits = "".join(c for c in raw.value.upper() if c.isdigit() or c == "X")
    forms = {digits}
    if raw.kind == "phone":
        national = digits
        if raw.value.strip().startswith("+86") or (len(digits) == 13 and digits.startswith("86")):
            national = digits[2:]
            if not re.fullmatch(r"1[3-9]\d{9}", national):
                national = "0" + national  # +86 21 5555 7777 is 021 5555 7777
        forms |= {national, "86" + national.lstrip("0")}
        if national.startswith("0"):  # landline: area code and subscriber number
            forms.add(national[1:])
            forms.add(national[3:] if national[1] in "12" else national[4:])
    return {d for d in forms if len(d) >= 7}


def search_forms(raw: Raw) -> set[str]:
    """Regular expressions (matched case-insensitively) that find ``raw`` in any output."""
    texts = raw.parts or (raw.value,)
    forms: set[str] = set()
    for text in texts:
        variants = {text, text.lower()}
        if raw.kind == "email" and re.search(r"\s*[(\[]at[)\]]\s*", text):
            variants.add(re.sub(r"\s*[(\[]at[)\]]\s*", "@", text))
        for variant in list(variants):
            variants |= _escapes(variant)
        forms |= {re.escape(v) for v in variants}
    if raw.kind in ("phone", "id_number", "bank_card"):
        forms = {f for f in forms if not re.fullmatch(r"[0-9Xx\\ .\-()+/]*", f)}  # digits below
        forms |= {_digit_pattern(d) for d in digit_forms(raw)}
    return forms


# --- the inputs --------------------------------------------------------------------------------


def _when(hours_ago: float) -> str:
    """A naive source time (read in CUSTPULSE_SOURCE_TZ, Asia/Shanghai) this long ago."""
    at = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(hours=hours_ago)
    return at.strftime("%Y-%m-%d %H:%M:%S")


def _jsonl(rows: Iterable[dict | list | str]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                   for r in rows)


def build_inputs(folder: Path) -> tuple[dict[str, Path], list[Raw]]:
    """The four input files in ``folder`` and every raw personal value they hold."""
    raws: list[Raw] = []

    def raw(kind: str, where: str, value: str, *parts: str) -> str:
        raws.append(Raw(kind, where, value, parts))
        return value

    phone_uid = raw("phone", "user id (customers, behavior, orders, tickets)", "13912345678")
    email_uid = raw("email", "user id (customers, behavior, orders, tickets)",
                    "li.na.vip@example.cn")
    id_uid = raw("id_number", "user id (customers, behavior)", "310115198506124561")

    customers = [
        {"客户ID": "C1001", "客户姓名": raw("name", "customers.客户姓名", "王小明"),
         "联系方式": raw("phone", "customers.联系方式", "13800138000"),
         "证件号码": raw("id_number", "customers.证件号码", "11010519491231002X"),
         "邮箱": raw("email", "customers.邮箱", "wang.xiaoming@example.com"),
         "地址": raw("address", "customers.地址", "广东省深圳市南山区科技园路1号2栋301室",
                   "科技园路1号", "2栋301室"),
         "注册时间": _when(24 * 30), "更新时间": _when(6), "会员等级": "黄金", "地域": "华南",
         "紧急联系人姓名": raw("name", "customers.紧急联系人姓名 (unmapped)", "陈美玲"),
         "紧急联系人电话": raw("phone", "customers.紧急联系人电话 (unmapped)", "13700001111"),
         "家庭住址": raw("address", "customers.家庭住址 (unmapped)",
                     "上海市浦东新区世纪大道100号", "世纪大道100号"),
         "备注": "生日当天致电 " + raw("phone", "customers.备注 free text (unmapped)",
                                  "15800158000")},
        {"客户ID": phone_uid, "客户姓名": raw("name", "customers.客户姓名", "赵志刚"),
         "联系方式": "139 1234 5678",
         "证件号码": raw("id_number", "customers.证件号码", "440305199003071236"),
         "地址": raw("address", "customers.地址", "四川省成都市武侯区天府大道北段1700号",
                   "天府大道北段1700号"),
         "注册时间": _when(24 * 40), "更新时间": _when(5.5), "会员等级": "钻石"},
        {"customer_id": email_uid, "name": raw("name", "customers.name", "刘洋"),
         "email": email_uid, "register_time": _when(24 * 10), "update_time": _when(5.4)},
        {"客户ID": id_uid, "客户姓名": raw("name", "customers.客户姓名", "欧阳娜娜"),
         "证件号码": id_uid, "注册时间": _when(24 * 3), "更新时间": _when(5.3)},
        # worker dead letter: register time cannot be read
        {"客户ID": "C1005", "客户姓名": raw("name", "customers.客户姓名 (dead letter)", "钱多多"),
         "联系方式": raw("phone", "customers.联系方式 (dead letter)", "18912340000"),
         "证件号码": raw("id_number", "customers.证件号码 (dead letter)", "320106197809153213"),
         "地址": raw("address", "customers.地址 (dead letter)", "湖北省武汉市洪山区珞喻路1037号",
                   "珞喻路1037号"),
         "紧急联系人电话": raw("phone", "customers.紧急联系人电话 (dead letter)", "17712345678"),
         "注册时间": "上周三下午"},
        # worker dead letter: no user id
        {"客户姓名": raw("name", "customers.客户姓名 (no user id)", "孙悟净"),
         "联系方式": raw("phone", "customers.联系方式 (no user id)", "15012345678"),
         "更新时间": _when(5)},
        # import dead letters: broken JSON (trailing comma), a JSON array
        json.dumps({"客户ID": "C1007",
                    "客户姓名": raw("name", "customers broken JSON line", "吴敏"),
                    "地址": raw("address", "customers broken JSON line",
                              "江苏省南京市鼓楼区中山路18号", "中山路18号"),
                    "联系方式": raw("phone", "customers broken JSON line", "18612345678")},
                   ensure_ascii=False)[:-1] + ",}",
        [raw("name", "customers JSON array line", "黄晓敏"),
         raw("phone", "customers JSON array line", "13500135000")],
    ]

    header = ["客户ID", "行为类型", "行为发生时间", "商品ID", "停留时长", "渠道", "联系电话"]
    behavior_rows = [
        ["C1001", "浏览", _when(4), "P1", "30", "APP",
         raw("phone", "behavior.联系电话 CSV column (unmapped)", "13600136000")],
        [phone_uid, "加购", _when(3.9), "P1", "12", "小程序", ""],
        [email_uid, "浏览", _when(3.8), "P2", "5", "网页", ""],
        [id_uid, "浏览", _when(3.7), "P3", "8", "APP", ""],
        # import dead letter: more cells than the header
        ["C1001", "下单", _when(3.6), "P1", "3", "APP", "",
         raw("phone", "behavior CSV extra cell", "15912345678"),
         raw("name", "behavior CSV extra cell", "郑秀文")],
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(behavior_rows)

    nested = [{"product_id": "P1", "收货人": raw("name", "orders.items[].收货人", "马晓东"),
               "收货地址": raw("address", "orders.items[].收货地址", "北京市朝阳区建国路88号",
                           "建国路88号"),
               "联系电话": raw("phone", "orders.items[].联系电话", "13811112222"), "qty": 1}]
    nested_text = json.dumps([{
        "product_id": "P2", "收货人": raw("name", "orders.items JSON text 收货人", "何丽君"),
        "收货地址": raw("address", "orders.items JSON text 收货地址", "天津市和平区南京路219号",
                    "南京路219号"),
        "联系电话": raw("phone", "orders.items JSON text 联系电话", "18611112222")}],
        ensure_ascii=False)
    orders = [
        {"客户ID": "C1001", "订单ID": "O9001", "购买时间": _when(3), "订单金额": "299.00",
         "订单状态": "已支付", "渠道": "APP", "商品明细": nested,
         "买家留言": "放门口，联系 " + raw("phone", "orders.买家留言 (unmapped)", "13700137000")},
        {"客户ID": phone_uid, "订单ID": "O9002", "购买时间": _when(2.9), "订单金额": "1,299.50",
         "订单状态": "已支付", "商品明细": nested_text},
        {"customer_id": email_uid, "order_id": "O9003", "order_time": _when(2.8),
         "amount": 88, "status": "paid"},
        {"客户ID": "C1001", "订单ID": "O9001", "购买时间": _when(2.5), "订单金额": "299.00",
         "订单状态": "已退货"},
        # worker dead letter: negative amount, nested personal data
        {"客户ID": "C1001", "订单ID": "O9004", "购买时间": _when(2.4), "订单金额": "-5",
         "商品明细": [{"product_id": "P9",
                   "收货人": raw("name", "orders.items[].收货人 (dead letter)", "蒋文华"),
                   "收货地址": raw("address", "orders.items[].收货地址 (dead letter)",
                               "重庆市渝中区解放碑步行街8号", "解放碑步行街8号"),
                   "联系电话": raw("phone", "orders.items[].联系电话 (dead letter)",
                               "13922223333")}]},
    ]

    def text(kind: str, value: str, label: str, *parts: str) -> str:
        return raw(kind, f"tickets.description free text ({label})", value, *parts)

    tickets = [
        {"客户ID": "C1001", "工单ID": "K9001", "创建时间": _when(2), "问题类型": "投诉",
         "问题描述": text("name", "李娜", "name before 来电") + "来电投诉物流，回拨 "
                 + text("phone", "1350 013 5000", "grouped 4-3-4") + " 或 "
                 + text("phone", "137.0013.7000", "dotted") + "，座机 "
                 + text("phone", "(010) 8888 6666", "landline, area code in brackets") + "。"},
        {"客户ID": phone_uid, "工单ID": "K9002", "创建时间": _when(1.9), "问题类型": "退款",
         "问题描述": "客户" + text("name", "周晓燕", "name after 客户") + "要求退款，证件 "
                 + text("id_number", "id510107199211240065", "glued to 'id'") + "，另一证件 "
                 + text("id_number", "330106 19870203 1183", "spaces") + "，旧证件 "
                 + text("id_number", "420111-19880808-1237", "dashes") + "。"},
        {"customer_id": email_uid, "ticket_id": "K9003", "created_at": _when(1.8),
         "category": "咨询",
         "remark": "邮箱 " + text("email", "张伟@例子.中国", "internationalised") + " 或 "
                   + text("email", "zhang(at)example.com", "(at)") + "，卡号 "
                   + text("bank_card", "6222 0212 3456 7890 128", "Luhn, grouped") + "，寄到"
                   + text("address", "浙江省杭州市西湖区文三路90号", "address", "文三路90号")
                   + "，国际电话 " + text("phone", "+86 21 5555 7777", "+86 landline") + "。"},
        {"客户ID": "C1001", "工单ID": "K9001", "创建时间": _when(2), "关闭时间": _when(1.5),
         "问题类型": "投诉", "满意度": 4, "处理时长": 30},
        # worker dead letter: satisfaction out of range, personal data in the text
        {"客户ID": "C1001", "工单ID": "K9005", "创建时间": _when(1.4), "满意度": 9,
         "问题描述": "客户" + text("name", "宋佳", "dead letter") + "来电，卡号 "
                 + text("bank_card", "6217001234567893", "dead letter") + "，手机 "
                 + text("phone", "18912345679", "dead letter")},
    ]

    files = {
        "customers": folder / "customers.jsonl",
        "behavior": folder / "behavior.csv",
        "orders": folder / "orders.jsonl",
        "tickets": folder / "tickets.jsonl",
    }
    files["customers"].write_text(_jsonl(customers), encoding="utf-8")
    files["behavior"].write_text(buffer.getvalue(), encoding="utf-8")
    files["orders"].write_text(_jsonl(orders), encoding="utf-8")
    files["tickets"].write_text(_jsonl(tickets), encoding="utf-8")
    return files, raws


# --- where it is searched ----------------------------------------------------------------------


@dataclass(frozen=True)
class Haystack:
    location: str
    text: str


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def kafka_haystacks(settings: Settings, timeout: float = 120) -> tuple[list[str], list[Haystack]]:
    """Every record (key, value, headers) of this run's topics but the raw inputs, and of the
    broker's internal topics; also the names of the topics scanned."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        names = sorted(admin.list_topics())
    finally:
        admin.close()
    raw_topics = set(settings.source_topics().values())
    ours = [t for t in names
            if (t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-")
                or t.startswith("__")) and t not in raw_topics]
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             exclude_internal_topics=False, fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    stacks: list[Haystack] = []
    try:
        for topic in ours:
            tps = [TopicPartition(topic, p)
                   for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                continue
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            while any(consumer.position(tp) < end[tp] for tp in tps):
                assert time.monotonic() < deadline, f"could not read {topic} to its end"
                for tp, records in consumer.poll(timeout_ms=500).items():
                    for r in records:
                        at = f"kafka {topic} p{tp.partition}@{r.offset}"
                        stacks.append(Haystack(f"{at} key", _text(r.key)))
                        stacks.append(Haystack(f"{at} value", _text(r.value)))
                        for name, value in r.headers or ():
                            stacks.append(Haystack(f"{at} header {name}",
                                                   name + "=" + _text(value)))
    finally:
        consumer.close()
    return ours, stacks


def redis_haystacks(settings: Settings) -> tuple[int, list[Haystack]]:
    """Every Redis key (but other test runs') with its content, by type; and the key count."""
    tag = settings.redis_prefix
    client = redis.Redis.from_url(settings.redis_url)
    stacks: list[Haystack] = []
    count = 0
    try:
        for key in client.scan_iter(count=1000):
            name = _text(key)
            if _OTHER_RUN.match(name) and not name.startswith(tag):
                continue
            count += 1
            kind = _text(client.type(key))
            at = f"redis {name} ({kind})"
            stacks.append(Haystack(f"{at} key name", name))
            if kind == "string":
                stacks.append(Haystack(at, _text(client.get(key))))
            elif kind == "hash":
                stacks += [Haystack(f"{at} field {_text(f)}", _text(f) + "=" + _text(v))
                           for f, v in client.hscan_iter(key, count=1000)]
            elif kind == "set":
                stacks += [Haystack(f"{at} member", _text(m))
                           for m in client.sscan_iter(key, count=1000)]
            elif kind == "zset":
                stacks += [Haystack(f"{at} member", f"{_text(m)} {s!r}")
                           for m, s in client.zscan_iter(key, count=1000)]
            elif kind == "list":
                stacks += [Haystack(f"{at} item {i}", _text(v))
                           for i, v in enumerate(client.lrange(key, 0, -1))]
            elif kind == "stream":
                for entry_id, values in client.xrange(key, "-", "+"):
                    stacks += [Haystack(f"{at} entry {_text(entry_id)} field {_text(f)}",
                                        _text(f) + "=" + _text(v)) for f, v in values.items()]
            elif kind != "none":  # expired meanwhile
                stacks.append(Haystack(f"{at} DUMP", _text(client.dump(key))))
    finally:
        client.close()
    return count, stacks


# --- matching and the report -------------------------------------------------------------------


def _all_spans(text: str, raws: Iterable[Raw]) -> list[tuple[int, int]]:
    spans = sorted((m.start(), m.end()) for r in raws for p in r.patterns for m in p.finditer(text))
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def masked(text: str, spans: list[tuple[int, int]], lo: int = 0, hi: int | None = None) -> str:
    """``text[lo:hi]`` with every span of a raw value replaced by ``[****]`` (the window widened
    so that no raw value is cut in half at its edges)."""
    hi = len(text) if hi is None else hi
    for a, b in spans:
        if a < lo < b:
            lo = a
        if a < hi < b:
            hi = b
    out, pos = [], lo
    for a, b in spans:
        if b <= lo or a >= hi:
            continue
        out.append(text[pos:max(a, pos)])
        out.append(REDACTED)
        pos = max(pos, b)
    out.append(text[pos:hi])
    body = "".join(out).replace("\n", "\\n")
    return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")


@dataclass(frozen=True)
class Leak:
    raw: Raw
    location: str
    excerpt: str

    def line(self) -> str:
        return f"{self.raw.kind} [{self.raw.where}] in {self.location}: {self.excerpt}"


_JOIN = "\x00"
"""Joins haystacks for the first pass: no search form can match it, so no match spans two."""


@dataclass(frozen=True)
class _Sieve:
    """A cheap test that passes every text in which some search form of some raw value could
    match (it may pass more): literal forms as case-folded substrings, digit forms without
    their digit boundaries. Both run in C at memory speed, unlike ~170 regex scans."""

    literals: tuple[str, ...]
    digits: re.Pattern[str] | None

    @classmethod
    def of(cls, raws: list[Raw]) -> _Sieve:
        literals, digit_forms = set(), set()
        for r in raws:
            for p in r.patterns:
                text = re.sub(r"\\(.)", r"\1", p.pattern, flags=re.DOTALL)
                if re.escape(text) == p.pattern:
                    literals.add(text.casefold())
                else:
                    assert p.pattern.startswith("(?<![0-9])") and p.pattern.endswith("(?![0-9])")
                    digit_forms.add(p.pattern[len("(?<![0-9])"):-len("(?![0-9])")])
        digits = re.compile("|".join(sorted(digit_forms)), re.IGNORECASE) if digit_forms else None
        return cls(tuple(sorted(literals)), digits)

    def passes(self, text: str) -> bool:
        folded = text.casefold()
        return (any(lit in folded for lit in self.literals)
                or (self.digits is not None and self.digits.search(text) is not None))


def _candidates(sieve: _Sieve, stacks: list[Haystack], chunk: int = 1 << 20) -> list[Haystack]:
    """The haystacks the sieve passes: it runs over the haystacks joined by ``_JOIN`` in chunks
    of about ``chunk`` characters, and a chunk that passes is halved until single haystacks."""
    out: list[Haystack] = []

    def narrow(group: list[Haystack]) -> None:
        if not sieve.passes(_JOIN.join(s.text for s in group)):
            return
        if len(group) == 1:
            out.append(group[0])
            return
        half = len(group) // 2
        narrow(group[:half])
        narrow(group[half:])

    start = 0
    while start < len(stacks):
        end, size = start, 0
        while end < len(stacks) and (end == start or size < chunk):
            size += len(stacks[end].text) + 1
            end += 1
        narrow(stacks[start:end])
        start = end
    return out


def find_leaks(raws: list[Raw], stacks: Iterable[Haystack]) -> list[Leak]:
    """Every (raw value, place) found, once per place, with a masked excerpt."""
    leaks: list[Leak] = []
    for stack in _candidates(_Sieve.of(raws), list(stacks)):
        hits = [(r, m) for r in raws for p in r.patterns
                if (m := p.search(stack.text)) is not None]
        if not hits:
            continue
        spans = _all_spans(stack.text, raws)
        loc_spans = _all_spans(stack.location, raws)
        location = masked(stack.location, loc_spans)
        seen: set[Raw] = set()
        for r, m in hits:
            if r in seen:
                continue
            seen.add(r)
            excerpt = masked(stack.text, spans, max(0, m.start() - CONTEXT),
                             min(len(stack.text), m.end() + CONTEXT))
            leaks.append(Leak(r, location, excerpt))
    return leaks


def report(leaks: list[Leak]) -> str:
    lines = [f"{len(leaks)} raw personal value(s) found past ingest "
             f"({len({leak.raw for leak in leaks})} distinct):"]
    lines += ["  " + leak.line() for leak in sorted(leaks, key=lambda x: (x.raw.kind, x.raw.where,
                                                                            x.location))]
    return "\n".join(lines)


# --- waiting for the worker --------------------------------------------------------------------


def metric_samples(port: int) -> tuple[str, dict[tuple[str, tuple], float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return text, {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for m in text_string_to_metric_families(text) for s in m.samples}


def source_totals(samples: dict[tuple[str, tuple], float]) -> dict[str, dict[str, float]]:
    """Per source: in, accepted, dead-lettered (all reasons) and duplicates."""
    names = {"custpulse_events_in_total": "in", "custpulse_events_accepted_total": "accepted",
             "custpulse_events_deadlettered_total": "dead",
             "custpulse_events_duplicate_total": "duplicate"}
    totals = {s: dict.fromkeys(names.values(), 0.0) for s in SOURCES}
    for (name, labels), value in samples.items():
        source = dict(labels).get("source")
        if name in names and source in totals:
            totals[source][names[name]] += value
    return totals


def wait_balanced(port: int, sent: dict[str, int], worker: WorkerProcess,
                  timeout: float = 60) -> dict[str, dict[str, float]]:
    """Until, per source, the worker read every row the importer sent and each one is
    accepted, dead-lettered or a duplicate."""
    deadline = time.monotonic() + timeout
    totals: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline:
        _, samples = metric_samples(port)
        totals = source_totals(samples)
        if all(totals[s]["in"] == sent[s] == totals[s]["accepted"] + totals[s]["dead"]
               + totals[s]["duplicate"] for s in SOURCES):
            return totals
        time.sleep(1)
    raise AssertionError(f"counts do not balance after {timeout} s: sent {sent}, worker {totals}\n"
                         f"{worker.log()[-2000:]}")


_SUMMARY = re.compile(r"imported (\w+) from \S+: rows read (\d+), sent (\d+), "
                      r"dead-lettered (\d+), failed (\d+)")


# --- the tests ---------------------------------------------------------------------------------


def test_scanner_finds_raw_forms_and_ignores_masks() -> None:
    """The matcher itself (no servers): raw spellings are found, legitimate masks are not."""
    raws = [Raw("phone", "t", "13800138000"), Raw("phone", "t", "(010) 8888 6666"),
            Raw("phone", "t", "+86 21 5555 7777"), Raw("id_number", "t", "11010519491231002X"),
            Raw("bank_card", "t", "6222 0212 3456 7890 128"), Raw("name", "t", "王小明"),
            Raw("email", "t", "张伟@例子.中国"), Raw("email", "t", "zhang(at)example.com"),
            Raw("address", "t", "广东省深圳市南山区科技园路1号2栋301室", ("科技园路1号",))]
    found = ["tel 138-0013-8000.", "8613800138000", '{"n": "\\u738b\\u5c0f\\u660e"}',
             "b'\\xe7\\x8e\\x8b\\xe5\\xb0\\x8f\\xe6\\x98\\x8e'", "010-88886666", "88886666",
             "+86 10 8888 6666", "021 5555 7777", "id11010519491231002x", "110105 19491231 002X",
             "card 6222021234567890128", "\\u5f20\\u4f1f@\\u4f8b\\u5b50.\\u4e2d\\u56fd",
             "ZHANG@EXAMPLE.COM", "寄到科技园路1号"]
    clean = ["138****8000", "010****6666", "110***********002X", "****0128", "王**", "*先生",
             "张***@例子.中国", "****", "广东省深圳市南山区****", "tok_0a13800138001ff",
             "2026-10-20T10:00:00.000Z", "offset 113800138000"]
    missed = [t for t in found if not find_leaks(raws, [Haystack("t", t)])]
    false = [(t, [x.line() for x in find_leaks(raws, [Haystack("t", t)])]) for t in clean]
    assert missed == [] and [f for f in false if f[1]] == []
    leak = find_leaks(raws, [Haystack("k 王小明", "x 13800138000 y 王小明")])
    assert {x.excerpt for x in leak} == {"x [****] y [****]"} and leak[0].location == "k [****]"
    # Among many haystacks (the sieve runs over joined chunks and halves them): every planted
    # form is found in its own haystack, and none in the clean ones or across a join.
    many = [Haystack(f"c{i}", clean[i % len(clean)] + " 1380013") for i in range(20_000)]
    many += [Haystack("edge a", "tel 13800"), Haystack("edge b", "138000 end")]
    planted = {7 + 997 * i: t for i, t in enumerate(found)}
    for i, t in planted.items():
        many[i] = Haystack(f"p{i}", "x" * (i % 50) + t)
    hits = find_leaks(raws, many)
    assert {x.location for x in hits} == {f"p{i}" for i in planted}
    assert all(_Sieve.of(raws).passes(t) for t in found)


@pytest.mark.parametrize("log_level", ["info", "debug"])
def test_no_raw_personal_value_past_ingest(
    settings: Settings, worker: WorkerProcess, tmp_path: Path, log_level: str
) -> None:
    """At the default log level and at debug (Kafka clients dump fetched bytes at debug: the
    worker caps them at info)."""
    started = time.monotonic()
    files, raws = build_inputs(tmp_path)
    assert len(raws) >= 50
    port = free_port()
    worker.env["CUSTPULSE_METRICS_PORT"] = str(port)
    worker.env["CUSTPULSE_LOG_LEVEL"] = log_level
    worker.start()

    outputs: list[str] = []
    result = run_cli(settings, "import", *(f"{s}={p}" for s, p in files.items()), "--no-progress")
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    summaries = {m[1]: tuple(map(int, m.groups()[1:])) for m in _SUMMARY.finditer(result.stdout)}
    assert summaries == {"customers": (8, 6, 2, 0), "behavior": (5, 4, 1, 0),
                         "orders": (5, 5, 0, 0), "tickets": (5, 5, 0, 0)}, result.stdout
    # A re-import of the orders: every row a duplicate downstream.
    again = run_cli(settings, "import", "orders", str(files["orders"]), "--no-progress")
    outputs.append(again.stdout + again.stderr)
    assert again.returncode == 0, again.stdout + again.stderr
    sent = {s: summaries[s][1] for s in SOURCES}
    sent["orders"] *= 2

    wait_drained(settings, worker, timeout=150)
    totals = wait_balanced(port, sent, worker)
    # customers: 2 rejected (bad time, no user id); orders: 1 (negative amount) of each
    # import; tickets: 1 (satisfaction out of range); the re-imported orders are duplicates
    # or (the negative one) dead-lettered again.
    assert {s: totals[s]["dead"] for s in SOURCES} == {
        "customers": 2, "behavior": 0, "orders": 2, "tickets": 1}, totals
    assert totals["orders"]["duplicate"] == 4, totals
    metrics_text, _ = metric_samples(port)

    topics, kafka_stacks = kafka_haystacks(settings)
    for expected in (settings.events_topic, settings.deadletter_topic,
                     settings.segment_changes_topic, settings.campaign_triggers_topic,
                     settings.ops_alerts_topic, f"{settings.app_id}-profiles-changelog"):
        assert expected in topics, (expected, topics)
    assert not set(settings.source_topics().values()) & set(topics)
    assert any(s.location.startswith(f"kafka {settings.deadletter_topic} ") and s.text
               for s in kafka_stacks), "no dead letters to scan"

    # The canary: a raw name and phone planted in this run's Redis namespace must be found.
    client = redis.Redis.from_url(settings.redis_url)
    canary = settings.redis_key("pii-scan-canary")
    try:
        client.set(canary, json.dumps({"note": "王小明", "tel": "138 0013 8000"}))
        key_count, redis_stacks = redis_haystacks(settings)
    finally:
        client.delete(canary)
        client.close()
    canary_hits = {leak.raw.value for leak in find_leaks(raws, redis_stacks)
                   if leak.location.startswith(f"redis {canary} ")}
    assert canary_hits == {"王小明", "13800138000"}, f"the scanner is blind: {canary_hits}"
    redis_stacks = [s for s in redis_stacks if not s.location.startswith(f"redis {canary} ")]
    assert any(s.location.startswith(f"redis {settings.redis_key('profile', 'C1001')} ")
               for s in redis_stacks), "no profiles to scan"

    worker.stop()
    texts = [Haystack("worker log", worker.log()),
             *(Haystack(f"import output {i + 1}", text) for i, text in enumerate(outputs)),
             Haystack("worker /metrics", metrics_text)]
    leaks = find_leaks(raws, [*kafka_stacks, *redis_stacks, *_lines(texts)])
    per_topic = {t: sum(s.location.startswith(f"kafka {t} ") and s.location.endswith(" value")
                        for s in kafka_stacks) for t in topics}
    print(f"records per topic: {per_topic}")
    print(f"scanned {len(topics)} topics ({len(kafka_stacks)} keys/values/headers), "
          f"{key_count - 1} Redis keys, {len(texts)} texts for {len(raws)} raw values "
          f"in {time.monotonic() - started:.0f} s")
    assert leaks == [], report(leaks)


def _lines(texts: list[Haystack]) -> Iterator[Haystack]:
    """Long texts line by line, so each hit names its line."""
    for text in texts:
        for number, line in enumerate(text.text.splitlines(), start=1):
            yield Haystack(f"{text.location} line {number}", line)
