"""`hub streams publisher`: the scheduler as a service, its metrics served over HTTP."""

from __future__ import annotations

import signal
import time

from prometheus_client import CollectorRegistry, start_http_server

from hub.agreement.model import Agreement
from hub.errors import HubError, PublishError
from hub.settings import HubSettings
from streams.publish.publisher import Publisher
from streams.publish.requests import RequestQueue
from streams.publish.scheduler import Scheduler


def _connect(settings: HubSettings, agreement: Agreement) -> Publisher:
    """The publisher, once a stream worker has created its changelog (waits until then)."""
    said = 0.0
    while True:
        try:
            return Publisher(settings, agreement)
        except PublishError as exc:
            if "does not exist" not in str(exc):
                raise
            if time.monotonic() - said > 30:
                print(f"waiting: {exc}", flush=True)
                said = time.monotonic()
            time.sleep(2)


def run_publisher(settings: HubSettings, agreement: Agreement) -> None:
    registry = CollectorRegistry()
    publisher = _connect(settings, agreement)
    requests: RequestQueue | None = None
    try:
        requests = RequestQueue(settings)
        scheduler = Scheduler(publisher, registry, requests=requests)
        try:
            start_http_server(settings.publisher_metrics_port, settings.metrics_host, registry)
        except OSError as exc:
            raise HubError(
                f"cannot serve metrics on {settings.metrics_host}:"
                f"{settings.publisher_metrics_port} ({exc}); choose another port with"
                " HUB_PUBLISHER_METRICS_PORT"
            ) from exc
        print(
            f"publisher metrics on http://{settings.metrics_host}:"
            f"{settings.publisher_metrics_port}/metrics",
            flush=True,
        )
        # SIGTERM (a supervisor's stop) ends the wait between runs, so the requests
        # consumer leaves its group at once and `hub publish --now` stops asking.
        signal.signal(signal.SIGTERM, lambda *_: scheduler.stop.set())
        try:
            scheduler.run()
        except KeyboardInterrupt:
            scheduler.stop.set()
    finally:
        if requests is not None:
            requests.close()
        publisher.close()
