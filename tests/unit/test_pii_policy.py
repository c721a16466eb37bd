"""No raw personal value leaves ingest, whatever shape it arrives in (issue 10, Must show 1).

Hypothesis builds records of every source with personal values in every position: mapped
personal fields, the user id, identifiers, categories, numbers, unmapped fields (values and
names), nested JSON (declared and undeclared keys, non-object items), free text in each written
form (phones grouped, dotted, bracketed, international; id numbers with prefixes and separators;
internationalised and spelled-out e-mails; cued names; street addresses; bank cards), a record's
own ``event_id``, broken JSON, JSON arrays and CSV rows with extra cells (through the importer's
reader). Every output of ingest is then searched for every raw value:

* the accepted event on the wire (``to_wire``) and its partition key,
* the dead letter exactly as the ingest stage builds it (``deadletter_record``),
* the importer's dead letter for rows it cannot read (``excerpt_raw``) and the ids it writes,
* the quality statistics (``QualityTracker.snapshot``) with their modes and fills,
* every log line emitted meanwhile (all loggers, DEBUG),
* the Prometheus exposition of the ingest counters and quality gauges (metric labels).

The limit the contract documents (a bare name with no cue, verb or title around it) is not
generated: nothing can tell it from other words.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from custpulse.processors.importing import parse_rows, prepare
from custpulse.processors.ingest import Accepted, IngestConfig, Position, excerpt_raw, ingest
from custpulse.processors.quality import NUMERIC_FIELDS, OPTIONAL_FIELDS, QualityTracker
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.mapping import load_mappings
from custpulse.streams.ingest_stage import _Batch
from custpulse.streams.metrics import create_metrics

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
SECRET = b"policy-test-secret-0123456789abcdef"
MAPPINGS = load_mappings()
CONFIG = IngestConfig(MAPPINGS, SH, SECRET, timedelta(minutes=5))

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭"
_GIVEN = "伟娜敏静丽强磊军洋勇艳杰娟涛明超秀霞刚桂英华"
_STREETS = ("科技园路", "建国路", "中山路", "人民大道", "解放街", "长寿巷", "文三路", "三里屯路")


class Raw:
    """A personal value: the text placed in a record and the needles that must not appear."""

    def __init__(self, text: str, *needles: str) -> None:
        self.text = text
        self.needles = tuple(n for n in needles if n)


def _group(digits: str, sizes: tuple[int, ...], sep: str) -> str:
    parts, i = [], 0
    for size in sizes:
        parts.append(digits[i:i + size])
        i += size
    return sep.join(parts)


@st.composite
def mobiles(draw: Any) -> Raw:
    digits = "1" + draw(st.sampled_from("3456789")) + draw(st.text("0123456789", min_size=9,
                                                                   max_size=9))
    form = draw(st.sampled_from(("plain", "344", "434", "dots", "dashes", "+86", "0086",
                                 "underscores", "middots", "en_dashes", "numerals", "fullwidth")))
    text = {
        "plain": digits, "344": _group(digits, (3, 4, 4), " "), "434": _group(digits, (4, 3, 4), " "),
        "dots": _group(digits, (3, 4, 4), "."), "dashes": _group(digits, (3, 4, 4), "-"),
        "+86": "+86 " + _group(digits, (3, 4, 4), " "), "0086": "0086" + digits,
        "underscores": _group(digits, (3, 4, 4), "_"), "middots": _group(digits, (3, 4, 4), "·"),
        "en_dashes": _group(digits, (3, 4, 4), "–"),
        "numerals": digits.translate(str.maketrans("0123456789", "零一二三四五六七八九")),
        "fullwidth": digits.translate({c: c + 0xFEE0 for c in range(0x30, 0x3A)}),
    }[form]
    return Raw(text, digits, text)


@st.composite
def landlines(draw: Any) -> Raw:
    area = draw(st.sampled_from(("10", "21", "755", "571")))
    number = draw(st.sampled_from("2345678")) + draw(st.text("0123456789", min_size=7, max_size=7))
    form = draw(st.sampled_from(("brackets", "intl", "dash")))
    text = {"brackets": f"(0{area}) {number[:4]} {number[4:]}",
            "intl": f"+86 {area} {number[:4]} {number[4:]}",
            "dash": f"0{area}-{number}"}[form]
    return Raw(text, number, text)


def _check(body: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True)) % 11]


@st.composite
def id_numbers(draw: Any) -> Raw:
    area = draw(st.sampled_from(("110105", "310101", "440305", "320106")))
    born = draw(st.dates(datetime(1940, 1, 1).date(), datetime(2008, 12, 31).date()))
    body = area + born.strftime("%Y%m%d") + draw(st.text("0123456789", min_size=3, max_size=3))
    full = body + _check(body)
    form = draw(st.sampled_from(("plain", "lower", "prefix", "spaces", "dashes", "cue", "old15")))
    if form == "old15":
        old = area + born.strftime("%y%m%d") + body[-3:]
        return Raw(old, old)
    text = {"plain": full, "lower": full.lower(), "prefix": "id" + full,
            "spaces": f"{full[:6]} {full[6:14]} {full[14:]}",
            "dashes": f"{full[:6]}-{full[6:14]}-{full[14:]}", "cue": "身份证号：" + full}[form]
    return Raw(text, full, text if form != "cue" else full)


@st.composite
def cards(draw: Any) -> Raw:
    body = "62" + draw(st.text("0123456789", min_size=13, max_size=16))
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    digits = body + str((10 - total % 10) % 10)
    text = draw(st.sampled_from((digits, " ".join(digits[i:i + 4] for i in range(0, len(digits), 4)))))
    return Raw(text, digits, text)


@st.composite
def emails(draw: Any) -> Raw:
    # no "a" and no "9": a dead letter's shape writes letters as "a" and digits as "9", so a
    # local part of only those would be found in any shape (a false alarm, not a leak)
    tag = draw(st.text("bcdefghijkmnpqrstuvwxyz", min_size=4, max_size=6))
    digits = draw(st.text("012345678", min_size=2, max_size=3))
    form = draw(st.sampled_from(("ascii", "at", "brackets", "intl")))
    if form == "intl":
        local = draw(st.sampled_from(_SURNAMES)) + draw(st.sampled_from(_GIVEN)) + tag
        return Raw(f"{local}@例子.中国", local)
    local = f"{tag}.{digits}"
    domain = draw(st.sampled_from(("example.com", "qq.com", "mail.example.cn")))
    text = {"ascii": f"{local}@{domain}", "at": f"{local}(at){domain}",
            "brackets": f"{local} [at] {domain}"}[form]
    return Raw(text, local, text)


@st.composite
def names(draw: Any) -> Raw:
    name = draw(st.sampled_from(_SURNAMES)) + "".join(
        draw(st.lists(st.sampled_from(_GIVEN), min_size=1, max_size=2)))
    return Raw(name, name)


@st.composite
def cued_names(draw: Any) -> Raw:
    name = draw(names()).text
    form = draw(st.sampled_from(("{}来电", "客户{}", "客户 {} 反映", "姓名：{}", "联系人{}，", "{}先生",
                                 "我叫{}", "{}女士说")))
    return Raw(form.format(name), name)


@st.composite
def addresses(draw: Any) -> Raw:
    if draw(st.booleans()):  # a compound: 阳光小区5栋2单元301, 华润大厦A座1201室
        place = draw(st.sampled_from(("阳光小区", "幸福社区", "华润大厦", "锦绣花园", "李庄村")))
        unit = draw(st.sampled_from(("5栋2单元301", "3号楼", "A座1201室", "B栋302", "3组15号")))
        return Raw(place + unit, place + unit)
    street = draw(st.sampled_from(_STREETS)) + str(draw(st.integers(1, 999))) + "号"
    unit = draw(st.sampled_from(("", "2栋301室", "3号楼2单元501", "院5号")))
    prefix = draw(st.sampled_from(("", "广东省深圳市南山区", "北京市朝阳区", "浙江省杭州市西湖区")))
    return Raw(prefix + street + unit, street)


def personal_values() -> st.SearchStrategy[Raw]:
    return st.one_of(mobiles(), landlines(), id_numbers(), cards(), emails(), cued_names(),
                     addresses())


@st.composite
def free_texts(draw: Any) -> Raw:
    parts = draw(st.lists(personal_values(), min_size=1, max_size=4))
    glue = draw(st.sampled_from(("，", "。", " ", "；请回电 ", "，另外")))
    text = "工单备注：" + glue.join(p.text for p in parts) + "。"
    return Raw(text, *[n for p in parts for n in p.needles])


SOURCE_TIMES = {"customers": "更新时间", "behavior": "行为时间", "orders": "下单时间",
                "tickets": "创建时间"}


@st.composite
def records(draw: Any) -> tuple[str, dict[str, Any], list[Raw]]:
    """One raw record of a random source and the personal values placed in it."""
    source = draw(st.sampled_from(("customers", "behavior", "orders", "tickets")))
    placed: list[Raw] = []

    def put(raw: Raw) -> str:
        placed.append(raw)
        return raw.text

    record: dict[str, Any] = {SOURCE_TIMES[source]: "2026-11-20 10:00:00"}
    user = draw(st.sampled_from(("plain", "phone", "email", "id", "glued")))
    record["客户ID"] = {
        "plain": lambda: "C" + str(draw(st.integers(1, 10**6))),
        "phone": lambda: put(draw(mobiles())),
        "email": lambda: put(draw(emails())),
        "id": lambda: put(draw(id_numbers())),
        "glued": lambda: "VIP" + put(draw(mobiles())).replace(" ", ""),
    }[user]()
    if source == "customers":
        for key, strategy in (("客户姓名", names()), ("联系方式", mobiles()), ("证件号码", id_numbers()),
                              ("邮箱", emails()), ("地址", addresses())):
            if draw(st.booleans()):
                record[key] = put(draw(strategy))
        record["地区"] = draw(st.sampled_from(("广东省深圳市", "北京市")))
        if draw(st.booleans()):
            record["会员等级"] = put(draw(personal_values()))  # personal data in a category
    if source == "orders":
        record["订单编号"] = (put(draw(id_numbers())) if draw(st.booleans())
                          else "O" + str(draw(st.integers(10**6, 10**7))))
        record["订单金额"] = draw(st.sampled_from(("199.00", "¥1,299.50", "0")))
        if draw(st.booleans()):  # a phone in a number field
            phone = draw(mobiles())
            record["订单金额"] = int(phone.needles[0]) if draw(st.booleans()) else put(phone)
            if isinstance(record["订单金额"], int):
                placed.append(phone)
        items: list[Any] = []
        for _ in range(draw(st.integers(0, 3))):
            item: dict[str, Any] = {"sku": "P" + str(draw(st.integers(1, 999))), "数量": 1}
            if draw(st.booleans()):
                item["收货人"] = put(draw(names()))
            if draw(st.booleans()):
                item["收货地址"] = put(draw(addresses()))
            if draw(st.booleans()):
                item["联系电话"] = put(draw(mobiles()))
            if draw(st.booleans()):
                item["品类"] = put(draw(personal_values()))
            if draw(st.booleans()):
                item[put(draw(mobiles()))] = "x"  # personal data as a key
            if draw(st.booleans()):
                item["备注"] = {"deep": put(draw(free_texts()))}
            items.append(item)
        if draw(st.booleans()):
            items.append(put(draw(free_texts())))  # an item that is not an object
        record["商品明细"] = items if draw(st.booleans()) else json.dumps(items, ensure_ascii=False)
    if source == "tickets":
        record["工单编号"] = "T" + str(draw(st.integers(1, 10**6)))
        record["问题描述"] = put(draw(free_texts()))
        record["满意度"] = draw(st.sampled_from((1, 3, 5, "5星")))
    if source == "behavior":
        record["行为类型"] = draw(st.sampled_from(("浏览", "加购", put(draw(personal_values())))))
        record["渠道"] = draw(st.sampled_from(("APP", "小程序")))
        record["商品ID"] = (put(draw(mobiles())) if draw(st.booleans())
                          else "P" + str(draw(st.integers(1, 999))))
    for _ in range(draw(st.integers(0, 3))):  # unmapped fields, personal names and values
        key = draw(st.sampled_from(("紧急联系人姓名", "紧急联系人电话", "家庭住址", "备用邮箱", "remark2",
                                    "客服备注", "x_note")))
        record[key] = put(draw(st.one_of(personal_values(), names(), free_texts())))
    if draw(st.booleans()):
        record["扩展信息"] = {"联系人": put(draw(names())), "list": [put(draw(mobiles()))]}
    if draw(st.booleans()):
        record[f"备用{put(draw(mobiles())).replace(' ', '')}"] = "1"  # a key holding a phone
    if draw(st.booleans()):
        record["event_id"] = put(draw(mobiles()))  # an own id that is personal
    if draw(st.booleans()):  # break a rule (a dead letter of a full record)
        record[SOURCE_TIMES[source]] = draw(st.sampled_from(("never", "20261120", None)))
    return source, record, placed


_HEX = "0-9a-f"


def find_needles(text: str, needles: list[str]) -> list[str]:
    """The needles found in ``text``. Digit-only needles must not touch other hex characters
    (tokens are hex; an 8-digit run inside one is chance, not a leak)."""
    found = []
    folded = text.casefold()
    for needle in set(needles):
        n = needle.casefold()
        if n.isdigit() and len(n) < 16:
            if re.search(rf"(?<![{_HEX}]){re.escape(n)}(?![{_HEX}])", folded):
                found.append(needle)
        elif n in folded:
            found.append(needle)
    return found


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _outputs(batch: list[tuple[str, bytes, int]]) -> list[str]:
    """Run ``(source, raw bytes, offset)`` through ingest as the ingest stage does; every text
    that leaves it."""
    quality = QualityTracker(OPTIONAL_FIELDS, NUMERIC_FIELDS, warmup=1)
    registry = CollectorRegistry()
    metrics = create_metrics(registry)
    counts: Counter[str] = Counter()
    rejected: Counter[tuple[str, str]] = Counter()
    texts: list[str] = []
    for source, raw, offset in batch:
        position = Position(f"cp.{source}", 0, offset)
        counts[source] += 1
        outcome = ingest(raw, source, position, CONFIG, NOW, quality)
        if isinstance(outcome, Accepted):
            texts += [json.dumps(outcome.event.to_wire(), ensure_ascii=False),
                      outcome.event.user_id]
        else:
            rejected[(source, outcome.code)] += 1
            texts.append(json.dumps(deadletter_record(
                outcome.code, outcome.field, outcome.message, source, NOW, outcome.payload,
                topic=position.topic, partition=0, offset=offset), ensure_ascii=False))
    _Batch(None, {}, counts, rejected, {}).count(metrics)  # type: ignore[arg-type]
    snapshot = quality.snapshot()
    for source, fields in snapshot.items():  # as the worker publishes them
        for name, stats in fields.items():
            if isinstance(stats.get("missing_rate"), int | float):
                metrics.missing_rate.labels(source, name).set(stats["missing_rate"])
    texts.append(json.dumps(snapshot, ensure_ascii=False))
    texts.append(generate_latest(registry).decode())
    return texts


def _check_no_raw(texts: list[str], placed: list[Raw]) -> None:
    needles = [n for raw in placed for n in raw.needles]
    for text in texts:
        leaked = find_needles(text, needles)
        assert not leaked, f"raw values {leaked} left ingest in: {text[:2000]}"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=6), st.data())
def test_no_raw_personal_value_leaves_ingest(examples: list[Any], data: Any) -> None:
    handler = _Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        batch: list[tuple[str, bytes, int]] = []
        placed: list[Raw] = []
        for offset, (source, record, values) in enumerate(examples):
            placed += values
            raw = json.dumps(record, ensure_ascii=data.draw(st.booleans()))
            shape = data.draw(st.sampled_from(("object", "object", "object", "trailing_comma",
                                               "array", "truncated")))
            if shape == "trailing_comma":
                raw = raw[:-1] + ",}"
            elif shape == "array":
                raw = json.dumps([record], ensure_ascii=False)
            elif shape == "truncated":
                raw = raw[: max(1, len(raw) // 2)]
            batch.append((source, raw.encode(), offset))
        texts = _outputs(batch)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    _check_no_raw(texts + handler.lines, placed)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(), min_size=1, max_size=5), st.integers(1, 3))
def test_no_raw_value_through_the_importer(examples: list[Any], extra_cells: int) -> None:
    """CSV and JSONL files as ``custpulse import`` reads them: rows with extra cells and lines
    that are not JSON become importer dead letters (``excerpt_raw``); readable rows get their
    ids (written into the raw record) and go through ingest."""
    placed = [v for _, _, values in examples for v in values]
    by_source: dict[str, list[dict[str, Any]]] = {}
    for source, record, _ in examples:
        by_source.setdefault(source, []).append(record)
    texts: list[str] = []
    for source, rows in by_source.items():
        header = sorted({k for r in rows for k in r if not isinstance(r[k], dict | list)})
        lines = [",".join(header)]
        for r in rows:
            cells = [json.dumps(r.get(k), ensure_ascii=False) if r.get(k) is not None else ""
                     for k in header]
            lines.append(",".join(cells))
        # a row with extra cells holding personal data
        extra = [p.text.replace(",", " ") for p in placed[:extra_cells]] or ["王小明"]
        lines.append(",".join([""] * len(header) + extra))
        jsonl = "\n".join([*(json.dumps(r, ensure_ascii=False) for r in rows),
                           json.dumps(rows[0], ensure_ascii=False)[:-1] + ",}"])
        for data, fmt in ((("\n".join(lines)).encode(), "csv"), (jsonl.encode(), "jsonl")):
            prepared = prepare(parse_rows(data, fmt), MAPPINGS[source], SH,
                               secret=SECRET, secret_version=1)
            batch = []
            for n, row in enumerate(prepared):
                if row.record is None:
                    texts.append(json.dumps(excerpt_raw(row.raw or ""), ensure_ascii=False))
                    continue
                texts.append(row.event_id or "")
                batch.append((source, json.dumps(row.record).encode(), n))
            texts += _outputs(batch)
    _check_no_raw(texts, placed + [Raw("王小明", "王小明")])


def test_the_needle_search_can_fail() -> None:
    """The search finds a raw value in each written form it is given, and ignores hex runs."""
    assert find_needles('{"phone": "13800138000"}', ["13800138000"]) == ["13800138000"]
    assert find_needles("Tel13800138000", ["13800138000"]) == ["13800138000"]
    assert find_needles("tok_v1_a13800138000f", ["13800138000"]) == []
    assert find_needles("ZHANG.12@QQ.COM", ["zhang.12"]) == ["zhang.12"]
    outcome = ingest(json.dumps({"user_id": "U1", "order_time": "2026-11-20",
                                 "amount": "lots", "备注": "13800138000"}).encode(),
                     "orders", Position("cp.orders", 0, 1), CONFIG, NOW)
    leak = json.dumps(outcome.payload) + "13800138000"
    assert find_needles(leak, ["13800138000"])
