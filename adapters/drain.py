"""Send what the outbox holds: on its own, or beside a run that keeps ingesting.

`drain` is what `hub adapter drain` does: send until the outbox (HUB_OUTBOX) is
empty, or with `follow` keep sending until SIGTERM or Ctrl-C, through any Kafka
outage or disk error (retrying with backoff), serving the metrics on
HUB_ADAPTER_METRICS_PORT; only a damaged outbox stops it, with an `OutboxError`
saying what to do. ``python -m adapters.drain`` runs the same from its own
arguments (see `main`): exit status 1 and one ``error:`` line on stderr for
anything the hub can explain.

Beside a run the outbox is forwarded in one of two ways:

- `drain_process`: ``python -m adapters.drain --follow`` as a child process, for
  one-shot runs of large files, where reading and sending are both CPU-bound
  Python and each gets a core. It shares the run's process group and stderr (its
  log lines appear with the run's); the run stops it with SIGTERM at the end (it
  finishes its batch, then exits), and `counting_sent_elsewhere` adds what it sent
  to the run's metrics.
- `forwarding_thread`: a supervised forwarder (`Forwarder.follow`) in a thread with
  its own SQLite connection, for the watch and serve modes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import CollectorRegistry

from adapters.console import say
from adapters.metrics import AdapterMetrics, serve
from adapters.outbox import Outbox, pending_summary
from adapters.pipeline import Forwarder
from adapters.publishers.factory import make_publisher
from hub.errors import HubError, OutboxError
from hub.logs import configure_logging
from hub.settings import HubSettings

log = logging.getLogger(__name__)
#: Seconds a stopped forwarder (thread or process) has to finish its batch.
STOP_WITHIN = 120


def drain(
    settings: HubSettings,
    timeout: float = 60.0,
    follow: bool = False,
    poll: float = 2.0,
    agency: str = "unknown",
    metrics_port: int | None = None,
) -> int:
    """Send what the outbox holds; the number of events sent.

    Without `follow`: until it is empty, retrying for up to `timeout` seconds
    (`KafkaUnavailable` or `OutboxError` when the time runs out). With `follow`: until
    SIGTERM or SIGINT (call it from the main thread), polling every `poll` seconds,
    with the metrics (for `agency`) served on `metrics_port` (None:
    HUB_ADAPTER_METRICS_PORT; 0: not served).
    """
    outbox = Outbox(settings.outbox)
    publisher = make_publisher(settings)
    registry = CollectorRegistry()
    counted = AdapterMetrics(registry, agency)
    counted.watch_outbox(lambda: pending_summary(settings.outbox))
    forwarder = Forwarder.from_settings(settings, outbox, counted, publisher=publisher)
    port = settings.adapter_metrics_port if metrics_port is None else metrics_port
    try:
        if not follow:
            sent = forwarder.drain(timeout)
            say(f"{sent} events sent; outbox {settings.outbox} is empty")
            return sent
        counted.watch_forwarder(forwarder.status, settings.forwarder_stale_after)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda _signum, _frame: stop.set())
        say(f"sending what {settings.outbox} holds until SIGTERM or Ctrl-C")
        if port == 0:
            forwarder.follow(stop, poll)
        else:
            with serve(registry, settings.metrics_host, port) as url:
                say(f"adapter metrics on {url}")
                forwarder.follow(stop, poll)
        say(f"stopped: {forwarder.sent} events sent")
        return forwarder.sent
    finally:
        forwarder.close()
        publisher.close()
        outbox.close()


@contextmanager
def drain_process(settings: HubSettings, agency: str | None, poll: float) -> Iterator[None]:
    """``python -m adapters.drain --follow`` beside the block, stopped when it ends; it
    serves no metrics (the caller's run does)."""
    command = [sys.executable, "-m", "adapters.drain", "--follow", "--poll", str(poll)]
    command += ["--metrics-port", "0"]
    if agency is not None:
        command += ["--agency", agency]
    child = subprocess.Popen(
        command,
        env=settings.to_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        if child.poll() is not None:  # it said why on stderr; the run's own drain will too
            log.error("the drain process exited with status %d", child.returncode)
        child.send_signal(signal.SIGTERM)  # it finishes its batch, then exits
        try:
            child.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextmanager
def counting_sent_elsewhere(
    outbox: Outbox | None, metrics: AdapterMetrics | None
) -> Iterator[None]:
    """Add what another process sent from `outbox` during the block to `metrics`' events_sent."""
    if outbox is None or metrics is None:
        yield
        return
    _, before = outbox.counts()
    try:
        yield
    finally:
        _, after = outbox.counts()
        metrics.sent(max(0, after - before))


@contextmanager
def forwarding_thread(
    settings: HubSettings,
    forwarder: Forwarder,
    metrics: AdapterMetrics | None,
    client_id: str,
    poll: float,
    on_failure: Callable[[], None] | None = None,
) -> Iterator[None]:
    """A supervised forwarder in a thread while the block runs, on an outbox connection of
    its own, sharing `forwarder`'s status and publisher.

    It waits out any outage and reports its state on `metrics` and /health. When it
    cannot go on (a damaged outbox) it calls `on_failure`, so that the caller stops, and
    the block then raises its `OutboxError` (a `HubError` for anything else).
    """
    stop = threading.Event()
    failure: list[BaseException] = []
    status = forwarder.status
    if metrics is not None:
        metrics.watch_forwarder(status, settings.forwarder_stale_after)
    background = Forwarder.from_settings(
        settings,
        lambda: Outbox(settings.outbox),
        metrics,
        status,
        client_id=client_id,
        publisher=forwarder.publisher,
    )

    def loop() -> None:
        try:
            background.follow(stop, poll)
        except BaseException as exc:  # a damaged outbox (logged), or a bug
            if not isinstance(exc, OutboxError):
                log.exception("the outbox forwarder stopped")
                status.set("failed", f"{type(exc).__name__}: {exc}")
            failure.append(exc)
            if on_failure is not None:
                on_failure()
        finally:
            background.close()

    thread = threading.Thread(target=loop, name="outbox-forwarder", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=STOP_WITHIN)
        if thread.is_alive():
            log.warning("the outbox forwarder did not stop within %d s; leaving it", STOP_WITHIN)
    if failure:
        exc = failure[0]
        if isinstance(exc, HubError):
            raise exc
        raise HubError(f"the outbox forwarder stopped: {type(exc).__name__}: {exc}") from exc


def _port(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 turns metrics off)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.drain [--follow] ...``: settings from the HUB_* environment."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.drain",
        description="Send what the outbox (HUB_OUTBOX) holds. With --follow, keep sending"
        " through any Kafka outage or disk error until SIGTERM or Ctrl-C; exit status 1"
        " when the outbox is damaged, saying what to do.",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="Default: 60 seconds.")
    parser.add_argument("--follow", action="store_true", help="Keep draining until stopped.")
    parser.add_argument("--poll", type=float, default=2.0, help="With --follow; default: 2.")
    parser.add_argument(
        "--agency", default="unknown", help="The agency id the metrics name (`agency` label)."
    )
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="With --follow: serve Prometheus /metrics on this port; 0: off."
        " Default: HUB_ADAPTER_METRICS_PORT.",
    )
    args = parser.parse_args(argv)
    settings = HubSettings()
    configure_logging(settings.log_level, settings.log_format)  # as the run that started it
    try:
        drain(settings, args.timeout, args.follow, args.poll, args.agency, args.metrics_port)
    except HubError as exc:
        say(f"error: {exc}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
