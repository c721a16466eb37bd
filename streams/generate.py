"""``custpulse generate``: synthetic data to files, or to the topics through the importer.

Sending to topics goes through exactly the bytes a file would hold, so ``generate --to-topics``
and ``generate --out D`` followed by ``import`` give the same event ids (and count once).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, time
from pathlib import Path

from custpulse.errors import InputError
from custpulse.processors import synthetic
from custpulse.processors.importing import to_csv, to_jsonl
from custpulse.settings import SOURCES, Settings


def generated_files(
    customers: int, months: int, end: datetime, seed: int, churn_share: float, fmt: str
) -> dict[str, bytes]:
    """Source -> file content (``fmt`` is ``jsonl`` or ``csv``)."""
    records = synthetic.generate(customers, months, end, seed, churn_share=churn_share)
    encode = to_jsonl if fmt == "jsonl" else to_csv
    return {source: encode(records[source]) for source in SOURCES}


def default_end() -> datetime:
    """Midnight UTC of today: the default last day of generated history."""
    return datetime.combine(datetime.now(UTC).date(), time(0), tzinfo=UTC)


def generate_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.customers < 1 or args.months < 1 or not 0 <= args.churn_share <= 1:
        raise InputError("--customers and --months must be >= 1 and --churn-share in 0..1.")
    end = args.end or default_end()
    files = generated_files(
        args.customers, args.months, end, args.seed, args.churn_share, args.format
    )
    label = f"seed {args.seed}, end {end.date().isoformat()}"
    if args.to_topics:
        from custpulse.streams.importer import import_bytes, make_producer

        producer = make_producer(settings)
        failed = 0
        try:
            for source, data in files.items():
                summary = import_bytes(
                    settings, source, data, args.format, f"generated {source}",
                    progress=not args.no_progress, producer=producer,
                )
                failed += summary.failed
                print(summary.line())
        finally:
            producer.close(timeout=10)
        print(f"generated {args.customers} customers over {args.months} months ({label})")
        return 0 if failed == 0 else 1
    out: Path = args.out or Path("demo-data")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for source, data in files.items():
            path = out / f"{source}.{args.format}"
            path.write_bytes(data)
            rows = data.count(b"\n") - (1 if args.format == "csv" else 0)
            print(f"wrote {path} ({rows} rows)")
    except OSError as exc:
        raise InputError(f"Cannot write to {out}: {exc.strerror}.") from None
    print(f"generated {args.customers} customers over {args.months} months ({label})",
          file=sys.stdout)
    return 0
