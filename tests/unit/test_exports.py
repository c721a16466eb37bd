"""Exports read back equal, in every format (Parquet, xlsx, UTF-8-with-BOM CSV), with Chinese
text intact, from tables built over a folded synthetic history."""

from __future__ import annotations

import pandas as pd
import pytest

from custpulse.state.exports import FORMATS, file_form, read_table, write_tables

from .folded_history import ZONE, folded_tables


@pytest.fixture(scope="module")
def tables():
    return folded_tables()


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
