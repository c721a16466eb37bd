"""The worker's HTTP endpoint (one port, ``CUSTPULSE_METRICS_PORT``): ``/metrics``
(Prometheus text), ``/healthz/live`` and ``/healthz/ready`` (200 or 503, a small JSON body
saying why). Served from a daemon thread, as prometheus-client serves its own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from custpulse.processors.health import Health

LIVE, READY = "/healthz/live", "/healthz/ready"


def health_app(registry: CollectorRegistry, health: Health,
               clock: Callable[[], float] = time.monotonic) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: the health paths, everything else Prometheus' exposition."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in (LIVE, READY):
            ok, body = health.liveness(clock()) if path == LIVE else health.readiness()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return metrics(environ, start_response)

    return app


def serve(port: int, registry: CollectorRegistry, health: Health,
          addr: str = "0.0.0.0") -> Any:  # noqa: S104 (scraped from other hosts)
    """Start the endpoint in a daemon thread; returns the server (``shutdown()`` stops it)."""
    server = make_server(addr, port, health_app(registry, health), ThreadingWSGIServer,
                         handler_class=_SilentHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="custpulse-http")
    thread.start()
    return server
