"""Faust table definitions. Each table is changelog-backed (``<app_id>-<name>-changelog``)."""

from __future__ import annotations

import faust

from custpulse.settings import Settings

EVENT_COUNTS = "event_counts"


def event_counts_table(app: faust.App, settings: Settings) -> faust.Table:
    """Per user_id: the :mod:`custpulse.processors.counting` state (JSON dict).

    Partitioned like ``<prefix>events`` (same partition count), which is keyed by user_id.
    """
    return app.Table(
        EVENT_COUNTS,
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="json", value_serializer="json"),
        help="Events per user id, with the ids applied (for idempotence).",
    )
