"""Faust table definitions. Each table is changelog-backed (``<app_id>-<name>-changelog``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from custpulse.schemas import wire
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


class ProfileStore:
    """The profiles table as the fold uses it: read a value, write one back and get the future
    of its changelog send.

    A write puts the value in the table's local store and sends a **snapshot** (JSON bytes
    made at write time) to the changelog partition of the input message, the partition the
    customer's records come from. The future resolves when Kafka acknowledges the send (the
    producer's ``acks``), which is what :class:`~custpulse.state.delivery.Delivery` waits for
    before anything is announced or committed. This uses the table's public
    ``send_changelog``; Table ``__setitem__`` does the same but returns no future, so the
    fold could only wait for Faust's producer buffer as a whole.
    """

    def __init__(self, table: faust.Table,
                 observe_bytes: Callable[[int], None] | None = None) -> None:
        self.table = table
        self.observe_bytes = observe_bytes
        """Told the size of each value written (changelog bytes), e.g. a metric."""

    def get(self, user_id: str) -> dict[str, Any] | None:
        return self.table.get(user_id)

    def put(self, partition: int, user_id: str, value: dict[str, Any]) -> Awaitable[Any]:
        snapshot = wire.dumps(value)
        if self.observe_bytes is not None:
            self.observe_bytes(len(snapshot))
        self.table.data[user_id] = value
        return self.table.send_changelog(partition, user_id, snapshot, value_serializer="raw")

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.table.items())
