"""Reading import files (CSV or JSON lines) into records ready to send, without I/O.

Four decisions live here:

* **Row numbers**: 1-based, in file order (JSONL: the line number; CSV: the data row after
  the header). They are fixed before any sorting.
* **Reading**: every row is standardized with the mapping and coercion the worker uses
  (:func:`custpulse.schemas.mapping.standardize`, same mapping, same source zone), so the
  importer sees the same user id, event time and canonical content the worker will.
* **Event ids** (:mod:`custpulse.processors.identity`): a row with its own ``event_id`` or a
  business key (``order_id`` + ``status``, ...) needs nothing: the worker derives its id from
  the record. Any other row gets ``event_id = "<source>:c:" + sha256(canonical content,
  occurrence)[:24]``, its occurrence number counted among the identical canonical records of
  its file in file order. So the same file, the same file re-exported with rows appended, or
  re-saved by Excel (``1299.00`` -> ``1299``, another date spelling) gives the old rows their
  old ids, and only new rows count; two identical rows in one file are two events.
* **Order**: historical files are sent sorted by event time (stable; rows whose time cannot be
  read keep their relative order and go last), unless the caller keeps file order; several
  files are merged by event time (:func:`merge_by_event_time`).
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from custpulse.errors import InputError
from custpulse.processors.identity import (
    OWN_ID_FIELD,
    content_fingerprint,
    content_id,
    has_keyed_id,
    is_missing,
    keyed_event_id,
    own_id_text,
)
from custpulse.schemas.events import EVENT_TIME_FIELDS
from custpulse.schemas.mapping import FieldMapping, column_reader, standardize

FileFormat = Literal["csv", "jsonl", "xlsx"]


@dataclass(slots=True)
class ImportRow:
    """One row of an import file: a record, or the reason it could not be read. Not frozen
    (a frozen dataclass costs 2.6 times as much to make, and an import makes two per row);
    nothing changes one after it is made."""

    row_number: int
    record: dict[str, Any] | None = None
    error: str | None = None
    event_time: datetime | None = field(default=None, compare=False)
    raw: str | None = field(default=None, compare=False, repr=False)
    """The row's text, kept only for rows that could not be read (for the dead letter)."""
    event_id: str | None = field(default=None, compare=False)
    """The id the worker will count the row under (set by :func:`prepare`)."""
    key: str | None = field(default=None, compare=False)
    """The Kafka key: the row's standardized user id, or None (set by :func:`prepare`)."""

    @property
    def ok(self) -> bool:
        return self.record is not None


def detect_format(filename: str) -> FileFormat:
    """Format from the file name: ``.csv``, ``.jsonl``/``.ndjson``/``.json`` or ``.xlsx``.

    >>> detect_format("orders.CSV"), detect_format("behavior.jsonl")
    ('csv', 'jsonl')
    """
    lower = filename.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith(".xlsx"):
        return "xlsx"
    if lower.endswith(".xls"):
        raise ValueError(f"{filename!r} is in the old Excel format: save it as .xlsx")
    raise ValueError(f"cannot tell the format of {filename!r}: name it .csv, .jsonl or .xlsx")


def content_hash(data: bytes) -> str:
    """SHA-256 of the file's bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM); GB18030 as the fallback common in Chinese exports."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


def parse_rows(data: bytes, fmt: FileFormat, sheet: str | None = None) -> list[ImportRow]:
    """Parse a whole file. Unreadable rows are kept with an ``error`` code, never dropped.

    Error codes: ``not_json`` (a JSONL line that is not JSON), ``not_object`` (JSON that is not
    an object), ``csv_extra_fields`` (a CSV row with more cells than the header),
    ``xlsx_extra_fields`` (an Excel row with a value in a column without a header),
    ``csv_unreadable`` (a CSV row the csv module cannot read: a cell over
    :data:`CSV_CELL_MAX` characters).

    >>> [r.error or r.record for r in parse_rows(b'{"user_id": "U1"}\\n[1]\\n{oops\\n', "jsonl")]
    [{'user_id': 'U1'}, 'not_object', 'not_json']
    """
    if fmt == "xlsx":
        return list(_parse_xlsx(data, sheet))
    text = decode_text(data)
    return list(_parse_csv(text) if fmt == "csv" else _parse_jsonl(text))


def _parse_xlsx(data: bytes, sheet: str | None) -> Iterable[ImportRow]:
    """Rows of an Excel workbook's sheet (the first, or ``sheet``), read from memory: the first
    non-empty row is the header, empty rows are skipped and not numbered. Cells keep their
    type as JSON does (text, numbers, booleans); an empty cell is missing; a date or time cell
    is ISO 8601 text without an offset (Excel keeps none: the mapping's zone applies, as for a
    CSV time). A value under no header is an ``xlsx_extra_fields`` row."""
    import zipfile  # noqa: PLC0415

    from openpyxl import load_workbook  # noqa: PLC0415 (only imports of .xlsx need it)

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(f"Cannot read the workbook ({type(exc).__name__}): check that the "
                         "file is an Excel .xlsx workbook.") from None
    try:
        if sheet is None:
            pages = book.worksheets
            if not pages:
                return
            page = pages[0]
        elif sheet in book.sheetnames:
            page = book[sheet]
        else:
            raise InputError(f"The workbook has no sheet {sheet!r}; its sheets: "
                             f"{', '.join(book.sheetnames)}.")
        rows = page.iter_rows(values_only=True)
        header: list[str] | None = None
        number = 0
        for cells in rows:
            values = [_xlsx_value(v) for v in cells]
            if all(v is None for v in values):
                continue
            if header is None:
                header = ["" if v is None else str(v).strip() for v in values]
                continue
            number += 1
            record: dict[str, Any] = {}
            extra = False
            for index, value in enumerate(values):
                name = header[index] if index < len(header) else ""
                if not name:
                    extra = extra or value is not None
                    continue
                if name not in record or value is not None:
                    record[name] = value
            for name in header:
                if name and name not in record:
                    record[name] = None
            if extra:
                yield ImportRow(number, error="xlsx_extra_fields",
                                raw=",".join("" if v is None else str(v) for v in values))
            else:
                yield ImportRow(number, record=record)
    finally:
        book.close()


def _xlsx_value(value: Any) -> Any:
    """A cell as JSON would hold it (see :func:`_parse_xlsx`)."""
    if value is None or isinstance(value, bool | int | str):
        return None if isinstance(value, str) and not value.strip() else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _parse_jsonl(text: str) -> Iterable[ImportRow]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            yield ImportRow(number, error="not_json", raw=line)
            continue
        if isinstance(value, dict):
            yield ImportRow(number, record=value)
        else:
            yield ImportRow(number, error="not_object", raw=line)


def _parse_csv(text: str) -> Iterable[ImportRow]:
    """Rows as :class:`csv.DictReader` reads them (the first row is the header; blank lines
    are skipped and not numbered; a short row's missing cells are missing; a repeated header
    name keeps its first place and its last cell), by ``csv.reader`` and ``zip``: a third of
    the cost (tests/unit/test_importing.py compares the two)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, CSV_CELL_MAX))
    try:
        yield from _csv_rows(csv.reader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(limit)


CSV_CELL_MAX = 8 * 1024 * 1024
"""Characters a CSV cell may hold (the csv module's own limit, 131,072, is lifted to this while
a file is read); a row with a larger cell is a ``csv_unreadable`` row, the rest of the file is
read on."""


def _csv_rows(reader: Any) -> Iterable[ImportRow]:
    try:
        header = next(reader, None)
    except csv.Error:
        raise InputError(
            f"Cannot read the CSV header (a cell over {CSV_CELL_MAX:,} characters): check that "
            "the file is CSV with its header on the first line."
        ) from None
    if header is None:
        return
    width = len(header)
    number = 0
    while True:
        try:
            cells = next(reader, None)
        except csv.Error:
            number += 1
            yield ImportRow(number, error="csv_unreadable", raw="")
            continue
        if cells is None:
            break
        if not cells:
            continue
        number += 1
        if len(cells) > width:
            row = dict(zip(header, cells, strict=False))
            extra = [str(v) for v in row.values()] + cells[width:]
            yield ImportRow(number, error="csv_extra_fields", raw=",".join(extra))
            continue
        # CSV has no null: an empty cell is a missing value (as is a cell a short row lacks).
        record = dict(zip(header, cells, strict=False))
        if "" in cells:
            record = {k: (v if v != "" else None) for k, v in record.items()}
        if len(cells) < width:
            for k in header[len(cells):]:
                record[k] = None
        yield ImportRow(number, record=record)


def file_event_id(source: str, file_hash: str, row_number: int) -> str:
    """Contract-4 id of row ``row_number`` of the file whose content hash is ``file_hash``.

    No longer used by imports (it changed with every byte of the file, so a re-export or a
    re-save counted every row again); kept for callers that need some stable synthetic id
    (the bench). A record sending it as its ``event_id`` gets rule 1 of
    :mod:`custpulse.processors.identity`.

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
    mapping: FieldMapping,
    zone: tzinfo,
    keep_order: bool = False,
    *,
    secret: bytes,
    secret_version: int = 1,
    keyed_ids: bool = True,
) -> list[ImportRow]:
    """Read every readable row with ``mapping`` (naive times in ``zone``), give it its event id,
    key and event time, and sort.

    Rows with their own ``event_id`` or a business key keep their record as it is (the worker
    derives the same id from it); other rows get ``event_id`` set to their content id, counted
    per file (see the module docstring). Unreadable rows pass through unchanged. Sorting is by
    event time (aware datetimes, so zones compare correctly; the first readable event-time
    field of the source, as the worker picks it), stable, with rows without a readable time
    last; ``keep_order=True`` keeps file order. Pure.

    ``secret`` (and ``secret_version``) must be the worker's PII secret: ids are hashed over the
    identity view (:func:`custpulse.processors.policy.identity_view`), in which personal values
    are keyed tokens, exactly as the worker hashes them.

    ``keyed_ids=False`` (what ``custpulse import`` uses) leaves ``event_id`` None for rows that
    bring their own id or a business key: the record goes out as it is either way and the
    worker derives that id itself, so only rows that need a content id pay for the identity
    view (~40 us a row). Records, keys, times and order are the same either way.
    """
    source = mapping.source
    seen: dict[str, int] = {}
    needed = {"user_id", OWN_ID_FIELD, *EVENT_TIME_FIELDS[source], *mapping.identity_key,
              *mapping.identity_state}
    known: dict[Any, bool] = {}
    picks: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def wanted(key: Any) -> bool:
        """Whether a raw key maps to a field in ``needed`` (the same keys standardize would
        weigh for those fields, so they come out the same)."""
        hit = known.get(key)
        if hit is None:
            text = key if isinstance(key, str) else repr(key)
            hit = known[key] = mapping.canonical_name(text) in needed
        return hit

    def pick(record: dict[Any, Any]) -> dict[Any, Any]:
        """The items of ``record`` whose keys are wanted, in record order (which keys, once
        per key tuple: the rows of a CSV file share one)."""
        keys = tuple(record)
        chosen = picks.get(keys)
        if chosen is None:
            chosen = tuple(k for k in keys if wanted(k))
            if len(picks) < 4096:
                picks[keys] = chosen
        return {k: record[k] for k in chosen}

    def full(row: ImportRow) -> ImportRow:
        """The row with its content id (or the id it has by itself), through the identity
        view."""
        # here, not at the top: the PII policy (phone number data, detectors) is ~0.1 s of
        # start-up that an import of rows with their own ids never needs
        from custpulse.processors.policy import identity_view, own_id_view  # noqa: PLC0415
        record = dict(row.record or {})
        fields, _ = standardize(record, mapping, zone)
        hashed = identity_view(fields, mapping, secret, secret_version)
        event_id = keyed_event_id(source, own_id_view(record, secret, secret_version),
                                  hashed, mapping)
        if event_id is None:
            fingerprint = content_fingerprint(hashed)
            seen[fingerprint] = seen.get(fingerprint, 0) + 1
            event_id = content_id(source, hashed, seen[fingerprint])
            record[OWN_ID_FIELD] = event_id
        return ImportRow(row.row_number, record=record, event_time=_event_time(source, fields),
                         event_id=event_id, key=_user_key(fields))

    prepared: list[ImportRow] = []
    if keyed_ids:
        prepared = [row if row.record is None else full(row) for row in rows]
    else:
        # the fields that decide key, time and whether the row has an id of its own first,
        # by columns over each run of rows with the same keys (every row of a CSV file); rows
        # with an id of their own go out as they came: their record, not a copy
        for run in _runs(rows):
            if run[0].record is None:
                prepared.extend(run)
                continue
            for row, keyed, event_time, key in _keyed_rows(run, mapping, needed, pick, zone):
                prepared.append(ImportRow(row.row_number, row.record, None, event_time,
                                          None, None, key) if keyed else full(row))
    if keep_order:
        return prepared
    return by_event_time(prepared)


def _runs(rows: Sequence[ImportRow]) -> Iterable[list[ImportRow]]:
    """``rows`` in file order as runs: each unreadable row alone, readable rows in runs of
    consecutive records with the same keys in the same order."""
    run: list[ImportRow] = []
    keys: tuple[Any, ...] | None = None
    for row in rows:
        if row.record is None:
            if run:
                yield run
                run, keys = [], None
            yield [row]
            continue
        row_keys = tuple(row.record)
        if row_keys != keys and run:
            yield run
            run = []
        keys = row_keys
        run.append(row)
    if run:
        yield run


def _keyed_rows(
    run: list[ImportRow], mapping: FieldMapping, needed: set[str],
    pick: Callable[[dict[Any, Any]], dict[Any, Any]], zone: tzinfo,
) -> Iterable[tuple[ImportRow, bool, datetime | None, str | None]]:
    """Per row of a run (readable rows with the same keys): the row, whether it has an id of
    its own (:func:`~custpulse.processors.identity.has_keyed_id`), its event time and its key,
    read by :func:`~custpulse.schemas.mapping.column_reader` when the keys allow (then as
    :func:`~custpulse.schemas.mapping.standardize` reads them), else row by row."""
    source = mapping.source
    records = [row.record or {} for row in run]
    read = column_reader(mapping, tuple(records[0]), needed, zone)
    if read is None:
        for row, record in zip(run, records, strict=True):
            fields = standardize(pick(record), mapping, zone)[0]
            yield (row, has_keyed_id(record, fields, mapping), _event_time(source, fields),
                   _user_key(fields))
        return
    columns = read(records)
    count = len(records)
    times: list[Any] = [None] * count
    for name in reversed(EVENT_TIME_FIELDS[source]):  # the first readable one wins
        column = columns.get(name)
        if column is not None:
            times = [value if isinstance(value, datetime) else earlier
                     for value, earlier in zip(column, times, strict=True)]
    users = columns.get("user_id")
    keys = [None] * count if users is None else [_user_key_of(value) for value in users]
    if OWN_ID_FIELD in records[0] or OWN_ID_FIELD in columns:
        own = columns.get(OWN_ID_FIELD) or [None] * count
        has_own = [own_id_text(record, {OWN_ID_FIELD: value}) is not None
                   for record, value in zip(records, own, strict=True)]
    else:  # neither the raw record nor the mapping has an own id
        has_own = [False] * count
    identity = [columns.get(name) for name in mapping.identity_key]
    if identity and all(column is not None for column in identity):
        # has_keyed_id's business key: every identity field read and not missing
        has_key = [not any(is_missing(value) for value in values)
                   for values in zip(*identity, strict=True)]
    else:
        has_key = [False] * count
    for index, row in enumerate(run):
        yield row, has_own[index] or has_key[index], times[index], keys[index]


def _user_key_of(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _event_time(source: str, fields: dict[str, Any]) -> datetime | None:
    for name in EVENT_TIME_FIELDS[source]:
        value = fields.get(name)
        if isinstance(value, datetime):
            return value
    return None


def _user_key(fields: dict[str, Any]) -> str | None:
    return _user_key_of(fields.get("user_id"))


def merge_by_event_time(
    files: Sequence[Sequence[ImportRow]], keep_order: bool = False
) -> list[tuple[int, ImportRow]]:
    """The rows of several prepared files as one stream, ``(file index, row)`` in send order.

    A k-way merge by event time: earlier times first across all files; equal times keep the
    order of the files as given, then file order; rows without a readable time (and unreadable
    rows) go last, file after file. So a backfill of several sources reaches every customer in
    event-time order. ``keep_order=True`` sends the files one after the other, each in its own
    order.

    >>> from datetime import UTC
    >>> a = [ImportRow(1, {}, event_time=datetime(2024, 1, 2, tzinfo=UTC)), ImportRow(2, {})]
    >>> b = [ImportRow(1, {}, event_time=datetime(2024, 1, 1, tzinfo=UTC)),
    ...      ImportRow(2, {}, event_time=datetime(2024, 1, 2, tzinfo=UTC))]
    >>> [(i, r.row_number) for i, r in merge_by_event_time([a, b])]
    [(1, 1), (0, 1), (1, 2), (0, 2)]
    """
    if keep_order:
        return [(index, row) for index, rows in enumerate(files) for row in rows]
    streams = [
        [(_merge_key(row, index, rank), index, row) for rank, row in enumerate(rows)]
        for index, rows in enumerate(files)
    ]
    for stream in streams:
        stream.sort(key=lambda item: item[0])
    return [(index, row) for _, index, row in heapq.merge(*streams, key=lambda item: item[0])]


def _merge_key(row: ImportRow, index: int, rank: int) -> tuple[int, float, int, int]:
    if row.event_time is None:
        return (1, 0.0, index, rank)
    return (0, row.event_time.timestamp(), index, rank)


def by_event_time(rows: list[ImportRow]) -> list[ImportRow]:
    """``rows`` sorted by event time (its instant: ``timestamp()``, so wall-clock times that
    repeat when clocks go back sort as they happened), stable; rows without a time last, in
    their order."""
    timed = [row for row in rows if row.event_time is not None]
    stamps = [row.event_time.timestamp() for row in timed]  # type: ignore[union-attr]
    order = sorted(range(len(timed)), key=stamps.__getitem__)
    return [timed[index] for index in order] + [row for row in rows if row.event_time is None]


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
