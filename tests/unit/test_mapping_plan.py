"""``standardize`` reads records whose keys it has seen before by a cached plan; the plan must
give exactly what the general path gives, for any keys, values and order (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from custpulse.schemas.mapping import (
    _standardize_items,
    load_mapping,
    standardize,
)
from custpulse.settings import SOURCES

ZONE = ZoneInfo("Asia/Shanghai")
MAPPINGS = {source: load_mapping(source) for source in SOURCES}


def _names(source: str) -> list[str]:
    """Source field names the mapping knows (raw spellings, several per canonical field,
    so that two keys can contest one field), plus names it does not know."""
    mapping = MAPPINGS[source]
    known = sorted(mapping.aliases)
    spelled = [name.upper() for name in known[:5]] + [f" {known[0]} "]
    return known + spelled + ["note", "备注", "event_id", "x" * 3]


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, places=2, min_value=-10**6, max_value=10**6),
    st.sampled_from(["", " ", "2024-03-15 10:30:00", "2024年3月15日", "2024-03-15T02:30:00Z",
                     "20240315", "1710470000", "¥1,299.00", "12.5元", "3次", "已支付", "paid",
                     " APP ", "官网", "是", "no", "[1, 2]", '{"a": 1}', "C0001", "１２３",
                     "2024-03-15T10:30:00+08:00", "0001-01-01T00:00:00+08:00",
                     "9999-12-31T23:59:59-08:00", "0001-01-01 00:00:00", "2024-02-30 10:00:00",
                     "10:30", "2024-03-15 10:30", " 2024-03-15 10:30:00 ", "2024/03/15 10:30:00",
                     "2024-03-15T10:30:00.123456Z", "1710470000:5", "2024-03-15 10:30:00 PM"]),
    st.text(max_size=12),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.sampled_from(["sku", "qty", "名称"]), st.integers(0, 5), max_size=2),
    st.just(datetime(2024, 3, 15, 10, 30)), st.just(datetime(2024, 3, 15, tzinfo=UTC)),
    st.just(Decimal("NaN")),
)


@st.composite
def records(draw: st.DrawFn) -> tuple[str, dict[object, object]]:
    source = draw(st.sampled_from(SOURCES))
    keys = draw(st.lists(st.sampled_from(_names(source)), max_size=10, unique=True))
    return source, {key: draw(st.one_of(VALUES, st.sampled_from(_categories(source)),
                                        st.sampled_from(TIMES)))
                    for key in keys}


TIMES = ["2024-03-15 10:30:00", "2024-03-15T10:30:00+08:00", "0001-01-01T00:00:00+08:00",
         "9999-12-31T23:59:59-08:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59",
         "2024-02-30 10:00:00", "10:30", "2024-03-15 10:30", " 2024-03-15 10:30:00 ",
         "2024/03/15 10:30:00", "2024-03-15T10:30:00.123456Z", "1710470000:5",
         "2024-03-15 10:30:00 PM", "2024-03-10 02:30:00", "２０２４-03-15 10:30:00"]
"""Time texts at the edges: offsets past year 1 and 9999, impossible dates, other spellings."""


def _categories(source: str) -> list[str]:
    """Values the mapping's value tables know, spelled as a source may (case, width, space)."""
    found = sorted({raw for table in MAPPINGS[source].values.values() for raw in table})
    return found + [f" {raw.upper()} " for raw in found[:8]] or ["none"]


@settings(max_examples=400, deadline=None)
@given(records(), st.randoms())
def test_plan_equals_general_path(case: tuple[str, dict[object, object]], rnd) -> None:
    source, record = case
    mapping = MAPPINGS[source]
    items = list(record.items())
    rnd.shuffle(items)
    record = dict(items)
    expected = _standardize_items(list(record.items()), mapping, ZONE)
    # twice: the first call makes the plan, the second reads by it
    assert standardize(record, mapping, ZONE) == expected
    assert standardize(record, mapping, ZONE) == expected
    assert list(standardize(record, mapping, ZONE)[0]) == list(expected[0])  # field order


def test_plan_is_used_and_bounded() -> None:
    mapping = load_mapping("orders")
    record = {"客户ID": "C1", "订单号": "SO1", "下单时间": "2024-03-15 10:30:00", "备注": "x"}
    fields, problems = standardize(record, mapping, ZONE)
    assert tuple(record) in mapping.plans
    assert fields["user_id"] == "C1" and fields["extra"] == {"备注": "x"} and not problems
    for n in range(2000):  # hostile: a new key set per record
        standardize({f"k{n}": 1, "客户ID": "C1"}, mapping, ZONE)
    assert len(mapping.plans) <= 512


def test_contests_and_odd_keys_take_the_general_path() -> None:
    mapping = load_mapping("orders")
    contest = {"客户ID": "", "user_id": "C2"}
    fields, problems = standardize(contest, mapping, ZONE)
    assert fields["user_id"] == "C2" and [p.code for p in problems] == ["duplicate_field"]
    assert standardize(contest, mapping, ZONE) == _standardize_items(
        list(contest.items()), mapping, ZONE)
    odd = {1: "a", 2.5: "b", "客户ID": "C3"}
    assert standardize(odd, mapping, ZONE) == _standardize_items(list(odd.items()), mapping, ZONE)
    assert (1, 2.5, "客户ID") not in mapping.plans


@settings(max_examples=300, deadline=None)
@given(records(), st.data())
def test_field_reader_equals_standardize_of_the_picked_keys(case, data) -> None:
    from custpulse.schemas.mapping import field_reader  # noqa: PLC0415
    source, record = case
    mapping = MAPPINGS[source]
    wanted = set(data.draw(st.lists(st.sampled_from(sorted(set(mapping.types))), max_size=5)))
    reader = field_reader(mapping, tuple(record), wanted, ZONE)
    part = {k: v for k, v in record.items() if mapping.canonical_name(k) in wanted}
    expected, _ = standardize(part, mapping, ZONE)
    expected.pop("extra")
    if reader is None:  # a contest among the picked keys: standardize alone decides
        assert len({mapping.canonical_name(k) for k in part}) < len(part)
        return
    assert reader(record) == expected
    assert reader(dict(record)) == expected  # read again: from the cache of seen values


def test_every_edge_time_text_reads_as_the_general_path() -> None:
    for source, mapping in MAPPINGS.items():
        for alias, canon in mapping.aliases.items():
            if mapping.types.get(canon) != "time":
                continue
            for text in TIMES + [t.replace(" ", "T") for t in TIMES]:
                record = {alias: text, "note": "x"}
                assert standardize(record, mapping, ZONE) == _standardize_items(
                    list(record.items()), mapping, ZONE), (source, alias, text)


CELLS = st.one_of(st.none(), st.sampled_from(TIMES), st.sampled_from(["", " ", "C1", " c1 ", "１２３",
                                                                      "已支付", "paid", "1,299.00"]))
"""Cells as a CSV file gives them (text or missing), chosen from few so that rows repeat them."""


@settings(max_examples=300, deadline=None)
@given(records(), st.data())
def test_column_reader_equals_the_field_reader_row_by_row(case, data) -> None:
    """Columns read once per distinct cell give, row by row, what the field reader gives: the
    same values of the same types (``1`` and ``True`` are equal keys but not equal values)."""
    from custpulse.schemas.mapping import column_reader, field_reader  # noqa: PLC0415
    source, first = case
    mapping = MAPPINGS[source]
    wanted = set(data.draw(st.lists(st.sampled_from(sorted(set(mapping.types))), max_size=5)))
    keys = tuple(first)
    text_only = data.draw(st.booleans())
    cells = CELLS if text_only else st.one_of(CELLS, VALUES)
    rows = [first] + [{key: data.draw(cells) for key in keys}
                      for _ in range(data.draw(st.integers(0, 6)))]
    read = column_reader(mapping, keys, wanted, ZONE)
    reader = field_reader(mapping, keys, wanted, ZONE)
    if reader is None:
        assert read is None
        return
    columns = read(rows)
    expected = [reader(row) for row in rows]
    assert sorted(columns) == sorted(expected[0]) if expected[0] else not columns
    for name, column in columns.items():
        got = [(type(value), value) for value in column]
        assert got == [(type(row[name]), row[name]) for row in expected]


def test_column_reader_does_not_share_lists_between_rows() -> None:
    from custpulse.schemas.mapping import column_reader  # noqa: PLC0415
    mapping = load_mapping("orders")
    name = "items"
    assert mapping.types[name] == "list"
    key = next(alias for alias, canon in mapping.aliases.items() if canon == name)
    read = column_reader(mapping, (key,), {name}, ZONE)
    assert read is not None
    first, second = read([{key: "[1, 2]"}, {key: "[1, 2]"}])[name]
    assert first == second and first is not second


def test_plans_of_huge_key_sets_are_read_but_not_kept() -> None:
    mapping = load_mapping("orders")
    record = {"客户ID": "C1", **{f"k{n}-" + "x" * 200: n for n in range(50)}}
    fields, problems = standardize(record, mapping, ZONE)
    assert fields["user_id"] == "C1" and len(fields["extra"]) == 50
    assert (fields, problems) == _standardize_items(list(record.items()), mapping, ZONE)
    assert tuple(record) not in mapping.plans


def test_a_mapping_made_from_another_starts_without_its_plans() -> None:
    import dataclasses  # noqa: PLC0415
    mapping = load_mapping("orders")
    standardize({"客户ID": "C1", "渠道": "APP"}, mapping, ZONE)
    assert mapping.plans
    other = dataclasses.replace(mapping, aliases={**mapping.aliases, "渠道": "user_id"})
    assert not other.plans
    assert standardize({"客户ID": "", "渠道": "C9"}, other, ZONE)[0]["user_id"] == "C9"
