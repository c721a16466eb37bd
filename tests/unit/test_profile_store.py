"""The profiles table as the fold writes it: a snapshot goes to the changelog, with a future."""

from __future__ import annotations

import json
from typing import Any

from custpulse.state.tables import ProfileStore


class FakeTable:
    """Stands in for a Faust table: a local store and the public ``send_changelog``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.sent: list[tuple[int, str, bytes, str | None]] = []

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def items(self):
        return self.data.items()

    def send_changelog(self, partition, key, value, key_serializer=None,
                       value_serializer=None):
        self.sent.append((partition, key, value, value_serializer))
        return f"future-{len(self.sent)}"


def test_put_stores_the_value_and_sends_a_snapshot_taken_at_write_time():
    table = FakeTable()
    store = ProfileStore(table)  # type: ignore[arg-type]
    value = {"dedupe": {"ids": {"e1": 1}}, "version": 1}
    future = store.put(3, "U1", value)
    assert future == "future-1"
    assert store.get("U1") is value
    # the next envelope mutates the live value: the changelog keeps what was written
    value["dedupe"]["ids"]["e2"] = 2
    value["version"] = 2
    partition, key, raw, serializer = table.sent[0]
    assert (partition, key, serializer) == (3, "U1", "raw")
    assert json.loads(raw) == {"dedupe": {"ids": {"e1": 1}}, "version": 1}
