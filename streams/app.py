"""The Faust app, built from :class:`~custpulse.settings.Settings`."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from custpulse.processors.health import Health
from custpulse.settings import Settings
from custpulse.streams.agents import register_agents
from custpulse.streams.exact_offsets import exact_transport
from custpulse.streams.metrics import Metrics, create_metrics


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{s.strip()}" for s in settings.kafka_bootstrap.split(",") if s.strip()]


class CustpulseApp(faust.App):
    """Faust's app with a transport chosen by custpulse (exact commits on the events topic,
    see :mod:`custpulse.streams.exact_offsets`)."""

    transport_class: type | None = None

    def _new_transport(self):  # type: ignore[no-untyped-def]
        if self.transport_class is None:
            return super()._new_transport()
        return self.transport_class(self.conf.broker_consumer, self)


def create_app(
    settings: Settings, registry: CollectorRegistry | None = None,
    health: Health | None = None,
) -> tuple[faust.App, Metrics]:
    """A Faust app with custpulse's topics, tables and agents. The app id is the consumer
    group and the prefix of changelog topics (``<app_id>-profiles-changelog``)."""
    app = CustpulseApp(
        settings.app_id,
        broker=broker_urls(settings),
        store=settings.store,
        datadir=f"{settings.data_dir}/{settings.app_id}",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 10),
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.transport_class = exact_transport([settings.events_topic])
    metrics = create_metrics(registry if registry is not None else CollectorRegistry())
    register_agents(app, settings, metrics, health if health is not None else Health())
    return app, metrics
