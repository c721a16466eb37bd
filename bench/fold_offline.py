"""The fold alone, without Kafka, Faust or Redis: the backfill history of ``make bench``
(``BENCH_BACKFILL_CUSTOMERS``, default 23,000 customers over 18 months), ingested as the
worker would, packed into envelopes of 500 records per partition (4 partitions) and folded
with a dict as the table; each value encoded as the changelog write does.

Prints microseconds per event for ingest and for the fold (best of ``REPS`` runs, default 3),
for three variants run interleaved: churn off, churn on without a model (labels only) and
churn on scoring with a model (labels, a score at every evaluation, factors per write),
with the garbage collector as the worker sets it (``streams.gc_tuning.GC_THRESHOLDS``) and, with
``GC=default``, as CPython's defaults. A measurement aid for the fold's pure cost (what py-spy
of a worker shows as ``EnvelopeFold.fold``), not a benchmark of the worker:
``.venv/bin/python bench/fold_offline.py``.
"""

from __future__ import annotations

import gc
import json
import os
import random
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from custpulse.processors import synthetic
from custpulse.processors.churn import FEATURES, Example
from custpulse.processors.churn_fold import ChurnConfig
from custpulse.processors.churn_model import ChurnModel
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.schemas import wire
from custpulse.schemas.envelope import partition_for
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.streams.gc_tuning import GC_THRESHOLDS

CUSTOMERS = int(os.environ.get("BENCH_BACKFILL_CUSTOMERS", "23000"))
REPS = int(os.environ.get("REPS", "3"))
END = datetime(2026, 10, 31, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
ENVELOPE = 500
PARTITIONS = 4


def main() -> None:
    if os.environ.get("GC") != "default":
        gc.set_threshold(*GC_THRESHOLDS)
    rows = synthetic.purchase_history(CUSTOMERS, 18, END, seed=11)
    config = IngestConfig(load_mappings(), ZoneInfo("Asia/Shanghai"),
                          b"offline-fold-bench-secret-0123456789")
    raws = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    started = time.perf_counter()
    parts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for i, raw in enumerate(raws):
        out = ingest(raw, "orders", Position("orders", 0, i), config, NOW)
        assert isinstance(out, Accepted), out
        parts[partition_for(out.event.user_id, PARTITIONS)].append(out.event.to_wire())
    ingest_s = time.perf_counter() - started
    library = load_library()
    variants = {
        "churn off": (EnvelopeFold(library, 5000), None),
        "churn labels, no model": (EnvelopeFold(library, 5000, churn=ChurnConfig()), None),
        "churn labels and scores": (EnvelopeFold(library, 5000, churn=ChurnConfig()),
                                    _model()),
    }
    best: dict[str, float] = {}
    examples: dict[str, int] = {}
    for _ in range(REPS):
        for name, (folder, scorer) in variants.items():
            store: dict[str, Any] = {}
            sent = 0
            started = time.perf_counter()
            for records in parts.values():
                for k in range(0, len(records), ENVELOPE):
                    result = folder.fold(records[k:k + ENVELOPE], store.get, NOW, scorer)
                    for user_id, value in result.writes.items():
                        wire.dumps(value)
                        store[user_id] = value
                    sent += sum(len(m.examples) for m in result.mirrors.values())
            took = time.perf_counter() - started
            best[name] = min(best.get(name, took), took)
            examples[name] = sent
    base = best["churn off"]
    print(f"{len(rows)} orders, {CUSTOMERS} customers, collector "
          f"{gc.get_threshold()}: ingest {ingest_s / len(rows) * 1e6:.1f} us/row")
    for name, took in best.items():
        print(f"  fold, {name}: {took / len(rows) * 1e6:.1f} us/event, "
              f"{took / base:.2f} x churn off, {examples[name]} examples (best of {REPS})")


def _model() -> ChurnModel:
    """A model past its minimum of labels (learned on random examples)."""
    rng = random.Random(3)
    model = ChurnModel(min_labels=50)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    for n in range(500):
        x = {name: rng.uniform(0, 100) for name in FEATURES}
        model.learn(Example(f"U{n}", x, int(x["recency_days"] > 50), at, at))
    model.version = 1
    return model


if __name__ == "__main__":
    main()
