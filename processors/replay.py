"""An in-process replay: synthetic records through ingest and the envelope fold, as the
workers would run them, into ``{user_id: table value}``. Pure (no Kafka, Redis or clock: the
fold's processing time is an argument). For tests and benchmarks of what reads the state."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, tzinfo
from typing import Any

from custpulse.processors import synthetic
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES


def folded_values(customers: int, months: int, end: datetime, *, seed: int, zone: tzinfo,
                  freshness: timedelta = timedelta(days=400), envelope: int = 400,
                  secret: bytes = b"replay-secret-0123456789abcdef01") -> dict[str, Any]:
    """The table values after folding ``synthetic.generate(customers, months, end, seed)``
    in event-time order, ``envelope`` records at a time, processed at ``end`` + 1 day.
    ``freshness``: moves within it of that time count as fresh (a backfill that triggers)."""
    config = IngestConfig(load_mappings(), zone, secret)
    records = synthetic.generate(customers, months, end, seed=seed)
    now = end + timedelta(days=1)
    wires = []
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            got = ingest(json.dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), config, now)
            if not isinstance(got, Accepted):
                raise ValueError(f"synthetic {source} record {i} was not accepted: {got}")
            wires.append(got.event.to_wire())
    wires.sort(key=lambda w: w["event_time"])
    folder = EnvelopeFold(load_library(), 5000, freshness, zone=zone)
    table: dict[str, Any] = {}
    for start in range(0, len(wires), envelope):
        result = folder.fold(wires[start:start + envelope],
                             lambda u: copy.deepcopy(table.get(u)), now)
        table.update(json.loads(json.dumps(result.writes)))  # as the changelog holds them
    return table
