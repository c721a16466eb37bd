"""``custpulse import``: send a CSV or JSON-lines file to a source's topic with kafka-python.

Decisions (ids, order, parsing) are in :mod:`custpulse.processors.importing`; this module does
the I/O: read bytes, produce keyed by user_id, show progress, count outcomes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from custpulse.errors import InputError
from custpulse.processors.importing import (
    FileFormat,
    canonical_view,
    content_hash,
    detect_format,
    parse_rows,
    prepare,
    record_key,
)
from custpulse.processors.ingest import mask_text
from custpulse.schemas.deadletter import deadletter_record
from custpulse.schemas.mapping import FieldMapping, load_mapping
from custpulse.settings import SOURCES, Settings
from custpulse.streams.admin import ensure_topics, kafka_unreachable

_MESSAGES = {
    "not_json": "line is not valid JSON",
    "not_object": "line is JSON but not an object",
    "csv_extra_fields": "row has more cells than the header",
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


def make_producer(settings: Settings) -> KafkaProducer:
    try:
        return KafkaProducer(
            bootstrap_servers=[s.strip() for s in settings.kafka_bootstrap.split(",")],
            client_id="custpulse-import",
            acks="all",
            linger_ms=20,
            batch_size=256 * 1024,
            compression_type=None,
            key_serializer=lambda k: None if k is None else k.encode(),
            value_serializer=lambda v: json.dumps(v, ensure_ascii=False).encode(),
        )
    except (KafkaError, OSError) as exc:
        raise kafka_unreachable(settings) from exc


def import_bytes(
    settings: Settings,
    source: str,
    data: bytes,
    fmt: FileFormat,
    name: str,
    keep_order: bool = False,
    progress: bool = True,
    producer: KafkaProducer | None = None,
    mapping: FieldMapping | None = None,
) -> ImportSummary:
    """Send the rows of one file's bytes to ``<prefix><source>``; return the counts.

    Rows that cannot be parsed go to the dead-letter topic with their reason and their text
    with personal data masked, and are reported by row number on stderr (never with their
    content). Source field names are read through ``mapping`` (default: shipped mapping plus
    ``CUSTPULSE_MAPPING``) to find the user id (the key) and the event time (the order).
    """
    if source not in SOURCES:
        raise InputError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
    ensure_topics(settings)
    mapping = mapping or load_mapping(source, settings.mapping)
    topic = settings.topic(source)
    rows = prepare(
        parse_rows(data, fmt), source, content_hash(data), settings.zone, keep_order,
        mapping.canonical_name,
    )
    summary = ImportSummary(source, name, read=len(rows))
    own = producer is None
    producer = producer or make_producer(settings)
    errors: list[BaseException] = []
    futures = []
    letters = []
    try:
        bar = tqdm(rows, desc=f"{source}", unit="row", disable=not progress, file=sys.stderr)
        for row in bar:
            if row.record is None:
                print(f"{name}: row {row.row_number}: {row.error}", file=sys.stderr)
                letter = deadletter_record(
                    row.error or "unreadable", None, _MESSAGES.get(row.error or "", "unreadable"),
                    source, datetime.now(UTC), mask_text(row.raw or ""),
                    file=name, row=row.row_number,
                )
                letters.append(producer.send(settings.deadletter_topic, key=None, value=letter))
                continue
            record: dict[str, Any] = row.record
            key = record_key(canonical_view(record, mapping.canonical_name))
            futures.append(producer.send(topic, key=key, value=record))
        producer.flush(timeout=120)
        summary.sent = _acked(futures, errors)
        summary.deadlettered = _acked(letters, errors)
        summary.failed = len(errors)
    finally:
        if own:
            producer.close(timeout=10)
    if errors:
        print(f"{name}: {len(errors)} rows not sent, first error: {errors[0]}", file=sys.stderr)
    return summary


def _acked(futures: list[Any], errors: list[BaseException]) -> int:
    """How many sends the broker acknowledged; the errors of the others go to ``errors``."""
    acked = 0
    for future in futures:
        try:
            future.get(timeout=0)
            acked += 1
        except KafkaError as exc:
            errors.append(exc)
    return acked


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
    try:
        fmt = detect_format(path.name)
        data = path.read_bytes()
    except ValueError as exc:
        raise InputError(f"{exc}.") from None
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from None
    mapping = load_mapping(source, mapping_path or settings.mapping)
    return import_bytes(
        settings, source, data, fmt, path.name, keep_order, progress, mapping=mapping
    )
