"""`hub demo` (and `make demo`): the whole hub on one machine until Ctrl-C.

Starts the local broker (unless one already runs), applies the topics,
starts the stream worker, publishes synthetic exports as several agencies
through the real adapter, starts the publisher (which releases the periods
the agreement's timetable has already closed, then follows the timetable),
then keeps publishing a small batch now and then. Ctrl-C (or SIGTERM) stops
the worker, the publisher and, if the demo started it, the broker, leaving
no process behind. Its files live in ``.demo/``.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from adapters.metrics import AgenciesMetrics, serve
from adapters.runner import adapter_run
from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.agreement.model import Agreement
from hub.errors import HubError
from hub.ops.broker import Broker
from hub.ops.prometheus import INSTALL, Prometheus, prometheus_binary
from hub.ops.topics import apply_topics, declared_topics
from hub.periods import period_label
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from hub.subscribe import published_rows

#: The partners the demo sends synthetic exports as, where the agreement names them.
DEMO_AGENCIES = ("camhs", "spa", "police", "school-nursing", "counselling", "education")
DEMO_DIR = Path(".demo")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Samples from a Prometheus endpoint (http://host:port/path) as {"name{labels}": value}."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=timeout
    )
    try:
        connection.request("GET", parts.path or "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_for_metrics(
    url: str, proc: subprocess.Popen[bytes], name: str, timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HubError(f"the {name} exited early; see {DEMO_DIR}/{name}.log")
        try:
            scrape(url)
            return
        except OSError:
            time.sleep(0.5)
    raise HubError(f"the {name} did not serve {url} within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def demo_agencies(agreement: Agreement) -> tuple[str, ...]:
    """The agreement's partners the demo simulates: those in DEMO_AGENCIES, or every
    partner when the agreement names none of them."""
    partners = tuple(p.id for p in agreement.partners)
    return tuple(a for a in partners if a in DEMO_AGENCIES) or partners


def run_demo(base: HubSettings, agreement: Agreement) -> None:
    # Installed explicitly: a shell starting this in the background ignores SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    DEMO_DIR.mkdir(exist_ok=True)
    key_file = DEMO_DIR / "partnership.key"
    if not key_file.exists():
        write_key_file(key_file, KeyRing.generate("demo"))
    settings = base.model_copy(
        update={
            "key_file": key_file,
            "worker_data": DEMO_DIR / "worker",
            "outbox": DEMO_DIR / "outbox.sqlite",
        }
    )
    broker = Broker(settings)
    started_broker = broker.pid() is None
    processes: list[subprocess.Popen[bytes]] = []
    prometheus: Prometheus | None = None
    url = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
    trends_url = f"http://{settings.metrics_host}:{settings.publisher_metrics_port}/metrics"
    adapters = AgenciesMetrics(demo_agencies(agreement))
    registry = CollectorRegistry()
    registry.register(adapters)
    adapter_url = f"http://{settings.metrics_host}:{settings.adapter_metrics_port}/metrics"
    pack = DEMO_DIR / "board-pack.html"
    stack = ExitStack()
    try:
        print("[1/5] starting the Kafka broker ...", flush=True)
        print("      " + broker.start().describe(), flush=True)
        declared = declared_topics(settings, agreement)
        print(f"[2/5] topics: {apply_topics(settings, declared).summary()}")
        print("[3/5] starting the stream worker ...", flush=True)
        worker = _start(settings, "worker")
        processes.append(worker)
        wait_for_metrics(url, worker, "worker")
        print("[4/5] agencies publishing synthetic exports ...", flush=True)
        stack.enter_context(serve(registry, settings.metrics_host, settings.adapter_metrics_port))
        publish_round(settings, agreement, seed=1, rows=400, metrics=adapters)
        time.sleep(3)
        _show(url)
        print("[5/5] starting the publisher (releases closed periods) ...", flush=True)
        publisher = _start(settings, "publisher")
        processes.append(publisher)
        wait_for_metrics(trends_url, publisher, "publisher")
        _show_trends(trends_url)
        _write_pack(settings, agreement, pack)
        prometheus = _start_prometheus(settings)
        print(
            f"\nThe hub is running. Worker metrics: {url}\n"
            f"  curl -s {url} | grep hub_events_by_risk_code   (events per online-risk code)\n"
            "  hub_events_counted, hub_duplicates_dropped_total: records, replays dropped\n"
            f"Published trends (after disclosure control): {trends_url}\n"
            f"  curl -s {trends_url} | grep 'hub_trend_published{{.*risk_code'\n"
            f"The agencies' adapters (rows read, rejected by field, sent): {adapter_url}\n"
            + (f"The board pack of the last quarter: {pack.resolve()}\n" if pack.exists() else "")
            + (
                f"Prometheus (scraping all three, with the recording rules): {prometheus.url}\n"
                if prometheus
                else ""
            )
            + "A new small batch is published every 20 s. Ctrl-C stops everything.\n",
            flush=True,
        )
        batch = int(time.time())
        while True:
            time.sleep(20)
            batch += 1
            publish_round(settings, agreement, seed=batch, rows=25, metrics=adapters, quiet=True)
            _show(url, brief=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.close()
        if prometheus is not None:
            prometheus.stop()
        for proc in reversed(processes):
            stop_process(proc)
        if processes:
            print("stream worker and publisher stopped", flush=True)
        if started_broker and broker.stop():
            print("broker stopped", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(settings: HubSettings, service: str) -> subprocess.Popen[bytes]:
    """`hub streams SERVICE` in its own session, logging to .demo/SERVICE.log."""
    env = settings.to_env()  # the demo's settings, its log level and format too
    log = (DEMO_DIR / f"{service}.log").open("ab")
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "streams", service],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def publish_round(
    settings: HubSettings,
    agreement: Agreement,
    seed: int,
    rows: int,
    metrics: AgenciesMetrics,
    quiet: bool = False,
) -> None:
    """Each demo agency writes an export and runs it through the real adapter and outbox."""
    exports = DEMO_DIR / "exports"
    exports.mkdir(exist_ok=True)
    pool = child_pool(1500)  # most children known to one agency, some to several
    for agency in demo_agencies(agreement):
        path = exports / f"{agency}-{seed}.csv"
        write_csv(path, synth_rows(agency, rows, seed, pool, until=date.today()))
        with adapter_run(
            settings,
            "generic",
            agency,
            quarantine=DEMO_DIR / "quarantine",
            metrics=metrics.by_agency[agency],
            agreement=agreement,
        ) as run:
            summary = run.ingest_file(path)
            run.drain(timeout=60)
        if not quiet:
            print("      " + summary.line(), flush=True)
        path.unlink()


def _show(url: str, brief: bool = False) -> None:
    samples = scrape(url)
    by_code = {
        k.split('"')[1]: v for k, v in samples.items() if k.startswith("hub_events_by_risk_code{")
    }
    counted = int(samples.get("hub_events_counted", 0))
    dropped = int(samples.get("hub_duplicates_dropped_total", 0))
    print(f"  {counted} case records counted, {dropped} replays dropped", flush=True)
    if brief:
        return
    for code, value in sorted(by_code.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {code:<36} {int(value):>6}")


def _show_trends(url: str, timeout: float = 120.0) -> None:
    """Wait for the publisher's first releases and print their headline cells."""
    deadline = time.monotonic() + timeout
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        samples = scrape(url)
        if any(k.startswith("hub_trend_revision{") for k in samples):
            break
        time.sleep(1)
    else:
        print(f"      nothing released yet; see {DEMO_DIR}/publisher.log", flush=True)
        return
    for key, value in sorted(samples.items()):
        if key.startswith("hub_trend_published{") and 'dimension="total"' in key:
            labels = {
                name: text.strip('"')
                for name, text in (part.split("=", 1) for part in key[16:-1].split(","))
            }
            publication, measure = labels["publication"], labels["measure"]
            print(f"      {publication:<16} {measure:<30} {int(value):>6}", flush=True)


def _write_pack(settings: HubSettings, agreement: Agreement, out: Path) -> None:
    """The board pack of the quarter the timetable closed last, once it is published."""
    board = next(s for s in agreement.publication if s.closes == "quarter")
    now = datetime.now(UTC)
    quarter = agreement.closed_period(board.name, agreement.previous_publication(board.name, now))
    label = period_label("quarter", quarter)
    try:
        from hub.report import write_pack
    except ImportError:
        print("      no board pack: install the report extra (make setup does)", flush=True)
        return
    deadline = time.monotonic() + 60
    while True:
        try:
            written = write_pack(published_rows(settings), agreement, label, out)
            break
        except HubError as exc:  # the quarter is being released right now
            if time.monotonic() > deadline:
                print(f"      no board pack: {exc}", flush=True)
                return
            time.sleep(2)
    print(f"      board pack for {label} (revision {written.revision}): {out}", flush=True)


def _start_prometheus(settings: HubSettings) -> Prometheus | None:
    """Debian's Prometheus on the shipped configuration, when it is installed."""
    if prometheus_binary() is None:
        print(f"      Prometheus is not installed, so not started ({INSTALL})", flush=True)
        return None
    prometheus = Prometheus(settings, DEMO_DIR / "prometheus", settings.prometheus_port)
    try:
        prometheus.start()
    except HubError as exc:
        print(f"      Prometheus did not start: {exc}", flush=True)
        return None
    return prometheus
