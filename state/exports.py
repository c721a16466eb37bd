"""The analysis tables as files: Parquet (BI tools), xlsx and CSV (Excel), and back.

One file per table, ``<table>.<ext>``. Cell conventions, the same in every format so a table
reads back equal:

* lists and dicts are JSON text (as in the Redis profile hashes);
* times: Parquet keeps ``timestamp[ns, UTC]``; CSV writes ISO 8601 with the source zone's
  offset (``2026-11-30T08:00:00+08:00``); xlsx, whose cells have no zone, writes the local
  time in the source zone (``CUSTPULSE_SOURCE_TZ``) as a date-time cell;
* days (``day``) are dates (local calendar days);
* CSV is UTF-8 with a byte-order mark, so Excel opens Chinese text intact; xlsx splits a
  table longer than a sheet (1,048,575 rows) over sheets ``<table>``, ``<table> (2)``, ...
* text from other systems is never a formula in CSV and xlsx: a text cell that starts with
  ``= + - @``, a tab, a carriage return or ``'`` is written with one more ``'`` in front
  (the usual guard against spreadsheet formula injection); reading back removes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path

import pandas as pd

from custpulse.errors import InputError

FORMATS = ("parquet", "xlsx", "csv")
SHEET_ROWS = 1_048_575  # Excel's rows per sheet, less the header
_EXT = {"parquet": "parquet", "xlsx": "xlsx", "csv": "csv"}


def _time_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]


def file_form(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as every format holds it: list and dict cells as JSON text, a column that
    mixes text and numbers (a field other systems fill either way) as text; index dropped."""
    frame = frame.reset_index(drop=True)
    changes = {}
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        kinds = {type(v) for v in frame[column] if not _missing(v)}
        if kinds & {list, dict}:
            changes[column] = frame[column].map(
                lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v)
        elif len(kinds) > 1 and str in kinds:  # text and numbers mixed: all text
            changes[column] = frame[column].map(lambda v: v if _missing(v) else str(v))
    if not changes:
        return frame
    frame = frame.copy()
    for column, values in changes.items():
        frame[column] = values
    return frame


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _guard(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _unguard(value: object) -> object:
    if isinstance(value, str) and value.startswith("'"):
        return value[1:]
    return value


def guarded(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell guarded (see the module notes)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(_guard).astype(object)
    return out


def check_folder(out: Path) -> None:
    """Create ``out`` (and parents) or raise :class:`InputError` in one sentence."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the folder {out}: {exc.strerror or exc}; give "
                         "--out a folder you can write to.") from exc
    if not out.is_dir():
        raise InputError(f"{out} is not a folder: give --out a folder.")


def write_tables(tables: Mapping[str, pd.DataFrame], fmt: str, out: Path,
                 zone: tzinfo) -> list[Path]:
    """Write each table to ``out/<name>.<ext>``; returns the paths in table order."""
    if fmt not in FORMATS:
        raise InputError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    check_folder(out)
    try:
        return _write(tables, fmt, out, zone)
    except OSError as exc:
        raise InputError(f"Cannot write the export into {out}: {exc.strerror or exc}.") from exc


def _write(tables: Mapping[str, pd.DataFrame], fmt: str, out: Path,
           zone: tzinfo) -> list[Path]:
    paths = []
    for name, frame in tables.items():
        path = out / f"{name}.{_EXT[fmt]}"
        frame = file_form(frame)
        if fmt == "parquet":
            frame.to_parquet(path, index=False, engine="pyarrow")
        elif fmt == "csv":
            local = guarded(frame)
            for column in _time_columns(local):
                local[column] = local[column].dt.tz_convert(zone).map(
                    lambda t: "" if pd.isna(t) else t.isoformat())
            if "day" in local:
                local["day"] = local["day"].dt.strftime("%Y-%m-%d")
            local.to_csv(path, index=False, encoding="utf-8-sig")
        else:
            local = guarded(frame)
            for column in _time_columns(local):
                local[column] = local[column].dt.tz_convert(zone).dt.tz_localize(None)
            with pd.ExcelWriter(path, engine="openpyxl") as writer:
                chunks = max(1, -(-len(local) // SHEET_ROWS))
                for k in range(chunks):
                    sheet = name[:31] if k == 0 else f"{name[:24]} ({k + 1})"
                    local.iloc[k * SHEET_ROWS:(k + 1) * SHEET_ROWS].to_excel(
                        writer, sheet_name=sheet, index=False)
        paths.append(path)
    return paths


def read_table(path: Path, zone: tzinfo, like: pd.DataFrame) -> pd.DataFrame:
    """A table written by :func:`write_tables`, read back with the column types of ``like``
    (the table as it was written): what a BI tool or Excel user sees, parsed again."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path, engine="pyarrow")
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False,
                            na_values=[""], dtype=str)
    else:
        sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl", keep_default_na=False,
                               na_values=[""])
        frame = pd.concat(list(sheets.values()), ignore_index=True)
    frame = frame.reindex(columns=like.columns)
    for column in like.columns:
        want = like[column].dtype
        got = frame[column]
        if isinstance(want, pd.DatetimeTZDtype):
            if path.suffix == ".xlsx":
                got = pd.to_datetime(got).dt.tz_localize(zone).dt.tz_convert("UTC")
            else:
                got = pd.to_datetime(got, utc=True, format="ISO8601")
            frame[column] = got.astype(want)
        elif column == "day" or pd.api.types.is_datetime64_dtype(want):
            frame[column] = pd.to_datetime(got).astype(want)
        elif pd.api.types.is_bool_dtype(want):
            frame[column] = got.map(_bool).astype(want)
        elif pd.api.types.is_integer_dtype(want):
            frame[column] = pd.to_numeric(got).astype(want)
        elif pd.api.types.is_float_dtype(want):
            frame[column] = pd.to_numeric(got).astype(want)
        else:  # text (or mixed text and None)
            if path.suffix != ".parquet":
                got = got.map(_unguard)
            written = like[column]
            got = got.map(lambda v, w=written: None if _missing(v) else _as_text(v, w))
            frame[column] = got.astype(want) if want != object else got  # noqa: E721
    return frame


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _as_text(value: object, like: pd.Series) -> object:
    """A text cell: CSV and Excel may turn ``"12"`` into 12; give back what was written when
    the written column held text."""
    sample = next((v for v in like if not _missing(v)), None)
    if isinstance(sample, str) and not isinstance(value, str):
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    if isinstance(sample, bool) and isinstance(value, str):
        return _bool(value)
    if isinstance(sample, int | float) and isinstance(value, str):
        return float(value) if "." in value or "e" in value.lower() else int(value)
    return value
