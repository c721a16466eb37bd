"""Exports read back equal, in every format (Parquet, xlsx, UTF-8-with-BOM CSV), with Chinese
text intact, from tables built over a folded synthetic history."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from custpulse.processors import synthetic
from custpulse.processors.analysis_tables import build_tables
from custpulse.processors.campaigns import load_campaigns
from custpulse.processors.envelope_fold import EnvelopeFold
from custpulse.processors.ingest import Accepted, IngestConfig, Position, ingest
from custpulse.schemas.mapping import load_mappings
from custpulse.schemas.segments import load_library
from custpulse.settings import SOURCES
from custpulse.state.exports import FORMATS, file_form, read_table, write_tables

END = datetime(2026, 10, 31, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
LIB = load_library()


@pytest.fixture(scope="module")
def tables():
    config = IngestConfig(load_mappings(), ZONE, b"export-test-secret")
    records = synthetic.generate(40, 13, END, seed=11)
    wires = []
    for source in SOURCES:
        for i, record in enumerate(records[source]):
            got = ingest(json.dumps(record, ensure_ascii=False).encode(), source,
                         Position(source, 0, i), config, END + timedelta(days=1))
            assert isinstance(got, Accepted)
            wires.append(got.event.to_wire())
    wires.sort(key=lambda w: w["event_time"])
    folder = EnvelopeFold(LIB, 5000, zone=ZONE)
    table = {}
    for start in range(0, len(wires), 400):
        result = folder.fold(wires[start:start + 400], lambda u: copy.deepcopy(table.get(u)),
                             END + timedelta(days=400))
        table.update(json.loads(json.dumps(result.writes)))
    return build_tables(table, library=LIB, campaigns=load_campaigns(), zone=ZONE)


def test_tables_are_not_empty_and_hold_chinese_text(tables):
    for name in ("profiles", "daily", "tickets", "baskets", "segment_changes", "contacts"):
        assert len(tables[name]) > 0, name
    text = " ".join(str(v) for v in tables["profiles"]["region"].dropna())
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_table_reads_back_equal(tables, fmt, tmp_path):
    paths = write_tables(tables, fmt, tmp_path, ZONE)
    assert [p.name for p in paths] == [f"{n}.{fmt}" for n in tables]
    for name, path in zip(tables, paths, strict=True):
        frame = file_form(tables[name])  # lists as JSON text, in every format
        back = read_table(path, ZONE, frame)
        pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=False,
                                      rtol=1e-12)


def test_csv_has_a_bom_for_excel(tables, tmp_path):
    write_tables({"profiles": tables["profiles"]}, "csv", tmp_path, ZONE)
    assert (tmp_path / "profiles.csv").read_bytes().startswith(b"\xef\xbb\xbf")
