"""``custpulse worker``: check the servers, create topics, then run the Faust worker."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import faust
import mode
from prometheus_client import REGISTRY, start_http_server

from custpulse.errors import ConfigError
from custpulse.settings import Settings
from custpulse.streams.admin import check_events_partitions, check_redis, ensure_topics
from custpulse.streams.app import create_app
from custpulse.streams.client_logs import cap_client_logs
from custpulse.streams.ingest_worker import IngestWorker
from custpulse.streams.metrics import create_metrics

log = logging.getLogger("custpulse.worker")

GC_THRESHOLDS = (700, 10, 1000)
"""Python's cyclic garbage collector, tuned for a process that holds a large table: young
generations as CPython's defaults; a full collection (which walks every live object: ~0.4 s
for 23,000 customers' state, minutes of pauses over a backfill) at most once per 1,000
collections of the middle generation (~7 million allocations) instead of 10. The state itself
is acyclic (dicts, lists, numbers, text) and freed by reference counting; only cycles made by
the client libraries wait longer for collection. Measured in the offline fold of the bench's
backfill: ~30 % of the fold's time with the defaults, ~0 with these."""


def tune_gc() -> None:
    """Apply :data:`GC_THRESHOLDS` (once per process, at start)."""
    gc.set_threshold(*GC_THRESHOLDS)


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
    if settings.metrics_port:  # one registry per process: give each process its own port
        start_http_server(settings.metrics_port, addr="0.0.0.0", registry=REGISTRY)  # noqa: S104
    level = log_level or settings.log_level
    tune_gc()
    worker: mode.Worker
    if not settings.runs_fold:  # no Faust: the ingest stage alone (streams/ingest_worker.py)
        service = IngestWorker(settings, create_metrics(REGISTRY))
        worker = mode.Worker(service, loglevel=level, quiet=True)
    else:
        app, _metrics = create_app(settings, registry=REGISTRY)
        worker = faust.Worker(app, loglevel=level, quiet=True)
    cap_client_logs()
    if created:
        log.info("created topics: %s", ", ".join(created))
    worker.execute_from_commandline()
    return 0
