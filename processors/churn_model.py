"""The online churn model: River's ``StandardScaler | LogisticRegression``, learned one labelled
example at a time, with its quality measured by progressive validation. No I/O, no clock.

* **Progressive validation**: each example is scored by the model as it was *before* learning
  that example, then learned; ROC AUC, log loss and calibration by decile are over those
  scores (the model never grades itself on what it has seen).
* **No score without knowledge**: :meth:`ChurnModel.score` is None until the model has learned
  ``min_labels`` examples (not 0.5 presented as a probability).
* **Explanations**: a score's contributions are, per feature, the weight times the scaled
  value (the terms of the logit before the intercept); :meth:`ChurnModel.explain` lists the
  largest by absolute size.
* **Snapshots**: :meth:`ChurnModel.to_snapshot` is JSON (no pickle: a snapshot read back from a
  topic is data, never code) and holds everything learning depends on, so a model restored by
  :meth:`ChurnModel.from_snapshot` scores and goes on learning exactly as the original would
  (tests/unit/test_churn.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from river import linear_model, optim, preprocessing
from river.utils import VectorDict

from custpulse.processors.churn import FEATURE_LIMIT, FEATURES, Example

MIN_LABELS = 200
"""Labelled examples learned before the model gives scores."""
LEARNING_RATE = 0.05
"""SGD step of the logistic regression (River's default is 0.01: slower on scaled features)."""
AUC_BINS = 1000
"""Progressive scores are counted per class in this many equal bins of [0, 1]: ROC AUC is read
from the two histograms, scores in one bin counting as ties. That is exact when no two scores of
different classes share a bin; when many do (scores bunched near 0 at a low base rate) the
histogram AUC moves toward 0.5 for them (bench/churn.py prints it beside the exact one)."""


class ChurnModel:
    """One churn model and its progressive-validation record. ``version`` counts snapshots
    taken to publish (it only goes up)."""

    def __init__(self, min_labels: int = MIN_LABELS, learning_rate: float = LEARNING_RATE
                 ) -> None:
        self.min_labels = min_labels
        self.learning_rate = learning_rate
        self.scaler = preprocessing.StandardScaler()
        self.regression = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate))
        self.labels = 0
        self.positives = 0
        self.version = 0
        self.histogram = [[0] * AUC_BINS, [0] * AUC_BINS]
        """Progressive scores per class (0 came back, 1 churned) and bin."""
        self.log_loss_sum = 0.0
        self.deciles: list[list[float]] = [[0, 0.0, 0.0] for _ in range(10)]
        """Per decile of the progressive score: ``[examples, sum of scores, positives]``."""

    def _probability(self, x: dict[str, float]) -> float:
        scaled = self.scaler.transform_one({k: v for k, v in x.items() if k in _KNOWN})
        return float(self.regression.predict_proba_one(scaled)[True])

    def score(self, x: dict[str, float]) -> float | None:
        """P(churn within the horizon) for features ``x`` (names not in :data:`FEATURES` are
        ignored); None until ``min_labels`` learned, or when ``x`` gives no probability."""
        if self.labels < self.min_labels:
            return None
        p = self._probability(x)
        return p if 0.0 <= p <= 1.0 else None

    def learn(self, example: Example) -> float:
        """Score ``example`` as the model stands (progressive validation), record the score,
        then learn the example. Returns that score. ValueError (and nothing changed) for
        features that would poison the model: names not in :data:`FEATURES`, values not
        finite or beyond :data:`~custpulse.processors.churn.FEATURE_LIMIT`."""
        x, y = example.features, bool(example.label)
        _check(x)
        p = self._probability(x)
        if not 0.0 <= p <= 1.0:  # NaN included: nothing is recorded or learned
            raise ValueError("the model gave no probability for these features")
        self.histogram[int(y)][min(AUC_BINS - 1, int(p * AUC_BINS))] += 1
        clipped = min(max(p, 1e-15), 1 - 1e-15)
        self.log_loss_sum -= math.log(clipped if y else 1.0 - clipped)
        decile = self.deciles[min(9, int(p * 10))]
        decile[0] += 1
        decile[1] += p
        decile[2] += 1 if y else 0
        self.scaler.learn_one(x)
        self.regression.learn_one(self.scaler.transform_one(x), y)
        self.labels += 1
        self.positives += 1 if y else 0
        return p

    def roc_auc(self) -> float | None:
        """Progressive ROC AUC (see :data:`AUC_BINS`); None until both labels were seen."""
        return roc_auc_of(self.histogram)

    def explain(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The ``top`` features with the largest contributions to the logit (weight x scaled
        value), largest absolute first, ties by name."""
        scaled = self.scaler.transform_one({k: v for k, v in x.items() if k in _KNOWN})
        weights = self.regression._weights  # noqa: SLF001 (River keeps them there)
        terms = [(name, float(weights.get(name, 0.0)) * float(scaled.get(name, 0.0)))
                 for name in FEATURES if name in x]
        terms.sort(key=lambda item: (-abs(item[1]), item[0]))
        return [(name, round(value, 6)) for name, value in terms[:top]]

    def weights(self) -> dict[str, float]:
        weights = self.regression._weights  # noqa: SLF001
        return {name: float(weights.get(name, 0.0)) for name in FEATURES}

    def status(self) -> dict[str, Any]:
        """What ``custpulse model status`` prints: version, labels, positives share, AUC,
        log loss, calibration by decile and the weights."""
        return {
            "model_version": self.version,
            "labels_seen": self.labels,
            "positives_share": self.positives / self.labels if self.labels else None,
            "scoring": self.labels >= self.min_labels,
            "min_labels": self.min_labels,
            "roc_auc": self.roc_auc(),
            "log_loss": self.log_loss_sum / self.labels if self.labels else None,
            "calibration": [
                {"decile": i, "examples": int(n), "mean_score": s / n if n else None,
                 "positive_share": pos / n if n else None}
                for i, (n, s, pos) in enumerate(self.deciles)],
            "intercept": float(self.regression.intercept),
            "weights": self.weights(),
        }

    def to_snapshot(self) -> dict[str, Any]:
        """The model as JSON-ready data (see the module docstring)."""
        return {
            "kind": "scaled-logistic-regression", "format": 1,
            "version": self.version, "min_labels": self.min_labels,
            "learning_rate": self.learning_rate,
            "labels": self.labels, "positives": self.positives,
            "scaler": {"counts": dict(self.scaler.counts), "means": dict(self.scaler.means),
                       "vars": dict(self.scaler.vars)},
            "weights": dict(self.regression._weights),  # noqa: SLF001
            "intercept": self.regression.intercept,
            "iterations": self.regression.optimizer.n_iterations,
            "histogram": self.histogram, "log_loss_sum": self.log_loss_sum,
            "deciles": self.deciles,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> ChurnModel:
        if data.get("kind") != "scaled-logistic-regression" or data.get("format") != 1:
            raise ValueError("not a churn model snapshot of format 1")
        model = cls(int(data["min_labels"]), float(data["learning_rate"]))
        model.version = int(data["version"])
        model.labels, model.positives = int(data["labels"]), int(data["positives"])
        scaler = data["scaler"]
        model.scaler.counts = Counter({k: int(v) for k, v in scaler["counts"].items()})
        model.scaler.means = defaultdict(float, {k: float(v) for k, v in scaler["means"].items()})
        model.scaler.vars = defaultdict(float, {k: float(v) for k, v in scaler["vars"].items()})
        model.regression._weights = VectorDict(  # noqa: SLF001
            {k: float(v) for k, v in data["weights"].items()})
        model.regression.intercept = float(data["intercept"])
        model.regression.optimizer.n_iterations = int(data["iterations"])
        model.histogram = [[int(n) for n in row] for row in data["histogram"]]
        model.log_loss_sum = float(data["log_loss_sum"])
        model.deciles = [[float(a), float(b), float(c)] for a, b, c in data["deciles"]]
        return model


_KNOWN = frozenset(FEATURES)


def _check(x: dict[str, float]) -> None:
    if not set(x) <= _KNOWN:
        raise ValueError("unknown feature names")
    for value in x.values():
        if not isinstance(value, float | int) or not math.isfinite(value) or (
                abs(value) > FEATURE_LIMIT):
            raise ValueError("a feature is not finite or out of range")


def roc_auc_of(histogram: list[list[int]]) -> float | None:
    """ROC AUC from per-class histograms of scores (``histogram[0]``: negatives, ``[1]``:
    positives, by ascending score bin): P(positive scores higher) + 1/2 P(same bin). None
    without both classes."""
    negatives, positives = histogram
    n_neg, n_pos = sum(negatives), sum(positives)
    if not n_neg or not n_pos:
        return None
    below = 0  # negatives in lower bins
    wins = 0.0
    for neg, pos in zip(negatives, positives, strict=True):
        wins += pos * (below + neg / 2)
        below += neg
    return wins / (n_neg * n_pos)
