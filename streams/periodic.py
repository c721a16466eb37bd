"""Periodic work shared by the worker roles: publishing data quality, checking ops alerts."""

from __future__ import annotations

import json
from datetime import datetime

from custpulse.processors.ops import OpsMonitor
from custpulse.processors.quality import QualityTracker
from custpulse.settings import Settings
from custpulse.state.redis_client import connect
from custpulse.state.redis_mirror import write_quality
from custpulse.streams.metrics import Metrics

QUALITY_PUBLISH_INTERVAL_S = 5.0
OPS_INTERVAL_S = 10.0


async def publish_quality(settings: Settings, metrics: Metrics, quality: QualityTracker) -> None:
    """Missing rates to the metrics, the whole snapshot to Redis (``<prefix>quality``)."""
    snapshot = quality.snapshot()
    for source, fields in snapshot.items():
        for name, stats in fields.items():
            rate = stats.get("missing_rate")
            if isinstance(rate, int | float):
                metrics.missing_rate.labels(source, name).set(rate)
    client = connect(settings.redis_url)
    try:
        await write_quality(client, settings, snapshot)
    finally:
        await client.aclose()


def ops_records(ops: OpsMonitor, watermark: datetime | None,
                metrics: Metrics) -> list[tuple[bytes, bytes]]:
    """The ops alerts due at ``watermark`` as ``(key, value)`` records for
    ``<prefix>ops-alerts`` (counted in the metrics)."""
    if watermark is None:
        return []
    out = []
    for alert in ops.check(watermark):
        metrics.ops_alerts.labels(alert["kind"]).inc()
        out.append((alert["kind"].encode(), json.dumps(alert).encode()))
    return out
