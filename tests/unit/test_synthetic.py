"""Properties of the synthetic raw data generator (pure: no I/O, no clock)."""

import re
import statistics
from bisect import bisect_left
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from custpulse.processors.synthetic import generate, summary

SH = ZoneInfo("Asia/Shanghai")
END = datetime(2024, 12, 31, 22, 15, 30, tzinfo=SH)
MONTHS = 12
START = END - timedelta(days=MONTHS * 30.44)
NAIVE = "%Y-%m-%d %H:%M:%S"
CJK = re.compile(r"[\u4e00-\u9fff]")
ZH_BEHAVIOR = {"浏览": "browse", "加购": "add_to_cart", "下单": "order", "登录": "login"}


def naive(text: str) -> datetime:
    return datetime.strptime(text, NAIVE).replace(tzinfo=SH)


def iso(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(hours=8), text
    return value


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2, written independently of the generator."""
    total = sum(int(c) * (2 ** (17 - i) % 11) for i, c in enumerate(first17))
    return "10X98765432"[total % 11]


@pytest.fixture(scope="module")
def data() -> dict[str, list[dict[str, object]]]:
    return generate(300, MONTHS, END, seed=11)


@pytest.fixture(scope="module")
def activity(data) -> dict[str, list[datetime]]:
    """Activity times per customer: behaviour, order rows and ticket openings."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for row in data["behavior"]:
        times[row["user_id"]].append(iso(row["behavior_time"]))
    for row in data["orders"]:
        times[row["user_id"]].append(naive(row["order_time"]))
    for row in data["tickets"]:
        times[row["user_id"]].append(naive(row["opened_at"]))
    return times


def test_same_arguments_give_identical_output():
    first = generate(60, 3, END, seed=5, churn_share=0.3)
    second = generate(60, 3, END, seed=5, churn_share=0.3)
    assert first == second
    assert summary(first)["behavior"] > 0


def test_different_seeds_give_different_output():
    one, two = generate(60, 3, END, seed=1), generate(60, 3, END, seed=2)
    assert [c["user_name"] for c in one["customers"]] != [c["user_name"] for c in two["customers"]]
    assert one["behavior"] != two["behavior"]
    assert one["orders"] != two["orders"]


def test_naive_end_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(10, 1, datetime(2024, 12, 31, 12, 0), seed=1)


def test_other_zones_for_end_are_accepted():
    utc_end = END.astimezone(UTC)
    assert generate(20, 2, utc_end, seed=3) == generate(20, 2, END, seed=3)


def test_summary_counts_each_source(data):
    counts = summary(data)
    assert set(data) == {"customers", "behavior", "orders", "tickets"}
    assert counts == {source: len(rows) for source, rows in data.items()}
    assert counts["customers"] == 300
    assert summary({}) == {"customers": 0, "behavior": 0, "orders": 0, "tickets": 0}


def test_field_names_are_canonical(data):
    assert set(data["customers"][0]) == {
        "user_id", "user_name", "phone", "id_number", "email", "address", "register_date",
        "region", "member_level", "industry", "customer_type", "company_size", "channel",
    }  # fmt: skip
    assert set(data["behavior"][0]) == {
        "user_id", "behavior_type", "behavior_time", "product_id", "duration", "channel",
    }  # fmt: skip
    assert set(data["orders"][0]) == {
        "user_id", "order_id", "order_time", "amount", "items", "status", "channel",
    }  # fmt: skip
    assert set(data["tickets"][0]) == {
        "user_id", "ticket_id", "opened_at", "closed_at", "issue_type", "satisfaction",
        "is_complaint", "handling_minutes", "description",
    }  # fmt: skip


def test_customer_rows(data):
    customers = data["customers"]
    assert [c["user_id"] for c in customers] == [f"U{i:06d}" for i in range(1, 301)]
    plain = [c["phone"] for c in customers if re.fullmatch(r"1[3-9]\d{9}", c["phone"])]
    dashed = [c["phone"] for c in customers if re.fullmatch(r"\+86 1\d\d-\d{4}-\d{4}", c["phone"])]
    assert len(plain) + len(dashed) == 300
    assert plain and dashed
    assert len({re.sub(r"\D", "", c["phone"])[-11:] for c in customers}) == 300
    assert all(re.fullmatch(r"[\w.]+@[a-z0-9]+\.com", c["email"]) for c in customers)
    assert len({c["email"] for c in customers}) == 300
    assert all(c["address"].startswith(c["region"]) and "号" in c["address"] for c in customers)
    assert 10 <= len({c["region"] for c in customers}) <= 15
    assert {c["channel"] for c in customers} == {"APP", "web", "mini-program", "offline"}
    assert {c["customer_type"] for c in customers} == {"个人", "企业"}
    for c in customers:
        naive(c["register_date"])
        if c["customer_type"] == "个人":
            assert c["company_size"] == ""
        else:
            assert c["company_size"] in {"small", "medium", "large", "小型", "中型", "大型"}


def test_id_numbers_are_valid_resident_ids(data):
    ids = [c["id_number"] for c in data["customers"]]
    assert len(set(ids)) == len(ids)
    for c, number in zip(data["customers"], ids, strict=True):
        assert re.fullmatch(r"\d{17}[\dX]", number), number
        assert number[17] == check_char(number[:17]), number
        birth = datetime.strptime(number[6:14], "%Y%m%d").date()
        registered = naive(c["register_date"]).date()
        assert date(1930, 1, 1) < birth <= registered - timedelta(days=18 * 365)
    assert any(number.endswith("X") for number in ids)
    assert check_char("11010519491231002") == "X"  # the textbook example


def test_every_activity_lies_in_window_and_after_registration(data, activity):
    registered = {c["user_id"]: naive(c["register_date"]) for c in data["customers"]}
    assert set(activity) <= set(registered)
    for user_id, times in activity.items():
        for t in times:
            assert START < t <= END, (user_id, t)
            assert t >= registered[user_id], (user_id, t)
    assert any(r < START for r in registered.values())  # long-time customers
    assert any(START < r <= END for r in registered.values())  # new in the window
    assert all(r <= END for r in registered.values())
    assert all(b["behavior_time"].endswith("+08:00") for b in data["behavior"])


def test_lists_are_sorted_by_event_time(data):
    behavior = [iso(b["behavior_time"]) for b in data["behavior"]]
    orders = [naive(o["order_time"]) for o in data["orders"]]
    tickets = [naive(t["opened_at"]) for t in data["tickets"]]
    for times in (behavior, orders, tickets):
        assert times == sorted(times)


def test_order_ids_are_unique_and_changes_follow_a_paid_order(data):
    orders = data["orders"]
    paid = {}
    for position, row in enumerate(orders):
        if row["status"] == "paid":
            assert re.fullmatch(r"O\d+", row["order_id"])
            assert row["order_id"] not in paid
            paid[row["order_id"]] = (position, row)
    changes = [(i, row) for i, row in enumerate(orders) if row["status"] != "paid"]
    assert {row["status"] for _, row in changes} == {"returned", "refunded"}
    assert 0.02 < len(changes) / len(paid) < 0.12
    assert len({row["order_id"] for _, row in changes}) == len(changes)  # one change per order
    for position, row in changes:
        paid_position, original = paid[row["order_id"]]
        assert paid_position < position
        assert naive(row["order_time"]) > naive(original["order_time"])
        assert (row["user_id"], row["amount"], row["items"]) == (
            original["user_id"], original["amount"], original["items"],
        )  # fmt: skip
        assert row["items"] is not original["items"]


def test_order_values(data):
    customers = {c["user_id"]: c for c in data["customers"]}
    paid = [o for o in data["orders"] if o["status"] == "paid"]
    categories = {"服装", "数码", "食品", "家居", "美妆", "母婴", "运动", "图书"}
    for o in paid:
        assert isinstance(o["amount"], float) and o["amount"] >= 0
        assert round(o["amount"], 2) == o["amount"]
        assert 1 <= len(o["items"]) <= 3
        for item in o["items"]:
            assert re.fullmatch(r"P\d{4}", item["product_id"]) and item["category"] in categories
    assert any(o["amount"] == 0 for o in paid)
    by_level = defaultdict(list)
    canon = {"普通": "regular", "白银": "silver", "黄金": "gold"}
    for o in paid:
        level = customers[o["user_id"]]["member_level"]
        by_level[canon.get(level, level)].append(o["amount"])
    assert set(by_level) == {"regular", "silver", "gold"}
    assert statistics.mean(by_level["gold"]) > 1.3 * statistics.mean(by_level["regular"])


def test_orders_mostly_follow_browsing_or_cart(data):
    seen = defaultdict(list)
    for b in data["behavior"]:
        kind = ZH_BEHAVIOR.get(b["behavior_type"], b["behavior_type"])
        if kind in {"browse", "add_to_cart"}:
            seen[b["user_id"]].append(iso(b["behavior_time"]))
    paid = [o for o in data["orders"] if o["status"] == "paid"]
    preceded = 0
    for o in paid:  # behaviour lists are time-sorted: the latest earlier event is at i - 1
        t, times = naive(o["order_time"]), seen[o["user_id"]]
        i = bisect_left(times, t)
        preceded += i > 0 and t - times[i - 1] <= timedelta(hours=1)
    assert 0.75 < preceded / len(paid) < 1.0


def test_ticket_rows(data):
    tickets = data["tickets"]
    ids = [t["ticket_id"] for t in tickets]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"T\d+", i) for i in ids)
    open_tickets = [t for t in tickets if t["closed_at"] is None]
    assert 0 < len(open_tickets) < 0.15 * len(tickets)
    for t in open_tickets:
        assert t["handling_minutes"] is None and t["satisfaction"] is None
    for t in tickets:
        if t["closed_at"] is None:
            continue
        opened, closed = naive(t["opened_at"]), naive(t["closed_at"])
        assert opened < closed <= END
        assert t["handling_minutes"] == (closed - opened) // timedelta(minutes=1)
        assert t["satisfaction"] is None or t["satisfaction"] in {1, 2, 3, 4, 5}
        assert isinstance(t["is_complaint"], bool)
        assert CJK.search(t["description"])
    assert all(t["is_complaint"] for t in tickets if t["issue_type"] == "投诉")
    assert {"咨询", "投诉", "售后", "物流", "退款"} <= {t["issue_type"] for t in tickets}
    assert any(t["satisfaction"] is None for t in tickets if t["closed_at"] is not None)
    durations = [t["handling_minutes"] for t in tickets if t["handling_minutes"] is not None]
    assert min(durations) < 60 and max(durations) > 24 * 60  # minutes to days
    rated = [(t["is_complaint"], t["satisfaction"]) for t in tickets if t["satisfaction"]]
    complaint = statistics.mean(s for c, s in rated if c)
    other = statistics.mean(s for c, s in rated if not c)
    assert complaint < other - 1.0


def test_some_descriptions_carry_the_customers_phone_or_email(data):
    contact = {
        c["user_id"]: (re.sub(r"\D", "", c["phone"])[-11:], c["email"]) for c in data["customers"]
    }
    leaking = [
        t for t in data["tickets"] if any(v in t["description"] for v in contact[t["user_id"]])
    ]
    assert 0.05 < len(leaking) / len(data["tickets"]) < 0.4
    assert any(re.search(r"1[3-9]\d{9}", t["description"]) for t in leaking)
    assert any("@" in t["description"] for t in leaking)


def test_values_mix_chinese_and_english(data):
    customers, behavior = data["customers"], data["behavior"]
    names = [c["user_name"] for c in customers]
    assert sum(bool(CJK.fullmatch(n[0])) for n in names) > 0.7 * len(names)
    assert any(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", n) for n in names)
    levels = {c["member_level"] for c in customers}
    assert levels == {"普通", "白银", "黄金", "regular", "silver", "gold"}
    kinds = {b["behavior_type"] for b in behavior}
    assert kinds == set(ZH_BEHAVIOR) | set(ZH_BEHAVIOR.values())
    assert {c["company_size"] for c in customers} & {"small", "medium", "large"}
    assert {c["company_size"] for c in customers} & {"小型", "中型", "大型"}


def test_behaviour_is_funnel_shaped(data):
    counts = Counter(
        ZH_BEHAVIOR.get(b["behavior_type"], b["behavior_type"]) for b in data["behavior"]
    )
    assert counts["browse"] > 2 * counts["add_to_cart"] > 2 * counts["order"] > 0
    duration = defaultdict(list)
    for b in data["behavior"]:
        assert isinstance(b["duration"], int) and b["duration"] > 0
        duration[ZH_BEHAVIOR.get(b["behavior_type"], b["behavior_type"])].append(b["duration"])
    assert statistics.median(duration["browse"]) > 2 * statistics.median(duration["add_to_cart"])
    assert all(b["product_id"] is None for b in data["behavior"] if b["behavior_type"] == "login")


def test_volumes_per_customer_month(data, activity):
    # customers active over the whole window: registered before it, still active at the end
    registered = {c["user_id"]: naive(c["register_date"]) for c in data["customers"]}
    full = [
        u for u, ts in activity.items() if registered[u] < START and max(ts) > END - timedelta(7)
    ]
    assert len(full) > 100
    per_month = sorted(len(activity[u]) / MONTHS for u in full)
    assert 15 <= statistics.median(per_month) <= 60
    assert per_month[0] < 10 < 60 < per_month[-1]  # light and heavy customers
    orders = Counter(o["user_id"] for o in data["orders"] if o["status"] == "paid")
    assert 0.8 <= statistics.median(orders[u] / MONTHS for u in full) <= 3
    assert len(data["tickets"]) / (len(data["customers"]) * MONTHS) < 0.4


def test_churners_go_silent_and_others_stay_active(data, activity):
    last = {u: max(ts) for u, ts in activity.items()}
    silent = [u for u, t in last.items() if t < END - timedelta(days=90)]
    active = [u for u, t in last.items() if t > END - timedelta(days=30)]
    assert 0.05 * 300 < len(silent) <= 0.2 * 300
    assert any(t < END - timedelta(days=180) for t in last.values())
    assert len(active) > 0.7 * 300


def test_churn_share_controls_silence():
    def silent(share: float) -> int:
        records = generate(150, 6, END, seed=4, churn_share=share)
        last: dict[str, str] = {}
        for b in records["behavior"]:
            last[b["user_id"]] = max(last.get(b["user_id"], ""), b["behavior_time"])
        return sum(iso(t) < END - timedelta(days=90) for t in last.values())

    assert silent(0.0) == 0
    assert 0 < silent(0.2) < silent(0.6)


def test_weekly_daily_and_yearly_rhythm(activity):
    times = [t.astimezone(SH) for ts in activity.values() for t in ts]
    hours = Counter(t.hour for t in times)
    assert sum(hours[h] for h in range(2, 6)) < 0.03 * len(times)
    assert sum(hours[h] for h in range(19, 23)) > 0.25 * len(times)
    days = Counter(t.date() for t in times)
    weekend = [n for d, n in days.items() if d.weekday() >= 5]
    weekday = [n for d, n in days.items() if d.weekday() < 5]
    assert statistics.mean(weekend) > 1.15 * statistics.mean(weekday)

    def per_day(first: date, last: date) -> float:
        span = (last - first).days + 1
        return sum(days[first + timedelta(i)] for i in range(span)) / span

    october = per_day(date(2024, 10, 1), date(2024, 10, 31))
    assert per_day(date(2024, 11, 9), date(2024, 11, 13)) > 1.8 * october
    assert per_day(date(2024, 6, 15), date(2024, 6, 20)) > 1.3 * per_day(
        date(2024, 5, 1), date(2024, 5, 31)
    )
    assert per_day(date(2024, 2, 7), date(2024, 2, 13)) < 0.75 * per_day(
        date(2024, 3, 1), date(2024, 3, 31)
    )
