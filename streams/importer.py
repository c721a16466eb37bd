"""``custpulse import``: send a CSV or JSON-lines file to a source's topic with kafka-python.

Decisions (ids, order, parsing) are in :mod:`custpulse.processors.importing`; this module does
the I/O: read bytes, produce keyed by user_id, show progress, count outcomes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from custpulse.errors import InputError
from custpulse.processors.importing import (
    FileFormat,
    content_hash,
    detect_format,
    parse_rows,
    prepare,
    record_key,
)
from custpulse.settings import SOURCES, Settings
from custpulse.streams.admin import ensure_topics, kafka_unreachable


@dataclass
class ImportSummary:
    source: str
    name: str
    read: int = 0
    sent: int = 0
    failed: int = 0

    def line(self) -> str:
        return (
            f"imported {self.source} from {self.name}: rows read {self.read}, "
            f"sent {self.sent}, failed {self.failed}"
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
) -> ImportSummary:
    """Send the rows of one file's bytes to ``<prefix><source>``; return the counts.

    Rows that cannot be parsed are counted as failed and reported by row number on stderr
    (never with their content, which may hold personal data).
    """
    if source not in SOURCES:
        raise InputError(f"Unknown source {source!r}: use one of {', '.join(SOURCES)}.")
    ensure_topics(settings)
    topic = settings.topic(source)
    rows = prepare(parse_rows(data, fmt), source, content_hash(data), settings.zone, keep_order)
    summary = ImportSummary(source, name, read=len(rows))
    own = producer is None
    producer = producer or make_producer(settings)
    errors: list[BaseException] = []
    futures = []
    try:
        bar = tqdm(rows, desc=f"{source}", unit="row", disable=not progress, file=sys.stderr)
        for row in bar:
            if row.record is None:
                summary.failed += 1
                print(f"{name}: row {row.row_number}: {row.error}", file=sys.stderr)
                continue
            record: dict[str, Any] = row.record
            futures.append(producer.send(topic, key=record_key(record), value=record))
        producer.flush(timeout=120)
        for future in futures:
            try:
                future.get(timeout=0)
                summary.sent += 1
            except KafkaError as exc:
                summary.failed += 1
                errors.append(exc)
    finally:
        if own:
            producer.close(timeout=10)
    if errors:
        print(f"{name}: {len(errors)} rows not sent, first error: {errors[0]}", file=sys.stderr)
    return summary


def import_file(
    settings: Settings, source: str, path: Path, keep_order: bool = False, progress: bool = True
) -> ImportSummary:
    """Import one CSV/JSONL file (format from its name)."""
    try:
        fmt = detect_format(path.name)
        data = path.read_bytes()
    except ValueError as exc:
        raise InputError(f"{exc}.") from None
    except OSError as exc:
        raise InputError(f"Cannot read {path}: {exc.strerror}.") from None
    return import_bytes(settings, source, data, fmt, path.name, keep_order, progress)
