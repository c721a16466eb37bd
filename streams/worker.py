"""``custpulse worker``: check the servers, create topics, then run the Faust worker."""

from __future__ import annotations

import logging
from pathlib import Path

import faust
import mode
from prometheus_client import REGISTRY

from custpulse.errors import ConfigError
from custpulse.processors.health import Health, ProgressWatch
from custpulse.settings import Settings
from custpulse.streams.admin import check_events_partitions, check_redis, ensure_topics
from custpulse.streams.app import create_app
from custpulse.streams.client_logs import cap_client_logs
from custpulse.streams.gc_tuning import GC_THRESHOLDS, tune_gc
from custpulse.streams.http import serve
from custpulse.streams.ingest_worker import IngestWorker
from custpulse.streams.metrics import create_metrics

__all__ = ["GC_THRESHOLDS", "run_worker", "tune_gc"]

log = logging.getLogger("custpulse.worker")

def run_worker(settings: Settings, log_level: str | None = None) -> int:
    """Run until SIGTERM/SIGINT. Raises ServiceUnavailable (one sentence) if Kafka or Redis
    cannot be reached at start."""
    try:
        Path(settings.data_dir, settings.app_id).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the data folder {settings.data_dir!r} ({exc.strerror}): "
            "set CUSTPULSE_DATA_DIR to a writable folder."
        ) from None
    if settings.uses_dev_secret() and settings.env != "dev":
        raise ConfigError(
            "The worker will not start with the development PII secret: set "
            "CUSTPULSE_PII_SECRET (or CUSTPULSE_PII_SECRET_FILE) to a long random value, "
            "or CUSTPULSE_ENV=dev for local work."
        )
    check_redis(settings).close()
    created = ensure_topics(settings)
    check_events_partitions(settings)
    health = Health(ProgressWatch(settings.stall_timeout_s))
    if settings.metrics_port:  # one registry per process: give each process its own port
        serve(settings.metrics_port, REGISTRY, health)
    level = log_level or settings.log_level
    tune_gc()
    worker: mode.Worker
    if settings.role == "trainer":  # the churn model's trainer alone (no Faust)
        from custpulse.streams.churn_trainer import ChurnTrainer  # noqa: PLC0415

        worker = mode.Worker(ChurnTrainer(settings, REGISTRY), loglevel=level, quiet=True)
        health.set_ready(True)  # no table to recover
    elif not settings.runs_fold:  # no Faust: the ingest stage alone (streams/ingest_worker.py)
        service = IngestWorker(settings, create_metrics(REGISTRY))
        worker = mode.Worker(service, loglevel=level, quiet=True)
        health.set_ready(True)  # no table to recover
    else:
        app, _metrics = create_app(settings, registry=REGISTRY, health=health)
        worker = faust.Worker(app, loglevel=level, quiet=True)
    cap_client_logs()
    if created:
        log.info("created topics: %s", ", ".join(created))
    worker.execute_from_commandline()
    return 0
