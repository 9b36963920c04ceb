"""`hub streams worker`: run the Faust worker and serve /metrics."""

from __future__ import annotations

from faust.worker import Worker as FaustWorker
from prometheus_client import CollectorRegistry, start_http_server

from hub.errors import BrokerError, HubError
from hub.kafka import admin_client
from hub.settings import HubSettings
from streams.app import create_app
from streams.counting import RiskCounts
from streams.metrics import WorkerMetrics


def check_topics(settings: HubSettings) -> None:
    """Fail with a clear message when the agency topics are missing."""
    admin = admin_client(settings.bootstrap_servers, "hub-worker")
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    missing = [
        settings.case_topic(a) for a in settings.agencies if settings.case_topic(a) not in existing
    ]
    if missing:
        raise BrokerError(f"missing topics {', '.join(missing)}: run `hub topics apply` first")


def run_worker(settings: HubSettings, loglevel: str = "info") -> None:
    check_topics(settings)
    registry = CollectorRegistry()
    counts = RiskCounts()
    metrics = WorkerMetrics(registry, counts)
    worker = create_app(settings, metrics, counts)
    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    except OSError as exc:
        raise HubError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port} ({exc});"
            " choose another port with HUB_METRICS_PORT"
        ) from exc
    print(
        f"metrics on http://{settings.metrics_host}:{settings.metrics_port}/metrics",
        flush=True,
    )
    FaustWorker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()
