"""``custpulse import``: send CSV or JSON-lines files to their sources' topics (aiokafka, in
batches it fills per partition: linger 5 ms, batches up to 1 MB, ``acks=all``).

Decisions (ids, order, parsing, the merge of several files) are in
:mod:`custpulse.processors.importing`; this module does the I/O: read bytes, produce keyed by
user_id, show progress, count outcomes. Several files (``SOURCE=FILE ...`` or a folder) are
sent as one stream merged by event time across sources, so a backfill reaches every customer
in event-time order.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from tqdm import tqdm

from custpulse.errors import InputError
from custpulse.processors.importing import (
    FileFormat,
    ImportRow,
    detect_format,
    merge_by_event_time,
    parse_rows,
    prepare,
)
from custpulse.schemas import wire
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.mapping import FieldMapping, load_mapping, load_mappings
from custpulse.settings import SOURCES, Settings
from custpulse.streams.gc_tuning import collector_tuned
from custpulse.streams.partitioning import partition_of

_MESSAGES = {
    "not_json": "line is not valid JSON",
    "not_object": "line is JSON but not an object",
    "csv_extra_fields": "row has more cells than the header",
    "xlsx_extra_fields": "row has a value in a column without a header",
    "csv_unreadable": "row cannot be read as CSV (a cell over 8 MiB)",
}


@dataclass
class ImportSummary:
    source: str
    name: str
    read: int = 0
    sent: int = 0
    deadlettered: int = 0
    failed: int = 0

    def line(self) -> str:
        """rows read = sent + dead-lettered + failed (failed: the broker did not take it)."""
        return (
            f"imported {self.source} from {self.name}: rows read {self.read}, "
            f"sent {self.sent}, dead-lettered {self.deadlettered}, failed {self.failed}"
        )


LINGER_MS = 5
BATCH_BYTES = 1024 * 1024
FLUSH_ROWS = 2000
"""Rows appended before the open batches (one per partition) are handed to the sender."""
MAX_REQUEST_BYTES = 8 * 1024 * 1024


class ImportProducer:
    """How the importer talks to Kafka: an aiokafka producer per import run, batched (linger
    :data:`LINGER_MS`, batches up to :data:`BATCH_BYTES`), ``acks=all`` (a row counts as sent
    once every in-sync replica has it).

    Not librdkafka (confluent-kafka), although its Python side costs half as much per row:
    it sends one partition per ProduceRequest (confluentinc/librdkafka#1700), so the rows of
    a multi-file import, sent in event-time order, reach the broker partition after partition,
    and the ingest stage can read a later row of one source before an earlier one of another
    (tests/integration/test_real_delivery.py caught it). aiokafka sends every ready partition
    of a broker in one request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def close(self, timeout: float | None = None) -> None:
        """Nothing to release: each run opens and closes its own connection."""

    async def send_all(self, sends: list[tuple[str, bytes | None, bytes]],
                       bar: Any) -> list[BaseException | None]:
        """Send ``(topic, key, value)`` in order; per send None (acknowledged) or its error.
        ``bar`` (tqdm) advances per send handed to the producer.

        Rows are appended to one batch per partition (the default partitioner's murmur2 of the
        key, as any Kafka producer places it: :mod:`custpulse.streams.partitioning`; a keyless
        row on a random partition), and every :data:`FLUSH_ROWS` rows all open batches are
        handed over together, so the sender puts every partition in one request and the
        partitions advance side by side in send order. That costs a few microseconds a row
        instead of ``send()``'s future and callbacks. A row too large for a batch goes through
        ``send()`` on its own, after the open batches."""
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap, client_id="custpulse-import", acks="all",
            linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES, compression_type=None,
        )
        try:
            await producer.start()
            # on this connection: kafka-python (the admin client) only when a topic is missing
            known = (await producer.client.fetch_all_metadata()).topics()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            from custpulse.streams.admin import kafka_unreachable  # noqa: PLC0415
            raise kafka_unreachable(s) from exc
        if not {topic for topic, _, _ in sends} <= known:
            from custpulse.streams.admin import ensure_topics  # noqa: PLC0415
            try:
                await asyncio.get_running_loop().run_in_executor(None, ensure_topics, s)
            except BaseException:
                await producer.stop()
                raise
        results: list[BaseException | None] = [None] * len(sends)
        waits: list[tuple[Any, list[int]]] = []  # (delivery future, the rows it carries)
        try:
            partitioner = DefaultPartitioner()
            partitions: dict[str, list[int]] = {}
            placed: dict[tuple[str, bytes], int] = {}
            open_batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}

            async def hand_over() -> None:
                for (topic, partition), (batch, rows) in open_batches.items():
                    try:
                        waits.append((await producer.send_batch(batch, topic,
                                                                partition=partition), rows))
                    except KafkaError as exc:
                        for row in rows:
                            results[row] = exc
                open_batches.clear()

            since = 0
            for index, (topic, key, value) in enumerate(sends):
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                if len(value) + len(key or b"") > BATCH_BYTES // 2:
                    await hand_over()
                    try:
                        waits.append((await producer.send(topic, value, key=key), [index]))
                    except KafkaError as exc:  # refused before sending (e.g. over 8 MB)
                        results[index] = exc
                    bar.update(1)
                    continue
                if key is None:
                    partition = partitioner(None, partitions[topic], partitions[topic])
                else:
                    partition = placed.get((topic, key), -1)
                    if partition < 0:  # as the default partitioner places it
                        every = partitions[topic]
                        partition = placed[(topic, key)] = every[partition_of(key, len(every))]
                entry = open_batches.get((topic, partition))
                if entry is None:
                    entry = open_batches[(topic, partition)] = (producer.create_batch(), [])
                if entry[0].append(key=key, value=value, timestamp=None) is None:  # full
                    await hand_over()
                    entry = open_batches[(topic, partition)] = (producer.create_batch(), [])
                    entry[0].append(key=key, value=value, timestamp=None)
                entry[1].append(index)
                since += 1
                if since >= FLUSH_ROWS:
                    await hand_over()
                    bar.update(since)
                    since = 0
            await hand_over()
            bar.update(since)
            await producer.flush()
            outcomes = await asyncio.gather(*(f for f, _ in waits), return_exceptions=True)
            for outcome, (_, rows) in zip(outcomes, waits, strict=True):
                if isinstance(outcome, BaseException):
                    for row in rows:
                        results[row] = outcome
        finally:
            await producer.stop()
        return results


def _run(coroutine: Any) -> Any:
    """Run ``coroutine`` to its end, also when the caller is inside an event loop (a notebook,
    an async application): then in a thread with its own loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def make_producer(settings: Settings) -> ImportProducer:
    return ImportProducer(settings)


@dataclass(frozen=True)
class ImportInput:
    """One file to import: its source, bytes, format and the name used in messages."""

    source: str
    data: bytes
    fmt: FileFormat
    name: str
    sheet: str | None = None
    """The sheet of an .xlsx workbook (None: the first)."""


def import_bytes(
    settings: Settings,
    source: str,
    data: bytes,
    fmt: FileFormat,
    name: str,
    keep_order: bool = False,
    progress: bool = True,
    producer: ImportProducer | None = None,
    mapping: FieldMapping | None = None,
) -> ImportSummary:
    """Send the rows of one file's bytes to ``<prefix><source>``; return the counts.

    Rows that cannot be parsed go to the dead-letter topic with their reason and their text
    with personal data masked, and are reported by row number on stderr (never with their
    content). Rows are read through ``mapping`` (default: shipped mapping plus
    ``CUSTPULSE_MAPPING``), as the worker reads them, for the user id (the key), the event time
    (the order) and the event id (see :mod:`custpulse.processors.importing`).
    """
    if source not in SOURCES:
        raise InputError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
    mapping = mapping or load_mapping(source, settings.mapping)
    (summary,) = import_many(
        settings, [ImportInput(source, data, fmt, name)], keep_order, progress, producer,
        {source: mapping},
    )
    return summary


def import_many(
    settings: Settings,
    inputs: Sequence[ImportInput],
    keep_order: bool = False,
    progress: bool = True,
    producer: ImportProducer | None = None,
    mappings: dict[str, FieldMapping] | None = None,
) -> list[ImportSummary]:
    """Send several files as one stream merged by event time (stable: equal times keep the
    order of ``inputs``, then file order; ``keep_order`` sends file after file, each in file
    order). One summary per input, in the order given. ``mappings`` per source default to the
    shipped ones plus ``CUSTPULSE_MAPPING``."""
    for item in inputs:
        if item.source not in SOURCES:
            raise InputError(f"Unknown source {item.source!r}: use one of {', '.join(SOURCES)}.")
    with collector_tuned():
        mappings = dict(mappings or {})
        for item in inputs:
            if item.source not in mappings:
                mappings[item.source] = load_mapping(item.source, settings.mapping)
        prepared = [
            prepare(parse_rows(item.data, item.fmt, item.sheet), mappings[item.source],
                    settings.zone,
                    keep_order, secret=settings.secret_bytes(),
                    secret_version=settings.pii_secret_version, keyed_ids=False)
            for item in inputs
        ]
    # one file: prepare's order already is the send order (the merge would keep it)
    stream = ([(0, row) for row in prepared[0]] if len(prepared) == 1
              else merge_by_event_time(prepared, keep_order))
    summaries = [ImportSummary(item.source, item.name, read=len(rows))
                 for item, rows in zip(inputs, prepared, strict=True)]
    producer = producer or make_producer(settings)
    errors: list[list[BaseException]] = [[] for _ in inputs]
    sends: list[tuple[str, bytes | None, bytes]] = []
    owners: list[tuple[int, bool]] = []  # per send: (input index, is a dead letter)
    label = inputs[0].source if len(inputs) == 1 else "import"
    # CSV cells are text or missing, which msgspec writes as the standard library does (compact);
    # JSON lines may hold NaN, which only the standard library writes back as it came
    encode = [wire.dumps if item.fmt == "csv" else _json_bytes for item in inputs]
    topic_of = [settings.topic(item.source) for item in inputs]
    for index, row in stream:
        record, key = row.record, row.key
        if record is None:
            sends.append((settings.deadletter_topic, None,
                          _dead_letter(settings, inputs[index], row)))
            owners.append((index, True))
            continue
        sends.append((topic_of[index], None if key is None else key.encode(),
                      encode[index](record)))
        owners.append((index, False))
    with tqdm(total=len(sends), desc=label, unit="row", disable=not progress,
              file=sys.stderr) as bar:
        results = _run(producer.send_all(sends, bar))
    for (index, letter), failure in zip(owners, results, strict=True):
        if failure is not None:
            errors[index].append(failure)
        elif letter:
            summaries[index].deadlettered += 1
        else:
            summaries[index].sent += 1
    for index, summary in enumerate(summaries):
        summary.failed = len(errors[index])
    for item, failures in zip(inputs, errors, strict=True):
        if failures:
            print(f"{item.name}: {len(failures)} rows not sent, first error: {failures[0]}",
                  file=sys.stderr)
    return summaries


def _json_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode()


def _dead_letter(settings: Settings, item: ImportInput, row: ImportRow) -> bytes:
    # here, not at the top: the ingest module brings the quality trackers (river, numpy),
    # ~0.15 s of start-up an import of good rows does not need
    from custpulse.processors.ingest import excerpt_raw  # noqa: PLC0415
    print(f"{item.name}: row {row.row_number}: {row.error}", file=sys.stderr)
    letter = deadletter_record(
        row.error or "unreadable", None, _MESSAGES.get(row.error or "", "unreadable"),
        item.source, datetime.now(UTC), excerpt_raw(row.raw or ""),
        file=item.name, row=row.row_number,
    )
    return json.dumps(letter, ensure_ascii=False).encode()


def import_file(
    settings: Settings,
    source: str,
    path: Path,
    keep_order: bool = False,
    progress: bool = True,
    mapping_path: str | None = None,
) -> ImportSummary:
    """Import one CSV/JSONL file (format from its name); ``mapping_path`` is a user mapping
    merged over the shipped one (default: ``CUSTPULSE_MAPPING``)."""
    (summary,) = import_files(settings, [(source, path)], keep_order, progress, mapping_path)
    return summary


def import_files(
    settings: Settings,
    files: Sequence[tuple[str, Path]],
    keep_order: bool = False,
    progress: bool = True,
    mapping_path: str | None = None,
    sheet: str | None = None,
) -> list[ImportSummary]:
    """Import ``(source, path)`` files as one stream merged by event time (see
    :func:`import_many`); one summary per file, in the order given. ``sheet``: the sheet to
    read of .xlsx workbooks (default: each one's first)."""
    if not files:
        raise InputError("Nothing to import: give SOURCE FILE, SOURCE=FILE ... or --dir DIR.")
    inputs = []
    for source, path in files:
        if source not in SOURCES:
            raise InputError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
        try:
            fmt = detect_format(path.name)
            data = path.read_bytes()
        except ValueError as exc:
            raise InputError(f"{exc}.") from None
        except OSError as exc:
            raise InputError(f"Cannot read {path}: {exc.strerror}.") from None
        inputs.append(ImportInput(source, data, fmt, path.name, sheet if fmt == "xlsx" else None))
    chosen = mapping_path or settings.mapping
    sources = sorted({source for source, _ in files})
    if len(sources) == 1:  # a user file for one source may leave out its source: line
        mappings = {sources[0]: load_mapping(sources[0], chosen)}
    else:
        mappings = load_mappings(chosen)
    return import_many(settings, inputs, keep_order, progress, mappings=mappings)


_NAME_SOURCE = re.compile(r"^([a-z]+)(?:[._\-].*)?$")


def source_of_name(filename: str) -> str | None:
    """The source a file name tells: its name up to the first ``.``, ``_`` or ``-``, case
    ignored (``orders.csv``, ``Orders_2024-03.jsonl`` -> ``orders``), if it is a source and
    the file is ``.csv``/``.jsonl``/``.ndjson``/``.json``/``.xlsx``; else None.

    >>> source_of_name("Orders_2024-03.csv"), source_of_name("behavior.jsonl")
    ('orders', 'behavior')
    >>> source_of_name("notes.txt"), source_of_name("orders.xls"), source_of_name("ordersx.csv")
    (None, None, None)
    """
    try:
        detect_format(filename)
    except ValueError:
        return None
    match = _NAME_SOURCE.match(filename.lower())
    if match is None or match.group(1) not in SOURCES:
        return None
    return match.group(1)


def files_in_dir(folder: Path) -> list[tuple[str, Path]]:
    """The importable files of ``folder`` (not recursive) with their sources, in source order
    (customers, behavior, orders, tickets; then by name). Other files are reported on stderr."""
    try:
        names = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise InputError(f"Cannot read the folder {folder}: {exc.strerror}.") from None
    found = []
    for path in names:
        source = source_of_name(path.name)
        if source is None:
            print(f"{path.name}: skipped (the name tells no source: name it "
                  f"<source>.csv, <source>.jsonl or <source>.xlsx)", file=sys.stderr)
            continue
        found.append((source, path))
    if not found:
        raise InputError(
            f"No files to import in {folder}: name them <source>.csv, .jsonl or .xlsx, "
            f"source one of {', '.join(SOURCES)}."
        )
    return sorted(found, key=lambda item: (SOURCES.index(item[0]), item[1].name))
