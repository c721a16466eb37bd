"""The churn model on a history with a known churn mechanism: online against batch.

A generated history (:func:`custpulse.processors.synthetic.churn_history`: churn hazard rising
with recency and open complaints, falling with frequency) is replayed in event time through the
profile fold; every customer is scored at each of its events (a snapshot, see
:mod:`custpulse.processors.churn`), labels come from the stream (returns before the horizon are
negatives, the horizon reached is a positive, due deadlines first), and each label is learned by
the online model after it scored the example (progressive validation).

Printed, on the examples labelled in the last 30 % of the labelling order (time split):

* the online model's progressive ROC AUC (each example scored before it was learned);
* a batch scikit-learn logistic regression (standard scaling) trained on the first 70 % and
  scored on the same last 30 %;
* River's Hoeffding adaptive tree, progressive, on the same examples (the tree model compared);
* the cost per event of scoring (features and score), of the top factors of a score, and of
  learning per example.

``.venv/bin/python bench/churn.py`` (``CHURN_CUSTOMERS``, default 3000, ``CHURN_MONTHS``, 18).
A measurement, not a test: the goal is online within 0.02 AUC of batch and scoring under 50 us.
"""

from __future__ import annotations

import heapq
import os
import time
from datetime import UTC, datetime
from typing import Any

from river import tree
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from custpulse.processors import churn, synthetic
from custpulse.processors.churn_model import ChurnModel
from custpulse.processors.profile import fold_profile, view_and_changes
from custpulse.schemas.events import CanonicalEvent

CUSTOMERS = int(os.environ.get("CHURN_CUSTOMERS", "3000"))
MONTHS = int(os.environ.get("CHURN_MONTHS", "18"))
END = datetime(2026, 10, 31, tzinfo=UTC)
TIME_FIELD = {"orders": "order_time", "behavior": "behavior_time", "tickets": "opened_at"}


def events() -> tuple[list[CanonicalEvent], int]:
    rows, churned = synthetic.churn_history(CUSTOMERS, MONTHS, END, seed=17)
    out = []
    for source, items in rows.items():
        for n, row in enumerate(items):
            moment = datetime.fromisoformat(str(row[TIME_FIELD[source]]))
            out.append(CanonicalEvent(f"{source}:{n}", source, str(row["user_id"]), moment,
                                      dict(row)))
    out.sort(key=lambda e: (e.event_time, e.user_id, e.event_id))
    return out, sum(1 for t in churned.values() if t is not None)


def main() -> None:
    history, churners = events()
    model = ChurnModel()
    profiles: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    deadlines: list[tuple[datetime, str]] = []
    examples: list[tuple[churn.Example, float]] = []  # with the progressive score
    score_s = learn_s = explain_s = 0.0
    scored = explained = 0

    def learn(example: churn.Example) -> None:
        nonlocal learn_s
        started = time.perf_counter()
        p = model.learn(example)
        learn_s += time.perf_counter() - started
        examples.append((example, p))

    for event in history:
        at = event.event_time
        while deadlines and deadlines[0][0] <= at:  # due horizons first
            due, user = heapq.heappop(deadlines)
            left, example = churn.label_step(pending.get(user), user, until=due)
            if example is not None:
                pending[user] = left
                learn(example)
        user = event.user_id
        active = at if event.source in ("orders", "behavior") else None
        before = churn.label_deadline(pending.get(user))
        left, example = churn.label_step(pending.get(user), user, until=at, active_at=active)
        pending[user] = left
        if example is not None:
            learn(example)
        profiles[user] = fold_profile(profiles.get(user), event, at)
        view = view_and_changes(profiles[user], at, frozenset())[0]
        started = time.perf_counter()
        x = churn.features(view)
        model.score(x)
        score_s += time.perf_counter() - started
        if model.labels >= model.min_labels and scored % 10 == 0:  # explanations: sampled
            started = time.perf_counter()
            model.explain(x)
            explain_s += time.perf_counter() - started
            explained += 1
        scored += 1
        pending[user] = churn.snapshot(left, view, at)
        due = churn.label_deadline(pending[user])  # new, or moved by activity soon after
        if due is not None and due != before:
            heapq.heappush(deadlines, (due, user))  # stale entries label nothing
    end = history[-1].event_time  # later horizons are censored: the history ends first
    while deadlines and deadlines[0][0] <= end:
        due, user = heapq.heappop(deadlines)
        left, example = churn.label_step(pending.get(user), user, until=due)
        if example is not None:
            pending[user] = left
            learn(example)

    examples.sort(key=lambda item: item[0].labelled_at)
    cut = int(len(examples) * 0.7)
    train, test = examples[:cut], examples[cut:]
    y_test = [e.label for e, _ in test]
    online_auc = roc_auc_score(y_test, [p for _, p in test])

    def matrix(part: list[tuple[churn.Example, float]]) -> list[list[float]]:
        return [[e.features[name] for name in churn.FEATURES] for e, _ in part]

    batch = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    batch.fit(matrix(train), [e.label for e, _ in train])
    batch_auc = roc_auc_score(y_test, batch.predict_proba(matrix(test))[:, 1])

    arf = tree.HoeffdingAdaptiveTreeClassifier(seed=1)
    arf_scores = []
    started = time.perf_counter()
    for e, _ in examples:
        arf_scores.append(arf.predict_proba_one(e.features).get(True, 0.0))
        arf.learn_one(e.features, bool(e.label))
    arf_s = time.perf_counter() - started
    arf_auc = roc_auc_score(y_test, arf_scores[cut:])

    positives = sum(e.label for e, _ in examples)
    status = model.status()
    rows = {
        "customers": CUSTOMERS, "months": MONTHS, "events": len(history),
        "churned_customers": churners, "examples": len(examples), "positives": positives,
        "test_examples": len(test),
        "online_logistic_auc_progressive_test": round(online_auc, 4),
        "batch_sklearn_logistic_auc_test": round(batch_auc, 4),
        "online_minus_batch_auc": round(online_auc - batch_auc, 4),
        "online_hoeffding_tree_auc_progressive_test": round(arf_auc, 4),
        "online_logistic_auc_all_histogram": round(status["roc_auc"], 4),
        "online_log_loss_all": round(status["log_loss"], 4),
        "scoring_us_per_event": round(score_s / scored * 1e6, 1),
        "explaining_us_per_score": round(explain_s / max(1, explained) * 1e6, 1),
        "learning_us_per_example": round(learn_s / len(examples) * 1e6, 1),
        "tree_learn_predict_us_per_example": round(arf_s / len(examples) * 1e6, 1),
        "top_weights": sorted(status["weights"].items(), key=lambda kv: -abs(kv[1]))[:5],
    }
    width = max(map(len, rows))
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
