"""A synthetic history of all four sources, ingested and folded as the workers do, turned
into the analysis tables (shared by the export and report tests; built once per session)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd

from custpulse.processors import synthetic
from custpulse.processors.analysis_tables import build_tables
from custpulse.processors.campaigns import load_campaigns
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES

END = datetime(2026, 11, 30, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=2)
def folded_tables(customers: int = 40, months: int = 13,
                  seed: int = 11) -> dict[str, pd.DataFrame]:
    config = IngestConfig(load_mappings(), ZONE, b"folded-history-secret")
    records = synthetic.generate(customers, months, END, seed=seed)
    wires = []
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            got = ingest(json.dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), config, END + timedelta(days=1))
            assert isinstance(got, Accepted)
            wires.append(got.event.to_wire())
    wires.sort(key=lambda w: w["event_time"])
    library = load_library()
    # a backfill run: moves within 400 days of the fold count as fresh (they trigger)
    folder = EnvelopeFold(library, 5000, timedelta(days=400), zone=ZONE)
    table: dict = {}
    for start in range(0, len(wires), 400):
        result = folder.fold(wires[start:start + 400], lambda u: copy.deepcopy(table.get(u)),
                             END + timedelta(days=1))
        table.update(json.loads(json.dumps(result.writes)))
    return build_tables(table, library=library, campaigns=load_campaigns(), zone=ZONE)
