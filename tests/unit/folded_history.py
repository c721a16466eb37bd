"""A synthetic history of all four sources, ingested and folded as the workers do, turned
into the analysis tables (shared by the export and report tests; built once per session)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd

from custpulse.processors.analysis_tables import build_tables
from custpulse.processors.campaigns import load_campaigns
from custpulse.processors.replay import folded_values
from custpulse.schemas.segments import load_library

END = datetime(2026, 11, 30, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=2)
def folded_tables(customers: int = 40, months: int = 13,
                  seed: int = 11) -> dict[str, pd.DataFrame]:
    values = folded_values(customers, months, END, seed=seed, zone=ZONE)
    return build_tables(values, library=load_library(), campaigns=load_campaigns(), zone=ZONE)
