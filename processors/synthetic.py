"""Synthetic raw source records for custpulse: CRM customers, behaviour, orders and tickets.

Pure and deterministic: no clock, no I/O. All randomness comes from one
``random.Random(seed)`` and all time from the ``end`` argument, so the same arguments always
give the same records. Field names are the canonical English names of the brief; values are
*raw* source values (Chinese and English spellings mixed, phones in two formats, plain PII in
the CRM rows and in some ticket descriptions), so cleaning and masking have work to do.

Units and time semantics:

* naive ``'YYYY-MM-DD HH:MM:SS'`` strings (``register_date``, ``order_time``, ``opened_at``,
  ``closed_at``) are Asia/Shanghai local time; ``behavior_time`` is ISO 8601 with ``+08:00``;
  every time has whole-second resolution;
* the window is ``(end - months * 30.44 days, end]``. Activity times (``behavior_time``,
  ``order_time``, ``opened_at``) lie in the window and never before the customer's
  ``register_date``; ``closed_at`` lies after ``opened_at`` and not after ``end``. Customers
  may have registered before the window (their earlier history is not generated);
* ``amount`` is in CNY (2 decimals), ``duration`` in seconds, ``handling_minutes`` in minutes.

Shape: customers are heavy, normal or light users (a normal one makes about 10 sessions, some
35 behaviour events and 1-2 orders a month; tickets are rare). Sessions follow the clock
(evenings and weekends busy, 2-6 am quiet) and the year (peaks at 618 and Double 11, a dip at
Spring Festival). A session runs login -> browse -> add to cart -> order, thinning at each
step; a few orders are offline purchases with no online behaviour. ``churn_share`` of the
customers stop all activity at a random moment inside the window. About 6% of paid orders get
a second, later row with the same ``order_id`` and status ``returned`` or ``refunded``; its
``order_time`` is the time of that status change. Every list is sorted by its event time.

>>> records = generate(5, 2, datetime(2024, 6, 30, 23, 0, tzinfo=SHANGHAI), seed=7)
>>> summary(records)["customers"]
5
>>> records == generate(5, 2, datetime(2024, 6, 30, 23, 0, tzinfo=SHANGHAI), seed=7)
True
"""

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAYS_PER_MONTH = 30.44
SOURCES = ("customers", "behavior", "orders", "tickets")

Row = dict[str, object]

# region, weight, ((district, 6-digit administrative code used in id numbers), ...)
_REGIONS: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    ("北京市", 3, (("朝阳区", "110105"), ("海淀区", "110108"))),
    ("上海市", 3, (("浦东新区", "310115"), ("徐汇区", "310104"))),
    ("广东省深圳市", 3, (("南山区", "440305"), ("福田区", "440304"))),
    ("广东省广州市", 2.5, (("天河区", "440106"), ("越秀区", "440104"))),
    ("浙江省杭州市", 2.5, (("西湖区", "330106"), ("余杭区", "330110"))),
    ("江苏省南京市", 1.5, (("鼓楼区", "320106"), ("玄武区", "320102"))),
    ("江苏省苏州市", 1.5, (("姑苏区", "320508"), ("吴中区", "320506"))),
    ("四川省成都市", 2, (("武侯区", "510107"), ("锦江区", "510104"))),
    ("湖北省武汉市", 1.5, (("武昌区", "420106"), ("洪山区", "420111"))),
    ("陕西省西安市", 1, (("雁塔区", "610113"), ("碑林区", "610103"))),
    ("重庆市", 1.5, (("渝中区", "500103"), ("江北区", "500105"))),
    ("天津市", 1, (("和平区", "120101"), ("南开区", "120104"))),
    ("山东省青岛市", 1, (("市南区", "370202"), ("崂山区", "370212"))),
    ("福建省厦门市", 1, (("思明区", "350203"), ("湖里区", "350206"))),
    ("湖南省长沙市", 1, (("岳麓区", "430104"), ("天心区", "430103"))),
)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = {True: "伟强磊军洋勇杰涛明超刚辉鹏浩斌", False: "娜敏静丽芳艳娟霞婷雪慧燕玲颖琳"}
_EN_FIRST = {
    True: ("James", "David", "Kevin", "Michael", "Tom", "Jason"),
    False: ("Emma", "Lucy", "Grace", "Linda", "Sophia", "Cindy"),
}
_EN_LAST = ("Smith", "Brown", "Wang", "Chen", "Johnson", "Lee", "Miller")
_PHONE_PREFIXES = (
    "130 131 132 133 135 136 137 138 139 150 151 152 155 156 158 159 166 177 "
    "180 181 186 187 188 189 191 199"
).split()
_EMAIL_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "sina.com", "outlook.com")
_STREETS = tuple("人民路 建设路 中山路 解放路 和平路 新华路 文化路 科技路 学府路".split())
_LEVELS = {"regular": "普通", "silver": "白银", "gold": "黄金"}
_LEVEL_WEIGHTS = {"heavy": (0.2, 0.4, 0.4), "normal": (0.5, 0.35, 0.15), "light": (0.75, 0.2, 0.05)}
_LEVEL_SPEND = {"regular": 1.0, "silver": 1.3, "gold": 1.8}
_INDUSTRIES = ("零售业", "制造业", "互联网", "金融", "教育", "医疗", "物流", "餐饮")
_INDUSTRY_VARIANTS = {"零售业": "线下零售", "制造业": "制造", "金融": "金融业"}  # ~5% of rows
_SIZES = {"small": "小型", "medium": "中型", "large": "大型"}
_CHANNELS = ("APP", "web", "mini-program", "offline")
_ONLINE = ("APP", "web", "mini-program")
_BEHAVIOR_ZH = {"browse": "浏览", "add_to_cart": "加购", "order": "下单", "login": "登录"}
# category -> median item price in CNY
_CATEGORIES = dict(
    zip(
        "服装 数码 食品 家居 美妆 母婴 运动 图书".split(),
        map(float, "150 800 60 200 180 160 220 45".split()),
        strict=True,
    )
)
# activity level -> (share of customers, session-rate multiplier)
_ACTIVITY = {"heavy": (0.15, 2.5), "normal": (0.6, 1.0), "light": (0.25, 0.25)}
_SESSIONS_PER_MONTH = 10.0  # for a normal customer
_OFFLINE_ORDERS_PER_MONTH = 0.15  # 0.8 for customers acquired offline
_TICKETS_PER_MONTH = 0.12
_HOURS = "0.5 0.25 0.1 0.06 0.06 0.08 0.2 0.45 0.8 1 1.1 1.1 1.2 1 0.95 1 1 1.1 1.3 1.6 1.9 2 1.7 1"
_HOUR_WEIGHTS = tuple(map(float, _HOURS.split()))  # local hours 0..23: evening peak, 2-6 am quiet
_HOUR_CUM = tuple(math.fsum(_HOUR_WEIGHTS[: h + 1]) for h in range(24))
_WEEKDAY_WEIGHTS = (1.0, 0.95, 1.0, 1.0, 1.1, 1.4, 1.35)  # Monday first
_SPRING_FESTIVAL_DAYS = (
    "2019-02-05 2020-01-25 2021-02-12 2022-02-01 2023-01-22 2024-02-10 "
    "2025-01-29 2026-02-17 2027-02-06 2028-01-26 2029-02-13 2030-02-03"
)
_SPRING_FESTIVAL = {d.year: d for d in map(date.fromisoformat, _SPRING_FESTIVAL_DAYS.split())}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# issue type -> (weight among spontaneous tickets, median handling minutes, complaint chance)
_ISSUES = {
    "咨询": (0.45, 45, 0.0),
    "投诉": (0.15, 2880, 1.0),
    "售后": (0.12, 1440, 0.15),
    "物流": (0.1, 600, 0.15),
    "退款": (0.08, 1440, 0.15),
    "账户": (0.1, 90, 0.0),
}
_ORDER_ISSUES = ("售后", "物流", "退款")
_TEXTS = {
    "咨询": (
        "请问{product}什么时候补货？",
        "想咨询一下会员积分怎么使用",
        "咨询{product}的尺码和发票问题",
    ),
    "投诉": (
        "客服态度很差，问题一直没人处理",
        "商品与描述严重不符，要求给个说法",
        "多次反映{order}的问题都没有回复，非常不满意",
    ),
    "售后": ("{order}的商品有质量问题，申请换货", "收到的商品有破损，需要售后处理"),
    "物流": ("{order}三天没有物流更新", "快递显示已签收但本人没有收到"),
    "退款": ("{order}申请退款一周了还没到账", "退货已寄回，请尽快退款"),
    "账户": ("账号登录不上，收不到验证码", "想修改绑定的手机号"),
}
_PII_TEXTS = (
    "，请回电 {phone}",
    "，联系电话：{phone}",
    "，请发邮件到{email}",
    "。我的手机号是{phone}，邮箱{email}",
)
_SAT_COMPLAINT = (0.3, 0.3, 0.2, 0.12, 0.08)  # weights of scores 1..5
_SAT_OTHER = (0.03, 0.07, 0.2, 0.35, 0.35)


def generate(
    customers: int, months: int, end: datetime, seed: int, churn_share: float = 0.2
) -> dict[str, list[Row]]:
    """Synthetic raw records per source: keys 'customers', 'behavior', 'orders', 'tickets'.

    ``end`` must be timezone-aware; events fall in ``(end - months * 30.44 days, end]``.
    ``round(churn_share * customers)`` customers stop all activity at a random moment inside
    the window. Naive time strings are Asia/Shanghai local time; amounts are CNY, durations
    seconds, handling times minutes. Same arguments -> identical output.
    """
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware, e.g. datetime(..., tzinfo=SHANGHAI)")
    if customers < 0 or months <= 0 or not 0.0 <= churn_share <= 1.0:
        raise ValueError("need customers >= 0, months > 0 and 0 <= churn_share <= 1")
    rng = random.Random(seed)
    hi = math.floor(end.timestamp())
    lo = math.floor(end.timestamp() - months * DAYS_PER_MONTH * 86400) + 1  # first second inside
    cal = _Calendar(lo, hi)
    gen = _Generator(rng, cal, lo, hi)
    churners = set(rng.sample(range(customers), round(churn_share * customers)))
    for i in range(customers):
        gen.customer(i, churned=i in churners)
    return gen.finish()


def summary(records: dict[str, list[Row]]) -> dict[str, int]:
    """Number of records per source (a returned/refunded row counts as an order row)."""
    return {source: len(records.get(source, [])) for source in SOURCES}


def _yearly(day: date) -> float:
    """Relative activity on a local calendar day: 618 and Double 11 peaks, Spring Festival dip."""
    factor = 1.0
    for year in (day.year - 1, day.year, day.year + 1):
        for peak, amplitude, width in (
            (date(year, 6, 18), 1.2, 4.0),
            (date(year, 11, 11), 2.0, 3.0),
        ):
            factor += amplitude * math.exp(-(((day - peak).days / width) ** 2))
        festival = _SPRING_FESTIVAL.get(year, date(year, 2, 1))
        factor -= 0.55 * math.exp(-(((day - festival).days / 6.0) ** 2))
    return max(factor, 0.2)


class _Calendar:
    """Local days of the window with their weights; samples seasonal epoch seconds."""

    def __init__(self, lo: int, hi: int) -> None:
        day = datetime.fromtimestamp(lo, SHANGHAI).date()
        last = datetime.fromtimestamp(hi, SHANGHAI).date()
        self.midnights: list[int] = []
        self.factors: list[float] = []
        self.cum: list[float] = []
        total = 0.0
        while day <= last:
            self.midnights.append(int(datetime.combine(day, time(), SHANGHAI).timestamp()))
            self.factors.append(_yearly(day))
            total += self.factors[-1] * _WEEKDAY_WEIGHTS[day.weekday()]
            self.cum.append(total)
            day += timedelta(days=1)

    def day(self, t: int) -> int:
        return max(bisect_right(self.midnights, t) - 1, 0)

    def sample(self, rng: random.Random, a: int, b: int) -> int:
        """An epoch second in [a, b] drawn by weekday, season and hour of day."""
        first, last = self.day(a), self.day(b)
        low = self.cum[first - 1] if first else 0.0
        for _ in range(30):
            d = min(max(bisect_left(self.cum, rng.uniform(low, self.cum[last])), first), last)
            hour = bisect_left(_HOUR_CUM, rng.uniform(0.0, _HOUR_CUM[-1]))
            t = self.midnights[d] + min(hour, 23) * 3600 + rng.randrange(3600)
            if a <= t <= b:
                return t
        return rng.randint(a, b)


def _naive(t: int) -> str:
    return datetime.fromtimestamp(t, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    k, p, limit = 0, rng.random(), math.exp(-lam)
    while p > limit:
        k, p = k + 1, p * rng.random()
    return k


def _id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a Chinese resident id number."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


class _Generator:
    def __init__(self, rng: random.Random, cal: _Calendar, lo: int, hi: int) -> None:
        self.rng, self.cal, self.lo, self.hi = rng, cal, lo, hi
        self.customers: list[Row] = []
        self.behavior: list[tuple[int, str, Row]] = []
        self.paid: list[tuple[int, str, Row]] = []
        self.changes: list[tuple[int, str, Row]] = []  # (time, status, paid row)
        self.tickets: list[tuple[int, str, Row, Row | None, str, str]] = []
        self.seen: set[str] = set()
        self.products = [(f"P{1001 + i}", rng.choice(tuple(_CATEGORIES))) for i in range(400)]
        self.product_cum = [math.fsum(1 / (r + 5) for r in range(i + 1)) for i in range(400)]
        self.by_category: dict[str, list[tuple[str, str]]] = {}
        for product in self.products:
            self.by_category.setdefault(product[1], []).append(product)

    def _unique(self, make: Callable[[], str]) -> str:
        value = make()
        while value in self.seen:
            value = make()
        self.seen.add(value)
        return value

    def _product(self) -> tuple[str, str]:
        u = self.rng.uniform(0.0, self.product_cum[-1])
        return self.products[min(bisect_left(self.product_cum, u), len(self.products) - 1)]

    def customer(self, i: int, churned: bool) -> None:
        rng, user_id = self.rng, f"U{i + 1:06d}"
        level = rng.choices(tuple(_ACTIVITY), [s for s, _ in _ACTIVITY.values()])[0]
        rate = _ACTIVITY[level][1] * rng.lognormvariate(0.0, 0.3)
        if rng.random() < 0.55:  # long-time customer, registered up to 5 years before the window
            registered = self.lo - rng.randint(86400, 5 * 365 * 86400)
        else:
            registered = self.cal.sample(rng, self.lo, self.hi)
        male = rng.random() < 0.5
        if rng.random() < 0.85:
            given = "".join(rng.choice(_GIVEN[male]) for _ in range(rng.choice((1, 2))))
            name, en_name = rng.choice(_SURNAMES) + given, None
        else:
            en_name = (rng.choice(_EN_FIRST[male]), rng.choice(_EN_LAST))
            name = " ".join(en_name)
        phone = self._unique(lambda: rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}")
        domain = rng.choice(_EMAIL_DOMAINS)

        def make_email() -> str:
            if en_name is not None:
                return f"{en_name[0]}.{en_name[1]}{rng.randrange(1000)}@{domain}".lower()
            if domain == "qq.com":
                return f"{rng.randint(10**5, 10**10)}@{domain}"
            letters = "".join(rng.choice("abcdefghjkmnpqrstwxyz") for _ in range(rng.randint(4, 8)))
            return f"{letters}{rng.randrange(100)}@{domain}"

        email = self._unique(make_email)
        region, _, districts = rng.choices(_REGIONS, [w for _, w, _ in _REGIONS])[0]
        district = rng.choice(districts)[0]
        birth_districts = districts if rng.random() < 0.7 else rng.choice(_REGIONS)[2]
        reg_day = datetime.fromtimestamp(registered, SHANGHAI).date()
        birth = reg_day - timedelta(days=rng.randint(18 * 366, 65 * 365))

        def id_number() -> str:
            seq = f"{rng.randrange(100):02d}{rng.choice('13579' if male else '02468')}"
            first17 = rng.choice(birth_districts)[1] + birth.strftime("%Y%m%d") + seq
            return first17 + _id_check_digit(first17)

        member = rng.choices(tuple(_LEVELS), _LEVEL_WEIGHTS[level])[0]
        business = rng.random() < 0.2
        size = rng.choices(tuple(_SIZES), (0.6, 0.3, 0.1))[0]
        industry = rng.choice(_INDUSTRIES)
        if rng.random() < 0.05:  # another system's spelling of the same industry
            industry = _INDUSTRY_VARIANTS.get(industry, industry)
        dashed = rng.random() < 0.15
        channel = rng.choices(_CHANNELS, (0.45, 0.2, 0.25, 0.1))[0]
        english = rng.random() < 0.2
        self.customers.append(
            {
                "user_id": user_id,
                "user_name": name,
                "phone": f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}" if dashed else phone,
                "id_number": self._unique(id_number),
                "email": email,
                "address": f"{region}{district}{rng.choice(_STREETS)}{rng.randint(1, 999)}号"
                f"{rng.randint(1, 30)}栋{rng.randint(1, 32)}{rng.randint(1, 4):02d}室",
                "register_date": _naive(registered),
                "region": region,
                "member_level": member if english else _LEVELS[member],
                "industry": industry,
                "customer_type": "企业" if business else "个人",
                "company_size": (size if rng.random() < 0.4 else _SIZES[size]) if business else "",
                "channel": channel,
            }
        )
        a = max(self.lo, registered)
        b = rng.randint(a, self.hi) if churned else self.hi
        span = (b - a) / (DAYS_PER_MONTH * 86400)
        spend = _LEVEL_SPEND[member] * (1.5 if business else 1.0)
        ctx = (user_id, phone, email, spend, a, b)
        for _ in range(_poisson(rng, _SESSIONS_PER_MONTH * rate * span)):
            self._session(ctx, channel)
        offline = 0.8 if channel == "offline" else _OFFLINE_ORDERS_PER_MONTH
        for _ in range(_poisson(rng, offline * min(rate, 1.5) * span)):
            self._order(ctx, self.cal.sample(rng, a, b), "offline", self._product())
        for _ in range(_poisson(rng, _TICKETS_PER_MONTH * min(rate, 2.0) * span)):
            issue = rng.choices(tuple(_ISSUES), [w for w, _, _ in _ISSUES.values()])[0]
            self._ticket(ctx, self.cal.sample(rng, a, b), issue, None)

    def _session(self, ctx: tuple[str, str, str, float, int, int], preferred: str) -> None:
        rng, (user_id, *_, a, b) = self.rng, ctx
        t = self.cal.sample(rng, a, b)
        if rng.random() < 0.03:
            channel = "offline"  # in-store kiosk / scan
        elif preferred != "offline" and rng.random() < 0.7:
            channel = preferred
        else:
            channel = rng.choices(_ONLINE, (0.5, 0.2, 0.3))[0]
        english = channel in ("APP", "web")

        def emit(kind: str, product: str | None, duration: int) -> bool:
            nonlocal t
            if t > b:
                return False
            self.behavior.append(
                (
                    t,
                    user_id,
                    {
                        "user_id": user_id,
                        "behavior_type": kind if english else _BEHAVIOR_ZH[kind],
                        "behavior_time": datetime.fromtimestamp(t, SHANGHAI).isoformat(),
                        "product_id": product,
                        "duration": duration,
                        "channel": channel,
                    },
                )
            )
            t += duration + rng.randint(2, 40)
            return True

        if rng.random() < 0.6 and not emit("login", None, rng.randint(1, 5)):
            return
        seen = []
        for _ in range(1 + min(int(rng.expovariate(0.6)), 12)):
            seen.append(self._product())
            duration = min(1800, max(3, int(rng.lognormvariate(math.log(45), 0.9))))
            if not emit("browse", seen[-1][0], duration):
                return
        if rng.random() >= 0.35:
            return
        item = rng.choice(seen)
        if not emit("add_to_cart", item[0], rng.randint(2, 20)):
            return
        boost = self.cal.factors[self.cal.day(t)] ** 0.3  # promotions convert better
        if rng.random() < min(0.85, 0.5 * boost):
            at = t
            if emit("order", item[0], rng.randint(20, 120)):
                self._order(ctx, at, channel, item)

    def _order(
        self,
        ctx: tuple[str, str, str, float, int, int],
        t: int,
        channel: str,
        first: tuple[str, str],
    ) -> None:
        rng, (user_id, _, _, spend, _, b) = self.rng, ctx
        items = [first]
        for _ in range(rng.choices((0, 1, 2), (0.6, 0.3, 0.1))[0]):
            same = rng.random() < 0.5
            items.append(rng.choice(self.by_category[first[1]]) if same else self._product())
        prices = [rng.lognormvariate(math.log(_CATEGORIES[c]), 0.6) for _, c in items]
        amount = 0.0 if rng.random() < 0.01 else round(spend * math.fsum(prices), 2)
        row: Row = {
            "user_id": user_id,
            "order_id": None,
            "order_time": _naive(t),
            "amount": amount,
            "items": [{"product_id": p, "category": c} for p, c in items],
            "status": "paid",
            "channel": channel,
        }
        self.paid.append((t, user_id, row))
        if amount > 0 and rng.random() < 0.06:
            changed = t + rng.randint(3600, 15 * 86400)
            if changed <= b:
                self.changes.append((changed, rng.choice(("returned", "refunded")), row))
        if rng.random() < 0.04:
            opened = t + rng.randint(6 * 3600, 10 * 86400)
            if opened <= b:
                self._ticket(ctx, opened, rng.choice(_ORDER_ISSUES), row)

    def _ticket(
        self, ctx: tuple[str, str, str, float, int, int], t: int, issue: str, order: Row | None
    ) -> None:
        rng, (user_id, phone, email, *_) = self.rng, ctx
        _, median, complaint_chance = _ISSUES[issue]
        complaint = rng.random() < complaint_chance
        minutes = max(5, int(rng.lognormvariate(math.log(median), 0.8)))
        closed = None if rng.random() < 0.04 or t + minutes * 60 > self.hi else t + minutes * 60
        rated = closed is not None and rng.random() < 0.7
        weights = _SAT_COMPLAINT if complaint else _SAT_OTHER
        text = rng.choice(_TEXTS[issue])
        if rng.random() < 0.2:
            text += rng.choice(_PII_TEXTS).format(phone=phone, email=email)
        row: Row = {
            "user_id": user_id,
            "ticket_id": None,
            "opened_at": _naive(t),
            "closed_at": None if closed is None else _naive(closed),
            "issue_type": issue,
            "satisfaction": rng.choices((1, 2, 3, 4, 5), weights)[0] if rated else None,
            "is_complaint": complaint,
            "handling_minutes": None if closed is None else minutes,
            "description": text,
        }
        self.tickets.append((t, user_id, row, order, self._product()[0], text))

    def finish(self) -> dict[str, list[Row]]:
        self.paid.sort(key=lambda e: (e[0], e[1]))
        for k, (t, _, row) in enumerate(self.paid, start=1):
            row["order_id"] = f"O{_naive(t)[:10].replace('-', '')}{k:07d}"
        orders = [(t, 0, row["user_id"], row) for t, _, row in self.paid]
        for t, status, row in self.changes:
            items = [dict(item) for item in row["items"]]  # type: ignore[attr-defined]
            change = {**row, "order_time": _naive(t), "status": status, "items": items}
            orders.append((t, 1, row["user_id"], change))
        orders.sort(key=lambda e: (e[0], e[1], e[2]))
        self.behavior.sort(key=lambda e: (e[0], e[1]))
        self.tickets.sort(key=lambda e: (e[0], e[1]))
        tickets = []
        for k, (t, _, row, order, product, text) in enumerate(self.tickets, start=1):
            row["ticket_id"] = f"T{_naive(t)[:10].replace('-', '')}{k:06d}"
            ref = "我的订单" if order is None else f"订单{order['order_id']}"
            row["description"] = text.format(order=ref, product=product)
            tickets.append(row)
        return {
            "customers": self.customers,
            "behavior": [row for *_, row in self.behavior],
            "orders": [row for *_, row in orders],
            "tickets": tickets,
        }


def purchase_history(
    customers: int, months: int, end: datetime, seed: int, orders_per_customer: float = 3.0
) -> list[Row]:
    """An order export as a shop system gives it for a backfill: Chinese column names
    (``客户ID``, ``订单号``, ``下单时间``, ``订单金额``, ``订单状态``, ``渠道``), every customer
    with at least one order (on average ``orders_per_customer``, a long tail of loyal buyers), naive
    Asia/Shanghai times with whole seconds in ``(end - months * 30.44 days, end]``, amounts in
    CNY with 2 decimals, about 4 % refunded or returned later (a second row with the same
    order id), sorted by ``下单时间``. Deterministic in its arguments.

    >>> rows = purchase_history(3, 2, datetime(2026, 6, 30, tzinfo=SHANGHAI), seed=1)
    >>> sorted(rows[0])
    ['下单时间', '客户ID', '渠道', '订单号', '订单状态', '订单金额']
    """
    if end.tzinfo is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware")
    rng = random.Random(seed)
    hi = math.floor(end.timestamp())
    lo = math.floor(end.timestamp() - months * DAYS_PER_MONTH * 86400) + 1
    rows: list[tuple[int, Row]] = []
    serial = 0
    for i in range(customers):
        user = f"C{i + 1:07d}"
        n = 1 + min(round(rng.expovariate(1 / max(orders_per_customer - 1, 1e-9))), 200)
        start = rng.randint(lo, hi)  # the first purchase; the rest follow it
        spend = rng.lognormvariate(5.0, 0.8)  # this customer's typical basket, CNY
        channel = rng.choice(("APP", "小程序", "官网", "门店"))
        times = sorted([start] + [rng.randint(start, hi) for _ in range(n - 1)])
        for t in times:
            serial += 1
            order_id = f"SO{serial:09d}"
            amount = round(spend * rng.lognormvariate(0, 0.35), 2)
            row = {"客户ID": user, "订单号": order_id, "下单时间": _naive(t),
                   "订单金额": f"{amount:.2f}", "订单状态": "已支付", "渠道": channel}
            rows.append((t, row))
            if rng.random() < 0.04 and t < hi - 86400:
                later = rng.randint(t + 3600, min(hi, t + 30 * 86400))
                rows.append((later, dict(row, 下单时间=_naive(later),
                                         订单状态=rng.choice(("已退货", "已退款")))))
    rows.sort(key=lambda item: item[0])
    return [row for _, row in rows]


def churn_history(
    customers: int, months: int, end: datetime, seed: int
) -> tuple[dict[str, list[Row]], dict[str, datetime | None]]:
    """Orders, behaviour and tickets with a known churn mechanism (for the churn benchmark):
    records per source (canonical field names and values, times aware UTC ISO 8601, sorted by
    time) and, per customer, when it churned (None: never).

    Each customer has a weekly purchase rate (lognormal around 0.5) and visits about one and a
    half times as often as it buys. Week by week, over ``months`` months up to ``end``, it churns
    (no record after that week) with hazard ``sigmoid(-4.2 + 0.045 * days since the last order
    + 1.2 * open complaints - 0.6 * orders in the last four weeks)``: rising with recency and
    complaints, falling with frequency. A week brings a complaint with probability 3 %, open
    for 1-30 days. Same arguments, same records."""
    rng = random.Random(seed)
    start = end - timedelta(days=months * DAYS_PER_MONTH)
    weeks = int((end - start).days // 7)
    out: dict[str, list[Row]] = {"orders": [], "behavior": [], "tickets": []}
    churned: dict[str, datetime | None] = {}
    for i in range(customers):
        user_id = f"K{i + 1:06d}"
        rate = 0.5 * rng.lognormvariate(0.0, 0.7)
        last_order = start - timedelta(days=rng.uniform(0, 30))
        recent: list[int] = []  # orders per week, last four weeks
        complaints: list[datetime] = []  # closing times of complaints
        churned[user_id] = None
        for week in range(weeks):
            t0 = start + timedelta(weeks=week)
            open_now = sum(1 for closed in complaints if closed > t0)
            logit = (-4.2 + 0.045 * (t0 - last_order).total_seconds() / 86400
                     + 1.2 * open_now - 0.6 * sum(recent[-4:]))
            if week > 0 and rng.random() < 1 / (1 + math.exp(-logit)):
                churned[user_id] = t0
                break
            n_orders = _poisson(rng, rate)
            for k in range(n_orders):
                t = t0 + timedelta(seconds=rng.uniform(0, 7 * 86400))
                out["orders"].append({"user_id": user_id, "order_id": f"{user_id}-{week}-{k}",
                                      "order_time": t, "amount": round(rng.uniform(20, 600), 2),
                                      "status": "paid", "channel": "APP"})
                last_order = max(last_order, t)
            recent.append(n_orders)
            for _ in range(_poisson(rng, 1.5 * rate)):
                t = t0 + timedelta(seconds=rng.uniform(0, 7 * 86400))
                out["behavior"].append({"user_id": user_id, "behavior_type": "browse",
                                        "behavior_time": t, "channel": "APP"})
            if rng.random() < 0.03:
                t = t0 + timedelta(seconds=rng.uniform(0, 7 * 86400))
                closed = t + timedelta(days=rng.uniform(1, 30))
                complaints.append(closed)
                out["tickets"].append({"user_id": user_id, "ticket_id": f"T{user_id}-{week}",
                                       "opened_at": t, "closed_at": closed,
                                       "issue_type": "complaint",
                                       "satisfaction": rng.randint(1, 3)})
    times = {"orders": "order_time", "behavior": "behavior_time", "tickets": "opened_at"}
    for source, rows in out.items():
        rows.sort(key=lambda row, name=times[source]: (row[name], row["user_id"]))  # type: ignore[misc]
        for row in rows:
            for name in ("order_time", "behavior_time", "opened_at", "closed_at"):
                if name in row:
                    row[name] = row[name].astimezone(UTC).isoformat()  # type: ignore[attr-defined]
    return out, churned
