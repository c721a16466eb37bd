"""Faust table definitions. Each table is changelog-backed (``<app_id>-<name>-changelog``)."""

from __future__ import annotations

import faust

from custpulse.settings import Settings

PROFILES = "profiles"


def profiles_table(app: faust.App, settings: Settings) -> faust.Table:
    """Per user_id (JSON):  ``{"dedupe": <processors.counting state>,
    "profile": <processors.profile state>, "seg": <processors.lifecycle state>}``.

    Both halves live in one value so the ids applied and the state they changed are written
    (and recovered) together. Partitioned like ``<prefix>events`` (same partition count),
    where each customer's records sit in the partition of its user_id.
    """
    return app.Table(
        PROFILES,
        default=None,
        partitions=settings.partitions,
        schema=faust.Schema(key_type=str, key_serializer="json", value_serializer="json"),
        help="Per user id: dedupe memory and the live profile state.",
    )
