"""The fold alone, without Kafka, Faust or Redis: the backfill history of ``make bench``
(``BENCH_BACKFILL_CUSTOMERS``, default 23,000 customers over 18 months), ingested as the
worker would, packed into envelopes of 500 records per partition (4 partitions) and folded
with a dict as the table; each value encoded as the changelog write does.

Prints microseconds per event for ingest and for the fold (best of ``REPS`` runs, default 3),
with the garbage collector as the worker sets it (``streams.gc_tuning.GC_THRESHOLDS``) and, with
``GC=default``, as CPython's defaults. A measurement aid for the fold's pure cost (what py-spy
of a worker shows as ``EnvelopeFold.fold``), not a benchmark of the worker:
``.venv/bin/python bench/fold_offline.py``.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from custpulse.processors import synthetic
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
    folder = EnvelopeFold(load_library(), 5000)
    best = None
    for _ in range(REPS):
        store: dict[str, Any] = {}
        started = time.perf_counter()
        for records in parts.values():
            for k in range(0, len(records), ENVELOPE):
                result = folder.fold(records[k:k + ENVELOPE], store.get, NOW)
                for user_id, value in result.writes.items():
                    wire.dumps(value)
                    store[user_id] = value
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    assert best is not None
    print(f"{len(rows)} orders, {CUSTOMERS} customers, collector "
          f"{gc.get_threshold()}: ingest {ingest_s / len(rows) * 1e6:.1f} us/row, "
          f"fold {best / len(rows) * 1e6:.1f} us/event (best of {REPS})")


if __name__ == "__main__":
    main()
