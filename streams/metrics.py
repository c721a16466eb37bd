"""Prometheus metrics, built by a factory that takes the registry (a fresh one per test).

Labels are source names and reason codes only: never values from a record.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from custpulse.settings import SOURCES


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
    event_lag: Histogram
    alert_lag: Histogram
    campaign_triggers: Counter
    redis_write_errors: Counter
    redis_write_retries: Counter
    watermark: Gauge
    watermark_lag: Gauge
    consumer_lag: Gauge
    segment_customers: Gauge
    table_value_bytes: Histogram


LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                 1800.0, 3600.0)
"""Seconds, from sub-second (live traffic) up to an hour (a stalled pipeline or a replay)."""


REDIS_ERRORS = ("ConnectionError", "TimeoutError", "ResponseError")
"""Error types whose counters start at 0 (so a rate over them is 0, not "no data")."""


def create_metrics(registry: CollectorRegistry) -> Metrics:
    """Register custpulse's metrics in ``registry``. Durations are in seconds. Counters whose
    label values are known in advance (sources, the usual Redis errors) start at 0, so a
    dashboard's rate shows 0 on a healthy system rather than no data."""
    metrics = _families(registry)
    for source in SOURCES:
        for counter in (metrics.events_in, metrics.accepted, metrics.duplicates):
            counter.labels(source)
    for error in REDIS_ERRORS:
        metrics.redis_write_errors.labels(error)
    return metrics


def _families(registry: CollectorRegistry) -> Metrics:
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
        event_lag=Histogram(
            "custpulse_event_lag_seconds", "Wall-clock time when an accepted event was folded "
            "minus its event time (seconds; a replay of history is in the last bucket).",
            buckets=LAG_BUCKETS_S, registry=registry,
        ),
        alert_lag=Histogram(
            "custpulse_alert_lag_seconds", "Wall-clock time when a segment-change alert was "
            "sent to Kafka minus the event time of the move (fresh moves only: historical ones "
            "are a replay).", buckets=LAG_BUCKETS_S, registry=registry,
        ),
        campaign_triggers=Counter(
            "custpulse_campaign_triggers", "Campaign triggers sent, by campaign (from the "
            "campaign rules) and whether the customer is in the holdout.",
            ["campaign", "holdout"], registry=registry,
        ),
        redis_write_errors=Counter(
            "custpulse_redis_write_errors", "Mirror pipelines Redis did not take, by error "
            "type (each is retried).", ["error"], registry=registry,
        ),
        redis_write_retries=Counter(
            "custpulse_redis_write_retries", "Mirror pipelines sent again (after an error, or "
            "whole after a changes-only write found another base).", registry=registry,
        ),
        watermark=Gauge(
            "custpulse_watermark_timestamp_seconds", "Event-time watermark of each input, as "
            "this process combines it (Unix seconds).", ["input"], registry=registry,
        ),
        watermark_lag=Gauge(
            "custpulse_watermark_lag_seconds", "Wall clock minus the watermark of each input "
            "(seconds; grows while an input is idle or stalled).", ["input"], registry=registry,
        ),
        consumer_lag=Gauge(
            "custpulse_consumer_lag_messages", "Messages not yet committed by the pipeline's "
            "consumer groups, per topic and partition (sampled).", ["topic", "partition"],
            registry=registry,
        ),
        segment_customers=Gauge(
            "custpulse_segment_customers", "Customers in each segment (the Redis segment "
            "sets, sampled).", ["group", "segment"], registry=registry,
        ),
        table_value_bytes=Histogram(
            "custpulse_table_value_bytes", "Size of each profiles-table value written "
            "(changelog bytes per customer).",
            buckets=(1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288),
            registry=registry,
        ),
    )
