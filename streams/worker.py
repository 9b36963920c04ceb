"""`hub streams worker`: run the Faust worker and serve /metrics."""

from __future__ import annotations

from faust.exceptions import ConsumerNotStarted
from faust.worker import Worker as FaustWorker
from prometheus_client import CollectorRegistry, start_http_server

from hub.agreement import load_agreement
from hub.errors import BrokerError, HubError
from hub.kafka import admin_client
from hub.settings import HubSettings
from streams.app import Worker
from streams.metrics import WorkerMetrics
from streams.state import WorkerState
from streams.timeliness import Timeliness, TimelinessCollector


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
    agreement = load_agreement(settings.agreement)
    state = WorkerState()
    metrics = WorkerMetrics(registry, state)
    timeliness = Timeliness(agreement)
    registry.register(TimelinessCollector(timeliness))
    worker = Worker(settings, metrics, state, on_submission=timeliness.observe_timestamp)

    def lag() -> dict[str, int]:
        consumer = worker.app.consumer
        behind: dict[str, int] = {}
        try:
            assignment = consumer.assignment()
        except ConsumerNotStarted:
            return behind
        for tp in assignment:
            highwater = consumer.highwater(tp) if tp.topic in topics else None
            if highwater is not None:  # None until the first fetch of the partition
                read = worker.positions.get(tp, -1)
                behind[tp.topic] = behind.get(tp.topic, 0) + max(0, highwater - read - 1)
        return behind

    topics = {settings.case_topic(agency) for agency in settings.agencies}
    metrics.watch_lag(lag)
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
