"""Reading import files (CSV or JSON lines) into records ready to send, without I/O.

Three decisions live here:

* **Row numbers**: 1-based, in file order (JSONL: the line number; CSV: the data row after
  the header). They are fixed before any sorting.
* **Event ids**: a row that brings no ``event_id`` gets
  ``"f-" + sha256(source, file content hash, row number)[:20]``. Importing the same bytes again
  gives the same ids (the worker counts them once); two identical rows at different row numbers
  get different ids (they are two events).
* **Order**: historical files are sent sorted by event time (stable; rows whose time cannot be
  read keep their relative order and go last), unless the caller keeps file order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Literal

from custpulse.schemas.events import event_time_of

FileFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One row of an import file: a record, or the reason it could not be read."""

    row_number: int
    record: dict[str, Any] | None = None
    error: str | None = None
    event_time: datetime | None = field(default=None, compare=False)
    raw: str | None = field(default=None, compare=False, repr=False)
    """The row's text, kept only for rows that could not be read (for the dead letter)."""

    @property
    def ok(self) -> bool:
        return self.record is not None


def detect_format(filename: str) -> FileFormat:
    """Format from the file name: ``.csv`` or ``.jsonl``/``.ndjson``/``.json``.

    >>> detect_format("orders.CSV"), detect_format("behavior.jsonl")
    ('csv', 'jsonl')
    """
    lower = filename.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {filename!r}: name it .csv or .jsonl")


def content_hash(data: bytes) -> str:
    """SHA-256 of the file's bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM); GB18030 as the fallback common in Chinese exports."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def parse_rows(data: bytes, fmt: FileFormat) -> list[ImportRow]:
    """Parse a whole file. Unreadable rows are kept with an ``error`` code, never dropped.

    Error codes: ``not_json`` (a JSONL line that is not JSON), ``not_object`` (JSON that is not
    an object), ``csv_extra_fields`` (a CSV row with more cells than the header).

    >>> [r.error or r.record for r in parse_rows(b'{"user_id": "U1"}\\n[1]\\n{oops\\n', "jsonl")]
    [{'user_id': 'U1'}, 'not_object', 'not_json']
    """
    text = decode_text(data)
    return list(_parse_csv(text) if fmt == "csv" else _parse_jsonl(text))


def _parse_jsonl(text: str) -> Iterable[ImportRow]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield ImportRow(number, error="not_json", raw=line)
            continue
        if isinstance(value, dict):
            yield ImportRow(number, record=value)
        else:
            yield ImportRow(number, error="not_object", raw=line)


def _parse_csv(text: str) -> Iterable[ImportRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for number, row in enumerate(reader, start=1):
        if None in row:
            cells = [str(v) for k, v in row.items() if k is not None] + list(row[None])
            yield ImportRow(number, error="csv_extra_fields", raw=",".join(cells))
            continue
        # CSV has no null: an empty cell is a missing value.
        yield ImportRow(number, record={k: (v if v != "" else None) for k, v in row.items()})


def file_event_id(source: str, file_hash: str, row_number: int) -> str:
    """Deterministic id of row ``row_number`` of the file whose content hash is ``file_hash``.

    >>> file_event_id("orders", "ab" * 32, 1) == file_event_id("orders", "ab" * 32, 1)
    True
    >>> file_event_id("orders", "ab" * 32, 1) == file_event_id("orders", "ab" * 32, 2)
    False
    """
    digest = hashlib.sha256(f"{source}\x00{file_hash}\x00{row_number}".encode()).hexdigest()
    return "f-" + digest[:20]


def canonical_view(
    record: dict[str, Any], canonical_name: Callable[[str], str | None] | None
) -> dict[str, Any]:
    """The record with keys renamed to canonical names where ``canonical_name`` knows them
    (first non-empty value wins), for finding the user id and event time."""
    if canonical_name is None:
        return record
    view: dict[str, Any] = {}
    for key, value in record.items():
        name = canonical_name(str(key)) or str(key)
        if view.get(name) in (None, ""):
            view[name] = value
    return view


def prepare(
    rows: list[ImportRow],
    source: str,
    file_hash: str,
    zone: tzinfo,
    keep_order: bool = False,
    canonical_name: Callable[[str], str | None] | None = None,
) -> list[ImportRow]:
    """Give every readable row an event id (unless it has one) and its event time; sort.

    Rows keep their own non-empty ``event_id``. Unreadable rows pass through unchanged.
    Sorting is by event time (aware datetimes, so zones compare correctly), stable, with
    rows without a readable time last; ``keep_order=True`` keeps file order.
    ``canonical_name`` maps source field names (``购买时间``) to canonical ones.
    """
    prepared: list[ImportRow] = []
    for row in rows:
        if row.record is None:
            prepared.append(row)
            continue
        record = dict(row.record)
        if record.get("event_id") in (None, ""):
            record["event_id"] = file_event_id(source, file_hash, row.row_number)
        moment = event_time_of(source, canonical_view(record, canonical_name), zone)
        prepared.append(ImportRow(row.row_number, record=record, event_time=moment))
    if keep_order:
        return prepared
    return sorted(prepared, key=_sort_key)


def _sort_key(row: ImportRow) -> tuple[int, float, int]:
    if row.event_time is None:
        return (1, 0.0, row.row_number)
    return (0, row.event_time.timestamp(), row.row_number)


def record_key(record: dict[str, Any]) -> str | None:
    """The Kafka key for a record: its user id as text, or None when it has none."""
    value = record.get("user_id")
    if value is None or isinstance(value, dict | list) or str(value).strip() == "":
        return None
    return str(value).strip()


def to_jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    """Records as JSON lines (UTF-8, Chinese kept readable), the inverse of ``parse_rows``.

    >>> to_jsonl([{"user_id": "U1", "region": "北京市"}])
    b'{"user_id": "U1", "region": "\\xe5\\x8c\\x97\\xe4\\xba\\xac\\xe5\\xb8\\x82"}\\n'
    """
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def to_csv(records: list[dict[str, Any]]) -> bytes:
    """Records as CSV with a header (union of keys, first-seen order). ``None`` -> empty cell,
    booleans -> ``true``/``false``, lists and dicts -> JSON text."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_cell(v) for k, v in record.items()})
    return out.getvalue().encode()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
