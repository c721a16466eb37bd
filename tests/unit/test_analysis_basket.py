"""Basket analysis: exact and sketched pair counts, pair rules, agreement with mlxtend."""

from __future__ import annotations

import random
from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlxtend.frequent_patterns import apriori, association_rules

from custpulse.processors.analyses.basket import (
    RULE_COLUMNS,
    PairCounter,
    basket_rules,
    rules,
)

HAND = [
    ["bread", "milk"],
    ["bread", "butter"],
    ["bread", "butter", "milk"],
    ["milk"],
    ["beer"],
]


def baskets_table(baskets: list[list[str]]) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "user_id": [f"U{i % 7}" for i in range(len(baskets))],
            "order": [f"O{i}" for i in range(len(baskets))],
            "ordered_at": [t0 + pd.Timedelta(hours=i) for i in range(len(baskets))],
            "items": [sorted(set(b)) for b in baskets],
        }
    )


def zipf_baskets(seed: int, n: int, n_products: int = 30, sizes=(1, 6)) -> list[list[str]]:
    """Baskets of distinct products drawn with weights 1/rank (zipf-like)."""
    rng = random.Random(seed)
    products = [f"P{k:02d}" for k in range(n_products)]
    weights = [1.0 / (k + 1) for k in range(n_products)]
    out = []
    for _ in range(n):
        size = rng.randint(*sizes)
        basket: set[str] = set()
        while len(basket) < size:
            basket.add(rng.choices(products, weights)[0])
        out.append(sorted(basket))
    return out


def exact_pairs(baskets: list[list[str]]) -> Counter:
    return Counter(p for b in baskets for p in combinations(sorted(set(b)), 2))


# --- PairCounter --------------------------------------------------------------------------


def test_counter_counts_items_and_pairs_exactly():
    pc = PairCounter()
    for b in HAND:
        pc.add(b)
    assert pc.exact and pc.error_bound() == 0.0
    assert pc.n_baskets == 5 and pc.n_pairs == 1 + 1 + 3
    assert pc.item_counts() == {"bread": 3, "milk": 3, "butter": 2, "beer": 1}
    assert pc.pair_counts() == {("bread", "milk"): 2, ("bread", "butter"): 2, ("butter", "milk"): 1}
    assert pc.pair_counts(min_count=2) == {("bread", "milk"): 2, ("bread", "butter"): 2}


def test_counter_repeated_items_count_once_and_empty_baskets_count_in_n():
    pc = PairCounter()
    pc.add(["b", "a", "a"])
    pc.add([])
    assert pc.n_baskets == 2
    assert pc.item_counts() == {"a": 1, "b": 1}
    assert pc.pair_counts() == {("a", "b"): 1}


def test_counter_switches_to_the_sketch_at_the_cap_plus_first_distinct_pair():
    pc = PairCounter(cap=3, epsilon=0.1)
    pc.add(["a", "b", "c"])  # 3 distinct pairs: still exact
    pc.add(["a", "b"])
    assert pc.exact
    pc.add(["c", "d"])  # the 4th distinct pair
    assert not pc.exact
    assert pc.n_pairs == 5
    assert pc.error_bound() == pytest.approx(0.1 * 5)
    assert pc.item_counts() == {"a": 2, "b": 2, "c": 2, "d": 1}  # items stay exact


@pytest.mark.parametrize("bad", [{"cap": -1}, {"cap": 1.5}, {"epsilon": 0}, {"epsilon": 2}])
def test_counter_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        PairCounter(**bad)


def test_sketch_counts_are_within_the_bound_and_find_the_top_pairs():
    baskets = zipf_baskets(seed=7, n=3000, n_products=40, sizes=(2, 6))
    truth = exact_pairs(baskets)
    pc = PairCounter(cap=25, epsilon=0.002)
    for b in baskets:
        pc.add(b)
    assert not pc.exact
    assert pc.n_pairs == sum(truth.values())
    bound = pc.error_bound()
    assert bound == pytest.approx(0.002 * pc.n_pairs)
    reported = pc.pair_counts()
    # Bounded memory: far fewer pairs are tracked than exist.
    assert len(reported) < len(truth) / 2
    for pair, count in reported.items():
        assert 0 <= truth[pair] - count <= bound, pair
    for pair, count in truth.items():
        if count > bound:
            assert pair in reported, pair
        if pair not in reported:
            assert count <= bound, pair
    top = [p for p, _ in sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    assert all(truth[p] > 2 * bound for p in top)  # the check below is not vacuous
    assert set(top) <= set(reported)
    # min_count cuts on the reported (lower-bound) counts.
    tenth = truth[top[-1]]
    kept = pc.pair_counts(min_count=int(tenth - bound))
    assert set(top) <= set(kept)


# --- rules --------------------------------------------------------------------------------


def test_rules_on_hand_built_baskets():
    pc = PairCounter()
    for b in HAND:
        pc.add(b)
    out = rules(pc.item_counts(), pc.pair_counts(), pc.n_baskets, min_support=0, min_confidence=0)
    assert list(out.columns) == RULE_COLUMNS
    got = [tuple(r) for r in out[["antecedent", "consequent", "count"]].itertuples(index=False)]
    assert got == [
        ("bread", "butter", 2),
        ("butter", "bread", 2),
        ("bread", "milk", 2),
        ("milk", "bread", 2),
        ("butter", "milk", 1),
        ("milk", "butter", 1),
    ]
    np.testing.assert_allclose(out["support"], [0.4, 0.4, 0.4, 0.4, 0.2, 0.2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        out["confidence"], [2 / 3, 1, 2 / 3, 2 / 3, 1 / 2, 1 / 3], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        out["lift"], [5 / 3, 5 / 3, 10 / 9, 10 / 9, 5 / 6, 5 / 6], rtol=0, atol=1e-12
    )


def test_rules_thresholds_are_inclusive_and_apply_per_direction():
    items = {"bread": 3, "milk": 3, "butter": 2, "beer": 1}
    pairs = {("bread", "milk"): 2, ("bread", "butter"): 2, ("butter", "milk"): 1}
    out = rules(items, pairs, 5, min_support=0.2, min_confidence=0.5)
    assert ("milk", "butter") not in set(zip(out.antecedent, out.consequent, strict=True))
    assert ("butter", "milk") in set(zip(out.antecedent, out.consequent, strict=True))
    out = rules(items, pairs, 5, min_support=0.3, min_confidence=0)
    assert set(out["count"]) == {2} and len(out) == 4


def test_rules_and_basket_rules_of_nothing_keep_the_columns():
    for out in (
        rules({}, {}, 0),
        rules({"a": 1}, {}, 1),
        basket_rules(baskets_table([])),
        basket_rules(pd.DataFrame(columns=["user_id", "order", "ordered_at", "items"])),
    ):
        assert list(out.columns) == RULE_COLUMNS and out.empty
        assert out["count"].dtype == "int64" and out["lift"].dtype == "float64"


def test_rules_reject_inconsistent_counts():
    with pytest.raises(ValueError):
        rules({"a": 1, "b": 3}, {("a", "b"): 2}, 5, 0, 0)
    with pytest.raises(ValueError):
        rules({"a": 1}, {("a", "a"): 1}, 5, 0, 0)
    with pytest.raises(ValueError):
        rules({}, {}, -1)


def test_basket_rules_reads_the_table():
    table = baskets_table(HAND)
    table["items"] = [np.array(b) for b in table["items"]]  # as read back from parquet
    out = basket_rules(table, min_support=0, min_confidence=0)
    assert len(out) == 6 and out.iloc[0].tolist()[:3] == ["bread", "butter", 2]
    with pytest.raises(ValueError):
        basket_rules(baskets_table([["a"]]).assign(items=["a,b"]))


def mlxtend_pair_rules(baskets, min_support, min_confidence) -> pd.DataFrame:
    products = sorted({i for b in baskets for i in b})
    onehot = pd.DataFrame([[p in set(b) for p in products] for b in baskets], columns=products)
    frequent = apriori(onehot, min_support=min_support, use_colnames=True, max_len=2)
    ar = association_rules(
        frequent, num_itemsets=len(baskets), metric="confidence", min_threshold=min_confidence
    )
    ar = ar[(ar["antecedents"].map(len) == 1) & (ar["consequents"].map(len) == 1)]
    return pd.DataFrame(
        {
            "antecedent": [next(iter(s)) for s in ar["antecedents"]],
            "consequent": [next(iter(s)) for s in ar["consequents"]],
            "support": ar["support"].to_numpy(),
            "confidence": ar["confidence"].to_numpy(),
            "lift": ar["lift"].to_numpy(),
        }
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("min_support", "min_confidence"), [(0.0123, 0.1234), (0.0301, 0.0)])
def test_rules_equal_mlxtend(seed, min_support, min_confidence):
    baskets = zipf_baskets(seed=seed, n=400, n_products=30)
    ours = basket_rules(baskets_table(baskets), min_support, min_confidence)
    ref = mlxtend_pair_rules(baskets, min_support, min_confidence)
    assert len(ours) > 20
    key = ["antecedent", "consequent"]
    ours = ours.sort_values(key).reset_index(drop=True)
    ref = ref.sort_values(key).reset_index(drop=True)
    assert ours[key].values.tolist() == ref[key].values.tolist()
    for col in ("support", "confidence", "lift"):
        np.testing.assert_allclose(ours[col], ref[col], rtol=0, atol=1e-12, err_msg=col)


def test_rules_from_the_sketch_match_exact_when_the_bound_is_zero_below_the_cap():
    baskets = zipf_baskets(seed=5, n=300)
    big = basket_rules(baskets_table(baskets), 0.02, 0.1)
    assert big.equals(basket_rules(baskets_table(baskets), 0.02, 0.1, cap=len(exact_pairs(baskets))))


# --- properties ---------------------------------------------------------------------------

ITEMS = st.sampled_from(list("abcdefg"))
BASKETS = st.lists(st.lists(ITEMS, min_size=0, max_size=5), min_size=0, max_size=25)


@settings(max_examples=60, deadline=None)
@given(BASKETS, st.randoms(use_true_random=False))
def test_rule_metrics_do_not_depend_on_basket_order(baskets, rnd):
    shuffled = list(baskets)
    rnd.shuffle(shuffled)
    a = PairCounter()
    b = PairCounter()
    for basket in baskets:
        a.add(basket)
    for basket in shuffled:
        b.add(list(reversed(basket)))
    ra = rules(a.item_counts(), a.pair_counts(), a.n_baskets, 0.0, 0.0)
    rb = rules(b.item_counts(), b.pair_counts(), b.n_baskets, 0.0, 0.0)
    pd.testing.assert_frame_equal(ra, rb)
    # And the table function does not depend on the table's row order.
    table = baskets_table(baskets)
    perm = table.sample(frac=1, random_state=rnd.randrange(2**32))
    pd.testing.assert_frame_equal(basket_rules(table, 0.0, 0.0), basket_rules(perm, 0.0, 0.0))


def test_count_tables_are_the_exact_counts_of_the_baskets():
    from custpulse.processors.analyses.basket import count_tables

    frame = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4"], "order": ["o1", "o2", "o3", "o4"],
                          "ordered_at": pd.to_datetime(["2026-01-01"] * 4, utc=True),
                          "items": [["A", "B"], ["A", "B", "C"], ["B", "C"], ["A"]]})
    items, pairs = count_tables(frame)
    assert items.set_index("item")["baskets"].to_dict() == {"A": 3, "B": 3, "C": 2}
    got = {(a, b): n for a, b, n in pairs[["item_a", "item_b", "baskets"]].itertuples(
        index=False)}
    assert got == {("A", "B"): 2, ("A", "C"): 1, ("B", "C"): 2}
    assert pairs["exact"].all() and (pairs["error_bound"] == 0).all()
    assert pairs["support"].iloc[0] == 0.5
