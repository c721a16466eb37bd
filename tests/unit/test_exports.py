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


HOSTILE = ["=HYPERLINK(\"http://example.invalid\",\"x\")", "+1+2", "-app", "@SUM(A1:A2)",
           "'quoted", "\tTab", "普通文本", None, "a=b"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_text_from_other_systems_is_never_a_formula_and_reads_back(fmt, tmp_path):
    import csv

    from openpyxl import load_workbook

    frame = pd.DataFrame({"channel": HOSTILE, "n": range(len(HOSTILE))})
    (path,) = write_tables({"t": frame}, fmt, tmp_path, ZONE)
    back = read_table(path, ZONE, frame)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    if fmt == "xlsx":
        sheet = load_workbook(path).active
        cells = [row[0] for row in sheet.iter_rows(min_row=2)]
        assert all(c.data_type != "f" for c in cells)  # no formula cell
        assert [c.value for c in cells][:1] == ["'" + HOSTILE[0]]
    else:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))[1:]
        assert all(not r[0].startswith(("=", "+", "-", "@", "\t")) for r in rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mixed_text_and_numbers_and_na_like_text_read_back(fmt, tmp_path):
    frame = pd.DataFrame({"region": ["NA", "None", "null", "华东", None],
                          "industry": ["retail", 12, 3.5, None, "00123"]})
    (path,) = write_tables({"t": frame}, fmt, tmp_path, ZONE)
    back = read_table(path, ZONE, file_form(frame))
    pd.testing.assert_frame_equal(back, file_form(frame), check_dtype=False)
    assert list(back["region"])[:3] == ["NA", "None", "null"]
