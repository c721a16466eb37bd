"""Data quality per source and field: missing-value fills and outlier flags (pure, synchronous).

The brief's cleaning rules, applied one record at a time:

* missing optional field: if the field's missing rate (this record included) is *under*
  ``missing_rate_limit`` (5%) and a fill is known, the fill is the mean (numeric, rounded to
  2 decimals) or the mode (categorical); at or over the limit, or before a fill is known, it
  is unknown (``'unknown'`` for a categorical field, ``None`` for a numeric one). Every
  decision is recorded as a :class:`Fill` with its value and reason;
* numeric value: flagged (never dropped, never changed) as ``'iqr'`` when outside
  ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` and as ``'three_sigma'`` when ``|x - mean| > 3 std``.

Fills are analysis-only. They are never applied to the record: :attr:`Assessment.record` keeps
the observed values (missing stays missing), the fill travels beside it in the event's quality
flags (``{"fills": [{"field", "method", "value", "reason"}]}``), so a fill never replaces a
value a customer's profile already has, and profile means use observed values only. Fields that
decide what a record means (:data:`MEANING_FIELDS`: an order's ``status``, a ticket's
``issue_type`` / ``is_complaint``, a behaviour's ``behavior_type``) get no fill value at all:
their fill is method ``'none'``, reason ``'decides_meaning'`` (still visible as missing).

Semantics. Statistics are streaming and live in one :class:`QualityTracker`, i.e. per worker
process (per partition set), not global; they depend on the order records arrive in. A record
is scored against what was seen *before* it and learned afterwards, with its original values
(fills are never learned). Rules and fills wait for ``warmup`` usable values of a field.
Quartiles are P² estimates (``river.stats.Quantile``), mean and standard deviation (sample,
ddof=1) come from ``river.stats.Var`` (Welford, holding a ``river.stats.Mean``): O(1) memory
per numeric field. Same sequence of records -> same assessments.

Missing: key absent, ``None``, a blank string or a float NaN. For statistics a numeric field
also counts as missing when its value is not a finite real number (bools, strings, inf):
validation rejects wrong types elsewhere, so such a value is left in the record untouched.

>>> t = QualityTracker({"orders": ("channel",)}, {"orders": ("amount",)}, warmup=3)
>>> for amount in (10, 12, 11):
...     _ = t.assess("orders", {"amount": amount, "channel": "APP"})
>>> a = t.assess("orders", {"amount": 500})
>>> [o.rule for o in a.outliers], "channel" in a.record
(['iqr', 'three_sigma'], False)
>>> a.flags()["fills"]
[{'field': 'channel', 'method': 'unknown', 'value': 'unknown', 'reason': 'missing_rate_over_5pct'}]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from river import stats

MISSING_RATE_LIMIT = 0.05  # the brief's 5% rule
WARMUP = 30  # usable values of a field before outlier rules or fills apply
MODE_CAPACITY = 200  # distinct categorical values counted per field (space-saving bound)
UNKNOWN = "unknown"
MEANING_FIELDS = frozenset({"status", "issue_type", "is_complaint", "behavior_type"})
"""Fields that decide what a record means: never given a fill value (method ``'none'``)."""

OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": tuple("region member_level industry customer_type company_size channel".split()),
    "behavior": ("product_id", "duration", "channel"),
    "orders": ("channel", "status"),
    "tickets": ("issue_type", "satisfaction", "handling_minutes"),
}
NUMERIC_FIELDS: dict[str, tuple[str, ...]] = {
    "behavior": ("duration",),
    "orders": ("amount",),
    "tickets": ("handling_minutes", "satisfaction"),
    "customers": (),
}

Json = float | int | str | None


def is_missing(value: object) -> bool:
    """``None`` (also what an absent key reads as), a blank string or a float NaN."""
    blank = isinstance(value, str) and not value.strip()
    return value is None or blank or (isinstance(value, float) and math.isnan(value))


def as_number(value: object) -> float | None:
    """The value as a finite float, or None (bools, strings, inf, NaN and huge ints are not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        x = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass
class FieldStats:
    """Streaming statistics of one (source, field); only usable (non-missing) values shape
    the distribution. Categorical counts keep at most ``MODE_CAPACITY`` distinct values
    (space-saving: a new value evicts the least counted one and inherits its count + 1), so
    the mode is exact until 200 distinct values and afterwards any value with more than 1/200
    of the observations is still counted (counts may then be over-estimated)."""

    numeric: bool
    seen: int = 0
    missing: int = 0
    var: stats.Var = field(default_factory=stats.Var)  # holds the running Mean as .mean
    q1: stats.Quantile = field(default_factory=lambda: stats.Quantile(0.25))
    q3: stats.Quantile = field(default_factory=lambda: stats.Quantile(0.75))
    counts: dict[str | int, int] = field(default_factory=dict)

    def missing_rate(self) -> float:
        return self.missing / self.seen if self.seen else 0.0

    @property
    def usable(self) -> int:
        return self.seen - self.missing

    def learn(self, value: object) -> None:
        """Count one observation of the field (``None`` when the key is absent)."""
        self.seen += 1
        if self.numeric:
            x = as_number(value)
            if x is None:
                self.missing += 1
                return
            self.var.update(x)
            self.q1.update(x)
            self.q3.update(x)
        elif isinstance(value, str | int) and not is_missing(value):
            self._count(value)  # categorical values are strings (or int codes); others are junk
        else:
            self.missing += 1

    def _count(self, key: str | int) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += 1
        elif len(counts) < MODE_CAPACITY:
            counts[key] = 1
        else:
            victim = min(counts, key=counts.__getitem__)  # first least counted, deterministic
            counts[key] = counts.pop(victim) + 1

    def mean(self) -> float | None:
        return _finite(self.var.mean.get()) if self.numeric and self.usable else None

    def std(self) -> float | None:
        if not (self.numeric and self.usable):
            return None
        v = self.var.get()
        return math.sqrt(v) if math.isfinite(v) and v > 0 else (0.0 if v == 0 else None)

    def quartiles(self) -> tuple[float, float] | None:
        if not (self.numeric and self.usable):
            return None
        q1, q3 = _finite(self.q1.get()), _finite(self.q3.get())
        return None if q1 is None or q3 is None else (q1, q3)

    def mode(self) -> str | int | None:
        """Most counted value; ties go to the value counted first (insertion order)."""
        return max(self.counts, key=self.counts.__getitem__) if self.counts else None

    def bounds(self) -> dict[str, tuple[float, float]]:
        """Rule -> (low, high) of the usable values seen so far; rules with non-finite bounds
        (overflowed statistics) are left out."""
        out: dict[str, tuple[float, float]] = {}
        quart, mean, std = self.quartiles(), self.mean(), self.std()
        if quart is not None:
            iqr = quart[1] - quart[0]
            out["iqr"] = (quart[0] - 1.5 * iqr, quart[1] + 1.5 * iqr)
        if mean is not None and std is not None:
            out["three_sigma"] = (mean - 3 * std, mean + 3 * std)
        return {r: b for r, b in out.items() if math.isfinite(b[0]) and math.isfinite(b[1])}

    def snapshot(self) -> dict[str, Json]:
        quart = self.quartiles()
        return {
            "seen": self.seen,
            "missing": self.missing,
            "missing_rate": self.missing_rate(),
            "mean": self.mean(),
            "std": self.std(),
            "q1": quart[0] if quart else None,
            "q3": quart[1] if quart else None,
            "mode": self.mode(),
        }


@dataclass(frozen=True)
class Outlier:
    field: str
    rule: str  # 'iqr' | 'three_sigma'
    value: float
    low: float  # bounds of the rule that fired
    high: float


@dataclass(frozen=True)
class Fill:
    """What analysis would use for a missing field; never written into the record."""

    field: str
    method: str  # 'mean' | 'mode' | 'unknown' | 'none'
    value: Json  # the fill (mean, mode, 'unknown' or None); None for method 'none'
    reason: str  # 'missing_rate_under_5pct' | 'missing_rate_over_5pct' | 'no_fill_yet'
    #              | 'decides_meaning'


@dataclass(frozen=True)
class Assessment:
    record: dict[Any, object]  # a new dict with the observed values (no fills); input unchanged
    outliers: tuple[Outlier, ...] = ()
    fills: tuple[Fill, ...] = ()

    def flags(self) -> dict[str, list[dict[str, Json]]]:
        """JSON-ready ``{"outliers": [...], "fills": [...]}`` for the canonical record."""
        return {
            "outliers": [asdict(o) for o in self.outliers],
            "fills": [asdict(f) for f in self.fills],
        }


class QualityTracker:
    """Per-source, per-field rates and distributions, updated one record at a time.

    Tracks, per source, the union of its optional and numeric fields; a source configured
    in neither mapping passes through unassessed and untracked."""

    def __init__(
        self,
        optional_fields: Mapping[str, tuple[str, ...]] = OPTIONAL_FIELDS,
        numeric_fields: Mapping[str, tuple[str, ...]] = NUMERIC_FIELDS,
        missing_rate_limit: float = MISSING_RATE_LIMIT,
        warmup: int = WARMUP,
    ) -> None:
        if not 0.0 <= missing_rate_limit <= 1.0 or warmup < 1:
            raise ValueError("need 0 <= missing_rate_limit <= 1 and warmup >= 1")
        self.optional = {s: tuple(f) for s, f in optional_fields.items()}
        self.numeric = {s: tuple(f) for s, f in numeric_fields.items()}
        self.limit, self.warmup = missing_rate_limit, warmup
        pct = f"{missing_rate_limit * 100:g}pct"
        self._under, self._over = f"missing_rate_under_{pct}", f"missing_rate_over_{pct}"
        self._stats: dict[str, dict[str, FieldStats]] = {}

    def _fields(self, source: str) -> dict[str, FieldStats] | None:
        if source in self._stats:
            return self._stats[source]
        numeric = self.numeric.get(source, ())
        names = dict.fromkeys((*numeric, *self.optional.get(source, ())))
        if not names:
            return None
        self._stats[source] = {f: FieldStats(numeric=f in numeric) for f in names}
        return self._stats[source]

    def assess(self, source: str, record: Mapping[Any, object]) -> Assessment:
        """Score the record against the past, decide the fills of its missing optional fields
        (recorded, not applied), then learn from its values. Never raises on a mapping; the
        input is not mutated."""
        out = dict(record)
        fields = self._fields(source)
        if fields is None:
            return Assessment(out)
        outliers: list[Outlier] = []
        for name in self.numeric.get(source, ()):
            st, x = fields[name], as_number(record.get(name))
            if x is None or st.usable < self.warmup:
                continue
            for rule, (low, high) in st.bounds().items():
                if not low <= x <= high:
                    outliers.append(Outlier(name, rule, x, low, high))
        fills: list[Fill] = []
        for name in self.optional.get(source, ()):
            if not is_missing(record.get(name)):
                continue
            st = fields[name]
            unknown: Json = None if st.numeric else UNKNOWN
            known = (st.mean() if st.numeric else st.mode()) if st.usable >= self.warmup else None
            if name in MEANING_FIELDS:
                fill = Fill(name, "none", None, "decides_meaning")
            elif (st.missing + 1) / (st.seen + 1) >= self.limit:
                fill = Fill(name, "unknown", unknown, self._over)
            elif known is None:
                fill = Fill(name, "unknown", unknown, "no_fill_yet")
            else:
                value = round(known, 2) if isinstance(known, float) else known
                fill = Fill(name, "mean" if st.numeric else "mode", value, self._under)
            fills.append(fill)  # beside the record, never in it
        for name, st in fields.items():
            st.learn(record.get(name))
        return Assessment(out, tuple(outliers), tuple(fills))

    def snapshot(self) -> dict[str, dict[str, dict[str, Json]]]:
        """JSON-ready: source -> field -> {seen, missing, missing_rate, mean, std, q1, q3, mode}."""
        return {s: {f: st.snapshot() for f, st in fs.items()} for s, fs in self._stats.items()}
