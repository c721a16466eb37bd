"""The Faust app, built from :class:`~custpulse.settings.Settings`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from custpulse.processors.health import Health
from custpulse.settings import Settings
from custpulse.streams.agents import register_agents
from custpulse.streams.exact_offsets import exact_transport
from custpulse.streams.metrics import Metrics, create_metrics


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{s.strip()}" for s in settings.kafka_bootstrap.split(",") if s.strip()]


log = logging.getLogger("custpulse.app")


class CustpulseApp(faust.App):
    """Faust's app with a transport chosen by custpulse (exact commits on the events topic,
    see :mod:`custpulse.streams.exact_offsets`)."""

    transport_class: type | None = None
    shutdown_wait_s: float = 30.0
    """At shutdown, how long to wait for messages in flight to be acknowledged (their
    announcement may be retrying against a Redis that is down); then the app stops with them
    unacknowledged: not committed, so they are delivered again after the restart, the same as
    after a crash (the fold is exact under redelivery). Rebalances wait as long as it takes."""
    _stopping_consumer = False

    def _new_transport(self):  # type: ignore[no-untyped-def]
        if self.transport_class is None:
            return super()._new_transport()
        return self.transport_class(self.conf.broker_consumer, self)

    async def _stop_consumer(self) -> None:
        self._stopping_consumer = True
        await super()._stop_consumer()

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if not self._stopping_consumer:
            await super()._consumer_wait_empty(consumer, logger)
            return
        waiting = asyncio.ensure_future(super()._consumer_wait_empty(consumer, logger))
        done, _ = await asyncio.wait({waiting}, timeout=self.shutdown_wait_s)
        if not done:  # not awaited: Faust's wait may not give way to a cancel at once
            waiting.cancel()
            log.warning("stopping with messages in flight after %.0f s (not committed: "
                        "delivered again after the restart)", self.shutdown_wait_s)


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
    app.shutdown_wait_s = settings.shutdown_wait_s
    metrics = create_metrics(registry if registry is not None else CollectorRegistry())
    register_agents(app, settings, metrics, health if health is not None else Health())
    return app, metrics
