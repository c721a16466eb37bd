"""Market-basket analysis: item and item-pair counts in bounded memory, and pair rules.

Input is the ``baskets`` table (docs/analysis-tables.md): one row per paid order, ``items`` the
order's product ids. A basket is a set: an item counts at most once per basket, whatever its
quantity. Times play no part in the counts; ``basket_rules`` feeds the baskets in
``(ordered_at, user_id, order)`` order only so that a sketched result does not depend on the
table's row order.

Rules are the two directions of every item pair, ``A -> B`` and ``B -> A``, over ``n`` baskets:

- ``support = count(A and B) / n``
- ``confidence = count(A and B) / count(A)``
- ``lift = confidence / (count(B) / n)``, computed as ``count(A and B) * n / (count(A) *
  count(B))`` (one rounding, so ``A -> B`` and ``B -> A`` get the same float)

These are the metrics of ``mlxtend.frequent_patterns.association_rules`` for rules with one
item on each side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from itertools import combinations
from typing import Any

import pandas as pd
from river import sketch

Pair = tuple[str, str]

DEFAULT_CAP = 200_000
DEFAULT_EPSILON = 1e-4

RULE_COLUMNS = ["antecedent", "consequent", "count", "support", "confidence", "lift"]


class PairCounter:
    """Counts of single items and of unordered item pairs over a stream of baskets.

    Pairs are counted exactly while at most ``cap`` distinct pairs have been seen. When the
    ``cap + 1``-th distinct pair arrives, the exact pair counts are handed to a
    ``river.sketch.HeavyHitters`` (Lossy Counting with ``fading_factor=1``, i.e. no forgetting,
    and ``support=0`` so that every tracked pair is reported), and pair counting continues
    there. HeavyHitters has no way to be seeded with counts, so the exact counts are replayed
    into it: one ``update`` per pair occurrence, largest counts first. That is one pass over
    the ``N`` occurrences counted so far, done once, and the sketch then sees exactly the
    stream it would have seen from the start (Lossy Counting's guarantee holds for any order
    of the stream).

    Error bound once sketched (``exact`` is False), with ``N`` the number of pair occurrences
    added since construction (a basket of ``k`` distinct items adds ``k*(k-1)/2``)::

        0 <= true count - reported count <= epsilon * N      (= error_bound())

    for every pair: a reported count never exceeds the true count, a pair that is not reported
    occurs at most ``epsilon * N`` times, and every pair occurring more than
    ``min_count + epsilon * N`` times is reported by ``pair_counts(min_count)``. Memory of the
    sketch is ``O((1/epsilon) * log(epsilon * N))`` pairs (at most ``1/epsilon`` more between
    prunes; just after the switch it briefly holds the ``cap`` replayed pairs). While exact,
    ``error_bound()`` is 0. Sketched counts may depend on the order of the baskets, within
    the bound; exact counts do not.

    Item counts are always exact: distinct items are bounded by the product catalogue, which
    is far smaller than the number of distinct pairs (up to its square), so they are kept in a
    plain dict.

    >>> pc = PairCounter()
    >>> pc.add(["a", "b", "c"]); pc.add(["a", "b"])
    >>> pc.n_baskets, pc.item_counts()["a"], pc.pair_counts()[("a", "b")]
    (2, 2, 2)
    """

    def __init__(self, cap: int = DEFAULT_CAP, epsilon: float = DEFAULT_EPSILON) -> None:
        """``cap``: most distinct pairs counted exactly (>= 0). ``epsilon``: the sketch's
        error parameter in (0, 1]; the bound is ``epsilon`` times the pair occurrences."""
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValueError(f"cap must be a non-negative int, got {cap!r}.")
        if not (isinstance(epsilon, float | int) and 0 < epsilon <= 1):
            raise ValueError(f"epsilon must be in (0, 1], got {epsilon!r}.")
        self.cap = cap
        self.epsilon = float(epsilon)
        self._n_baskets = 0
        self._n_pairs = 0  # pair occurrences added (N)
        self._items: dict[str, int] = {}
        self._pairs: dict[Pair, int] | None = {}  # None once sketched
        self._sketch: sketch.HeavyHitters | None = None

    @property
    def exact(self) -> bool:
        """True while pair counts are exact (no more than ``cap`` distinct pairs seen)."""
        return self._sketch is None

    @property
    def n_baskets(self) -> int:
        """Baskets added, including empty and single-item ones (the support denominator)."""
        return self._n_baskets

    @property
    def n_pairs(self) -> int:
        """Pair occurrences added since construction (``N`` of the error bound)."""
        return self._n_pairs

    def add(self, items: Iterable[str]) -> None:
        """Count one basket; repeated items in ``items`` count once."""
        basket = sorted(set(items))
        self._n_baskets += 1
        for item in basket:
            self._items[item] = self._items.get(item, 0) + 1
        for pair in combinations(basket, 2):
            self._n_pairs += 1
            pairs = self._pairs
            if pairs is not None:
                if pair in pairs:
                    pairs[pair] += 1
                    continue
                if len(pairs) < self.cap:
                    pairs[pair] = 1
                    continue
                self._to_sketch()
            assert self._sketch is not None
            self._sketch.update(pair)

    def _to_sketch(self) -> None:
        pairs = self._pairs
        assert pairs is not None
        hh = sketch.HeavyHitters(support=0.0, epsilon=self.epsilon, fading_factor=1.0)
        for pair, count in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):
            for _ in range(count):
                hh.update(pair)
        self._sketch = hh
        self._pairs = None

    def error_bound(self) -> float:
        """Largest possible undercount of any pair, in occurrences: 0 while exact, else
        ``epsilon * n_pairs``."""
        return 0.0 if self.exact else self.epsilon * self._n_pairs

    def item_counts(self) -> dict[str, int]:
        """Exact number of baskets containing each item (a copy)."""
        return dict(self._items)

    def pair_counts(self, min_count: int = 1) -> dict[Pair, int]:
        """Baskets containing each pair ``(a, b)``, ``a < b``, for pairs whose reported count
        is at least ``min_count``. Exact while ``exact``; otherwise lower bounds within
        ``error_bound()`` of the truth (see the class docstring)."""
        if self._pairs is not None:
            return {p: c for p, c in self._pairs.items() if c >= min_count}
        assert self._sketch is not None
        out: dict[Pair, int] = {}
        for pair, freq in self._sketch.most_common():
            count = int(round(freq))  # fading_factor=1: frequencies are whole numbers
            if count >= min_count:
                out[pair] = count  # type: ignore[index]
        return out


def _empty_rules() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "antecedent": pd.Series([], dtype=str),
            "consequent": pd.Series([], dtype=str),
            "count": pd.Series([], dtype="int64"),
            "support": pd.Series([], dtype="float64"),
            "confidence": pd.Series([], dtype="float64"),
            "lift": pd.Series([], dtype="float64"),
        }
    )


def rules(
    item_counts: Mapping[str, int],
    pair_counts: Mapping[Pair, int],
    n_baskets: int,
    min_support: float = 0.01,
    min_confidence: float = 0.1,
) -> pd.DataFrame:
    """Pair rules ``A -> B`` and ``B -> A`` of every pair with ``support >= min_support``
    whose confidence is ``>= min_confidence``.

    ``item_counts``: baskets containing each item; ``pair_counts``: baskets containing each
    unordered pair (either orientation as key, each pair once); ``n_baskets``: all baskets.
    Columns: ``antecedent``, ``consequent`` (str), ``count`` (baskets with both, int),
    ``support`` (fraction of baskets), ``confidence``, ``lift`` (see the module docstring).
    Sorted by lift descending, then support descending, then antecedent and consequent.
    Raises ValueError for counts that cannot come from the same baskets.
    """
    if n_baskets < 0:
        raise ValueError(f"n_baskets must be >= 0, got {n_baskets}.")
    if n_baskets == 0:
        return _empty_rules()
    n = n_baskets
    records: list[tuple[str, str, int, float, float, float]] = []
    keys: list[tuple[Fraction, int, str, str]] = []
    for (a, b), count in pair_counts.items():
        if a == b:
            raise ValueError(f"pair ({a!r}, {b!r}) has the same item twice.")
        if count <= 0:
            continue
        support = count / n
        if support < min_support:
            continue
        for x, y in ((a, b), (b, a)):
            cx, cy = item_counts.get(x, 0), item_counts.get(y, 0)
            if count > min(cx, cy) or max(cx, cy) > n:
                raise ValueError(
                    f"pair ({a!r}, {b!r}) counts {count} but its items count {cx} and {cy} "
                    f"in {n} baskets."
                )
            confidence = count / cx
            if confidence < min_confidence:
                continue
            # lift = count * n / (count(A) * count(B)): one rounding, the same both ways.
            lift_exact = Fraction(count * n, cx * cy)
            records.append((x, y, count, support, confidence, float(lift_exact)))
            keys.append((-lift_exact, -count, x, y))
    if not records:
        return _empty_rules()
    # Sorted on the exact ratios, so rules that tie mathematically tie here too.
    records = [r for _, r in sorted(zip(keys, records, strict=True), key=lambda kr: kr[0])]
    out = pd.DataFrame.from_records(records, columns=RULE_COLUMNS)
    return out.astype(
        {"antecedent": str, "consequent": str, "count": "int64", "support": "float64",
         "confidence": "float64", "lift": "float64"}
    )


def _items_of(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str | bytes):
        raise ValueError(f"items must be a list of product ids, got the string {value!r}.")
    return [str(v) for v in value]


def basket_rules(
    baskets: pd.DataFrame,
    min_support: float = 0.01,
    min_confidence: float = 0.1,
    cap: int = DEFAULT_CAP,
    epsilon: float = DEFAULT_EPSILON,
) -> pd.DataFrame:
    """Pair rules (see ``rules``) over the ``baskets`` table.

    Every row is one basket (a missing ``items`` is an empty basket, counted in ``n``).
    Baskets are counted by a ``PairCounter(cap, epsilon)`` in ``(ordered_at, user_id,
    order)`` order; beyond ``cap`` distinct pairs the counts are sketched, each within
    ``epsilon`` times the pair occurrences below the true count.
    """
    counter = count_baskets(baskets, cap, epsilon)
    return rules(
        counter.item_counts(),
        counter.pair_counts(),
        counter.n_baskets,
        min_support=min_support,
        min_confidence=min_confidence,
    )


def count_baskets(baskets: pd.DataFrame, cap: int = DEFAULT_CAP,
                  epsilon: float = DEFAULT_EPSILON) -> PairCounter:
    """A :class:`PairCounter` over the ``baskets`` table, fed in ``(ordered_at, user_id,
    order)`` order (so a sketched result does not depend on the table's row order)."""
    counter = PairCounter(cap=cap, epsilon=epsilon)
    if len(baskets):
        keys = [c for c in ("ordered_at", "user_id", "order") if c in baskets.columns]
        ordered = baskets.sort_values(keys, kind="stable", na_position="last") if keys else baskets
        for value in ordered["items"]:
            counter.add(_items_of(value))
    return counter


def count_tables(baskets: pd.DataFrame, cap: int = DEFAULT_CAP,
                 epsilon: float = DEFAULT_EPSILON) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(items, pairs)``: baskets per product (``item``, ``baskets``, ``support``) and per
    product pair (``item_a`` < ``item_b``, ``baskets``, ``support``, ``exact``,
    ``error_bound``: a sketched count is at most that many baskets below the true one), most
    frequent first."""
    counter = count_baskets(baskets, cap, epsilon)
    n = max(1, counter.n_baskets)
    items = pd.DataFrame(
        [(item, count, count / n) for item, count in counter.item_counts().items()],
        columns=["item", "baskets", "support"])
    items = items.sort_values(["baskets", "item"], ascending=[False, True], ignore_index=True)
    bound = float(counter.error_bound())
    pairs = pd.DataFrame(
        [(a, b, count, count / n, counter.exact, bound)
         for (a, b), count in counter.pair_counts().items()],
        columns=["item_a", "item_b", "baskets", "support", "exact", "error_bound"])
    pairs = pairs.sort_values(["baskets", "item_a", "item_b"], ascending=[False, True, True],
                              ignore_index=True)
    return items, pairs
