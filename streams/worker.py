"""`hub streams worker`: run the Faust worker and serve /metrics."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable

import faust
from faust.exceptions import ConsumerNotStarted
from faust.worker import Worker as FaustWorker
from prometheus_client import CollectorRegistry, start_http_server

from hub.agreement.model import Agreement
from hub.errors import BrokerError, HubError
from hub.kafka.client import admin_client
from hub.settings import HubSettings
from streams.app import Worker
from streams.deferred import replay_group
from streams.lag import LagProbe
from streams.metrics import WorkerMetrics
from streams.state import WorkerState
from streams.store import open_disk
from streams.timeliness import Timeliness, TimelinessCollector
from streams.watchdog import Watchdog


def check_topics(settings: HubSettings, topics: Iterable[str]) -> None:
    """Fail with a clear message when the case topics or the deferred topic are missing."""
    admin = admin_client(settings, "hub-worker")
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    needed = [*sorted(topics), settings.deferred_topic]
    missing = [topic for topic in needed if topic not in existing]
    if missing:
        raise BrokerError(f"missing topics {', '.join(missing)}: run `hub topics apply` first")


class _Worker(FaustWorker):
    """Faust's worker with a deadline on stopping.

    Faust stops by flushing its producer and committing offsets; with the broker
    gone that waits forever and the process ignores SIGTERM. After the first
    SIGTERM or SIGINT a timer gives the clean stop `deadline` seconds, then exits.
    That is as safe as a crash: events are acknowledged only once their changelog
    batch is written, so whatever was in flight is re-read and dropped as a
    duplicate at the next start (tests/streams/test_worker_crash.py).
    """

    def __init__(self, app: faust.App, deadline: float) -> None:
        # The hub's logging stays (hub.logs: HUB_LOG_LEVEL, HUB_LOG_FORMAT): Faust would
        # replace the root handler with its own, coloured, on stdout. Without Faust's
        # setup there is no progress spinner either (it only spins on a terminal).
        super().__init__(app, quiet=True, override_logging=False)
        self.spinner = None
        self.deadline = deadline
        self._timer: threading.Timer | None = None

    def _on_sigterm(self) -> None:
        self._arm()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm()
        super()._on_sigint()

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.deadline, _give_up, [self.deadline])
            self._timer.daemon = True
            self._timer.start()


def _give_up(deadline: float) -> None:
    print(
        f"the worker did not stop within {deadline:.0f} s (HUB_SHUTDOWN_TIMEOUT); is Kafka"
        " reachable? Exiting now: events not yet acknowledged are read again at the next"
        " start and dropped as duplicates.",
        file=sys.stderr,
        flush=True,
    )
    os._exit(3)


def run_worker(settings: HubSettings, agreement: Agreement) -> None:
    """Read the case topics of the agreement's partners until stopped."""
    registry = CollectorRegistry()
    state = WorkerState(disk=open_disk(settings))
    metrics = WorkerMetrics(registry, state)
    timeliness = Timeliness(agreement)
    registry.register(TimelinessCollector(timeliness))
    worker = Worker(settings, agreement, metrics, state, on_submission=timeliness.observe_timestamp)
    check_topics(settings, worker.topics)

    def assigned() -> dict[tuple[str, int], int] | None:
        """This worker's agency-topic partitions and the last offset it read in each."""
        # Not app.consumer: asked before Faust starts, it would create the consumer here,
        # outside the worker's event loop.
        consumer = worker.app._consumer  # noqa: SLF001
        if consumer is None:
            return None
        try:
            assignment = list(consumer.assignment())
        except ConsumerNotStarted:
            return None
        mine = [tp for tp in assignment if tp.topic in worker.topics]
        if not mine:
            return None
        return {(tp.topic, tp.partition): worker.positions.get(tp, -1) for tp in mine}

    probe = LagProbe(settings, worker.topics, worker.app.conf.id, replay_group(settings), assigned)
    probe.start()  # asked once before /metrics is served, then every second
    metrics.watch_lag(probe)
    watchdog = Watchdog(worker, probe, registry, after=settings.worker_stall_after)
    worker.app.timer(max(1.0, settings.worker_stall_after / 6))(watchdog.check)
    metrics.watch_recovery(lambda: worker.recovering)
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
    _Worker(worker.app, settings.shutdown_timeout).execute_from_commandline()
