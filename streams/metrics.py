"""Prometheus metrics, built by a factory that takes the registry (a fresh one per test).

Labels are source names and reason codes only: never values from a record.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class Metrics:
    events_in: Counter
    accepted: Counter
    deadlettered: Counter
    duplicates: Counter
    fold_seconds: Histogram
    missing_rate: Gauge
    segment_changes: Counter
    ops_alerts: Counter
    tick_records: Counter
    tick_customers: Counter
    churn_examples: Counter
    churn_model_version: Gauge


def create_metrics(registry: CollectorRegistry) -> Metrics:
    """Register custpulse's metrics in ``registry``. Durations are in seconds."""
    return Metrics(
        events_in=Counter(
            "custpulse_events_in", "Raw messages read from the input topics.", ["source"],
            registry=registry,
        ),
        accepted=Counter(
            "custpulse_events_accepted", "Events applied to state for the first time.",
            ["source"], registry=registry,
        ),
        deadlettered=Counter(
            "custpulse_events_deadlettered", "Messages sent to the dead-letter topic.",
            ["source", "reason"], registry=registry,
        ),
        duplicates=Counter(
            "custpulse_events_duplicate", "Events already applied (redelivery or re-import).",
            ["source"], registry=registry,
        ),
        fold_seconds=Histogram(
            "custpulse_fold_seconds", "Time to fold one event into state and mirror it.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=registry,
        ),
        missing_rate=Gauge(
            "custpulse_field_missing_rate", "Share of records missing a field (0..1), per worker.",
            ["source", "field"], registry=registry,
        ),
        segment_changes=Counter(
            "custpulse_segment_changes", "Segment-change alerts sent.", ["group"],
            registry=registry,
        ),
        ops_alerts=Counter(
            "custpulse_ops_alerts", "Ops alerts sent.", ["kind"], registry=registry,
        ),
        tick_records=Counter(
            "custpulse_tick_records", "Tick records sent to <prefix>events (each names up to "
            "100 customers whose deadline the watermark passed).", registry=registry,
        ),
        tick_customers=Counter(
            "custpulse_tick_customers", "Customers named in the tick records sent.",
            registry=registry,
        ),
        churn_examples=Counter(
            "custpulse_churn_examples_sent", "Labelled churn examples sent to "
            "<prefix>churn-examples (re-sent ones too), by label.", ["label"],
            registry=registry,
        ),
        churn_model_version=Gauge(
            "custpulse_churn_scoring_model_version", "Churn model version this worker scores "
            "with (0: none yet).", registry=registry,
        ),
    )
