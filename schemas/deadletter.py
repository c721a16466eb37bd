"""The dead-letter message on ``<prefix>deadletter`` (JSON object, version 2)::

    {"v": 2,
     "reason": {"code": "negative_amount", "field": "amount", "message": "amount is negative"},
     "source": "orders",
     "topic": "cp.orders", "partition": 1, "offset": 42,      # where the worker read it, or
     "file": "orders.csv", "row": 17,                          # where the importer read it
     "received_at": "2026-11-23T09:10:33.530+00:00",
     "payload": {...a structured excerpt: types, masked values; never raw text...}}

``topic``/``partition``/``offset`` are null for rows the importer could not parse, and
``file``/``row`` are null for messages the worker read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from custpulse.schemas.times import to_iso

DEADLETTER_VERSION = 2


def deadletter_record(
    code: str,
    field: str | None,
    message: str,
    source: str,
    received_at: datetime,
    payload: Any = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    file: str | None = None,
    row: int | None = None,
) -> dict[str, Any]:
    """Build a dead letter. ``payload`` must already be masked; ``message`` holds no values."""
    return {
        "v": DEADLETTER_VERSION,
        "reason": {"code": code, "field": field, "message": message},
        "source": source,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "file": file,
        "row": row,
        "received_at": to_iso(received_at),
        "payload": payload,
    }
