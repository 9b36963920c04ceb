"""Store-and-forward against real brokers: Kafka stopped mid-run, the adapter SIGKILLed mid-file."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from adapters.mapping import RowMapper
from adapters.metrics import AdapterMetrics
from adapters.outbox import Outbox, OutboxItem
from adapters.pipeline import Backoff, Forwarder
from adapters.profile import load_profile
from adapters.publishers.base import KafkaUnavailable
from adapters.publishers.kafka_python import KafkaPythonPublisher
from adapters.runner import adapter_run
from adapters.sources.delimited import CsvSource
from adapters.sources.http_push import serve
from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.errors import OutboxError, RecordError
from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings
from tests.support.agreements import agreement_of
from tests.support.http_push import good
from tests.support.outbox import event_ids_on, outbox_counts, wait_for
from tests.support.processes import WorkerProcess, free_port, hub, scrape, settings_env
from tests.support.publishing import ground_truth


def expected_event_ids(settings: HubSettings, path: Path, agency: str) -> set[str]:
    profile = load_profile("generic")
    mapper = RowMapper(profile, Pseudonymiser.from_settings(settings), str(path), agency=agency)
    ids = set()
    for item in CsvSource(path, profile).records():
        if isinstance(item, RecordError):
            continue
        try:
            ids.add(mapper.map(item.row, item.values).event_id)
        except RecordError:
            continue
    return ids


def db(outbox: Outbox) -> sqlite3.Connection:
    """The outbox's own connection, to make its disk full or read-only (PRAGMAs)."""
    return outbox._db  # noqa: SLF001


def test_outbox_stores_each_event_once_and_keeps_watermarks(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    items = [OutboxItem(f"e{i}", "t", b"k", b"v") for i in range(5)]
    assert outbox.put(items) == 5
    assert outbox.put(items[:3], watermark=("db", "2026-10-01T00:00:00")) == 0
    assert outbox.watermark("db") == "2026-10-01T00:00:00"
    outbox.mark_sent(["e0", "e1"])
    assert outbox.counts() == (3, 2)
    assert [i.event_id for i in outbox.pending()] == ["e2", "e3", "e4"]
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite")  # durable across processes
    assert reopened.counts() == (3, 2)
    reopened.close()


def test_kafka_stopped_mid_run_loses_nothing(
    hub_settings: HubSettings, private_broker: Broker, tmp_path: Path
) -> None:
    settings = hub_settings.model_copy(
        update={
            "broker_data": private_broker.settings.broker_data,
            "broker_port": private_broker.settings.broker_port,
            "controller_port": private_broker.settings.controller_port,
        }
    )
    private_broker.start(quiet=True)
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    drop = tmp_path / "drop"
    drop.mkdir()
    pool = child_pool(80)
    exports = []
    for seed in (1, 2, 3):
        path = tmp_path / f"export-{seed}.csv"
        write_csv(path, synth_rows("camhs", 300, seed, pool))
        exports.append(path)
    expected = set().union(*(expected_event_ids(settings, p, "camhs") for p in exports))

    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "adapter",
            "run",
            "--profile",
            "generic",
            "--agency",
            "camhs",
            "--watch",
            str(drop),
            "--quarantine",
            str(tmp_path / "q"),
        ],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        exports[0].rename(drop / exports[0].name)
        wait_for(
            lambda: (
                outbox_counts(settings.outbox)[1] > 0 and outbox_counts(settings.outbox)[0] == 0
            ),
            60,
            "the first file to be sent",
        )

        private_broker.stop()  # Kafka goes away mid-run
        for path in exports[1:]:
            path.rename(drop / path.name)
        wait_for(
            lambda: len(list((drop / "done").iterdir())) == 3,
            60,
            "the adapter to accept files while Kafka is down",
        )
        pending, _ = outbox_counts(settings.outbox)
        assert pending > 0  # held, not lost, not dropped

        private_broker.start(quiet=True)  # Kafka comes back
        wait_for(lambda: outbox_counts(settings.outbox)[0] == 0, 120, "the outbox to drain")
    finally:
        os.killpg(watcher.pid, signal.SIGINT)
        output = watcher.communicate(timeout=60)[0].decode()
    on_topic = event_ids_on(settings, settings.case_topic("camhs"))
    assert set(on_topic) == expected, output[-2000:]
    assert outbox_counts(settings.outbox) == (0, len(expected))


def test_adapter_sigkilled_mid_file_resumes_without_duplicates_counted(
    topics: HubSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = topics
    path = tmp_path / "big.csv"
    write_csv(path, synth_rows("police", 30_000, 4, child_pool(2000)))
    expected = expected_event_ids(settings, path, "police")
    command = [
        sys.executable,
        "-m",
        "hub.cli",
        "adapter",
        "run",
        "--profile",
        "generic",
        "--agency",
        "police",
        "--quarantine",
        str(tmp_path / "q"),
        str(path),
    ]

    first = subprocess.Popen(
        command,
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(
        lambda: outbox_counts(settings.outbox)[1] > 0 or first.poll() is not None,
        120,
        "the first events to be sent",
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    pending, sent = outbox_counts(settings.outbox)
    assert 0 < sent < len(expected), (pending, sent)  # really killed part-way

    second = subprocess.run(
        command,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert outbox_counts(settings.outbox) == (0, len(expected))
    assert set(event_ids_on(settings, settings.case_topic("police"))) == expected

    truth = ground_truth({"police": path}, Pseudonymiser.from_settings(settings))
    worker.start()
    deadline = time.monotonic() + 180
    while worker.metrics().get("hub_events_counted", 0) < truth.records:
        assert time.monotonic() < deadline, "the worker did not count every record"
        time.sleep(0.5)
    time.sleep(3)
    assert worker.metrics()["hub_events_counted"] == truth.records


# --- supervised forwarding: outages, disk errors, a damaged outbox ------------------------
def test_outbox_errors_name_the_file_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    outbox = Outbox(path)
    try:
        outbox.put([OutboxItem("e0", "t", b"k", b"v")])
        pages = db(outbox).execute("PRAGMA page_count").fetchone()[0]
        db(outbox).execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        with pytest.raises(OutboxError) as full:
            outbox.put([OutboxItem(f"e{i}", "t", b"k", b"v" * 500) for i in range(1, 100)])
        assert full.value.kind == "full" and not full.value.fatal
        assert str(path) in str(full.value) and "Free space" in str(full.value)
        assert outbox.counts() == (1, 0)  # the failed transaction left nothing behind
        db(outbox).execute("PRAGMA query_only = ON")  # as a read-only file or mount would
        with pytest.raises(OutboxError) as readonly:
            outbox.mark_sent(["e0"])
        assert readonly.value.kind == "readonly" and "permission" in str(readonly.value)
    finally:
        outbox.close()

    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"not a database" * 500)
    with pytest.raises(OutboxError) as corrupt:
        Outbox(damaged)
    assert corrupt.value.fatal and str(damaged) in str(corrupt.value)
    assert "move it aside" in str(corrupt.value) and "lost" in str(corrupt.value)
    assert "\n" not in str(corrupt.value)


class _RecordingPublisher:
    """Acknowledges everything, counting what it was given per event id."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def send(self, items: Sequence[OutboxItem]) -> list[str]:
        self.sent.update(i.event_id for i in items)
        return [i.event_id for i in items]

    def close(self) -> None:
        pass


class _BrokenPublisher:
    """kafka-python after an outage: send raises a timeout, and so does close."""

    def __init__(self) -> None:
        self.closed = 0

    def send(self, items: Sequence[OutboxItem]) -> list[str]:
        raise TimeoutError("Timeout waiting for future")

    def close(self) -> None:
        self.closed += 1
        raise TimeoutError("Timeout after waiting for 5 secs")


def test_forwarder_replaces_a_broken_client_and_retries_the_mark_without_resending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite"
    writer = Outbox(path)
    writer.put(
        OutboxItem(f"event-{i:04d}-{'x' * 30}", "t", b"k" * 40, b"v" * 100) for i in range(200)
    )
    forwarding = Outbox(path)
    pages = db(forwarding).execute("PRAGMA page_count").fetchone()[0]
    db(forwarding).execute(f"PRAGMA max_page_count = {pages}")  # the disk fills up
    broken, recording = _BrokenPublisher(), _RecordingPublisher()
    registry = CollectorRegistry()
    metrics = AdapterMetrics(registry, "camhs")
    forwarder = Forwarder(
        forwarding,
        broken,
        metrics,
        new_publisher=lambda: recording,
        backoff=Backoff(0.05, 0.2),
    )
    stop = threading.Event()
    thread = threading.Thread(target=forwarder.follow, args=(stop, 0.05))
    with caplog.at_level(logging.INFO, logger="adapters"):
        thread.start()
        try:
            wait_for(lambda: forwarder.status.read()[0] == "outbox_error", 10, "the mark to fail")
            assert broken.closed == 1  # discarded, and a new client made
            state, detail, _ = forwarder.status.read()
            assert "is full" in detail and str(path) in detail
            time.sleep(0.5)  # several retries of the mark, none of the send
            assert set(recording.sent.values()) == {1} and len(recording.sent) == 200
            assert writer.counts() == (200, 0)
            db(forwarding).execute("PRAGMA max_page_count = 1073741823")  # space is back
            wait_for(lambda: writer.counts() == (0, 200), 10, "the mark to succeed")
            assert forwarder.status.read()[0] == "sending"
        finally:
            stop.set()
            thread.join(10)
    assert forwarder.status.read()[0] == "stopped"
    assert set(recording.sent.values()) == {1}  # each event sent once
    assert registry.get_sample_value("hub_adapter_events_sent_total", {"agency": "camhs"}) == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("forwarder waiting for kafka" in m for m in warnings) == 1, warnings
    assert sum("forwarder outbox error" in m for m in warnings) == 1, warnings
    assert sum("sending again" in m for m in warnings) == 1, warnings
    writer.close()
    forwarding.close()


def test_a_damaged_outbox_stops_the_forwarder_and_says_so(tmp_path: Path) -> None:
    damaged = tmp_path / "outbox.sqlite"
    damaged.write_bytes(b"not a database" * 500)
    forwarder = Forwarder(lambda: Outbox(damaged), _RecordingPublisher(), backoff=Backoff(0, 0))
    with pytest.raises(OutboxError, match="damaged"):
        forwarder.follow(threading.Event(), 0.05)
    assert forwarder.status.read()[0] == "failed"

    settings = HubSettings(outbox=damaged, bootstrap="127.0.0.1:1")
    result = hub(settings, "adapter", "drain", "--follow", "--metrics-port", "0")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: The outbox"), result.stderr
    assert "move it aside" in lines[0] and "lost" in lines[0]

    alone = drain_module(settings, "--follow", "--metrics-port", "0")
    assert alone.returncode == 1 and alone.stderr.strip() == result.stderr.strip()


def drain_module(settings: HubSettings, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m adapters.drain ARGS...``, the process a one-shot run starts beside itself."""
    return subprocess.run(
        [sys.executable, "-m", "adapters.drain", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_drain_runs_without_the_hub_command(tmp_path: Path) -> None:
    settings = HubSettings(outbox=tmp_path / "outbox.sqlite", bootstrap="127.0.0.1:1")
    result = drain_module(settings, "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"0 events sent; outbox {settings.outbox} is empty"
    assert drain_module(settings, "--metrics-port", "-1").returncode == 2  # a usage error

    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, adapters.drain, adapters.runner;"
            " import adapters.sources.http_push, adapters.sources.sql;"
            " print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'hub')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'click'" not in imported.stdout and "hub.cli" not in imported.stdout


#: How long Kafka stays away in the outage tests (from the broker's stop to its start).
OUTAGE = 60.0


def outage_settings(hub_settings: HubSettings, broker: Broker) -> HubSettings:
    """The test's settings on its private broker, with short timeouts and retries."""
    return hub_settings.model_copy(
        update={
            "broker_data": broker.settings.broker_data,
            "broker_port": broker.settings.broker_port,
            "controller_port": broker.settings.controller_port,
            "adapter_metrics_port": free_port(),
            "publish_timeout": 5.0,
            "forwarder_backoff": 0.2,
            "forwarder_backoff_max": 2.0,
            "forwarder_stale_after": 3.0,
        }
    )


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
            return int(response.status), dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        with exc:  # an error answer holds the connection until it is closed
            return exc.code, dict(json.loads(exc.read()))


def push(url: str, token: str, items: list[dict[str, Any]]) -> int:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url,
        data=json.dumps(items).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = json.loads(response.read())
    assert response.status == 202 and body["new"] == len(items), body
    return len(items)


def forwarder_metrics(url: str, agency: str) -> dict[str, float]:
    scraped = scrape(url)
    found = {
        key.split('state="')[1].split('"')[0]: value
        for key, value in scraped.items()
        if key.startswith("hub_adapter_forwarder_state{")
    }
    for name in ("hub_adapter_forwarder_stalled", "hub_adapter_outbox_oldest_pending_seconds"):
        found[name] = scraped[f'{name}{{agency="{agency}"}}']
    return found


def without_client_noise(output: str) -> str:
    """`output` without the Kafka client's connection errors and the /health polls, which
    would push what the adapter itself said out of a failing test's report."""
    noise = ("kafka.net.", "kafka.cluster:", "kafka.conn:", "GET /health ")
    return "\n".join(line for line in output.splitlines() if not any(n in line for n in noise))


def exactly_once_on_topic(settings: HubSettings, topic: str, expected: int) -> None:
    on_topic = event_ids_on(settings, topic)
    assert len(on_topic) == len(set(on_topic)) == expected, (len(on_topic), expected)


# kafka-python leaves the socket of each refused connection to the garbage collector:
# this test's producer meets Kafka gone in this process, so they are collected here,
# and its log records (which would hold them until the test is reported) are not made.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
def test_the_first_send_after_kafka_returns_is_delivered(
    hub_settings: HubSettings, private_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A producer that failed during an outage is not kept: one that waits out its own
    reconnect backoff would fail the sends after Kafka is back for up to 30 s."""
    caplog.set_level(logging.CRITICAL, logger="kafka")
    settings = outage_settings(hub_settings, private_broker)
    private_broker.start(quiet=True)
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    topic = settings.case_topic("camhs")
    threads_before = set(threading.enumerate())
    publisher = KafkaPythonPublisher(settings)

    def items(batch: int) -> list[OutboxItem]:
        ids = [f"B{batch}-{i}" for i in range(40)]
        return [OutboxItem(i, topic, i.encode(), i.encode()) for i in ids]

    try:
        assert len(publisher.send(items(1))) == 40
        private_broker.stop()
        stopped, batch = time.monotonic(), 1
        while time.monotonic() - stopped < 40:  # long enough for its backoff to grow
            batch += 1
            try:
                assert publisher.send(items(batch)) == []
            except KafkaUnavailable:
                time.sleep(1)
        private_broker.start(quiet=True)
        assert len(publisher.send(items(0))) == 40  # at the first try
    finally:
        publisher.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        on_topic = Counter(m.value.decode() for m in consumer)
    finally:
        consumer.close()
    assert on_topic == Counter(i.event_id for i in items(1) + items(0))
    # The producers dropped stop their threads in their own time: wait for them, so
    # that what they leave is collected within this test.
    wait_for(lambda: set(threading.enumerate()) <= threads_before, 30, "the producers' threads")
    gc.collect()


def test_serve_rides_out_a_kafka_outage_and_sends_every_event_once(
    hub_settings: HubSettings, private_broker: Broker, tmp_path: Path
) -> None:
    settings = outage_settings(hub_settings, private_broker)
    private_broker.start(quiet=True)
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    token = "t" * 40
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({token: "kooth"}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    metrics_url = f"http://127.0.0.1:{settings.adapter_metrics_port}/metrics"
    adapter = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "adapter", "run", "--profile", "generic"]
        + ["--agency", "camhs", "--serve", str(port), "--tokens", str(tokens)]
        + ["--quarantine", str(tmp_path / "q")],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def health() -> tuple[int, dict[str, Any]]:
        assert adapter.poll() is None, "the adapter exited"
        try:
            return get_json(f"{base}/health")
        except OSError:
            return 0, {}

    def items(batch: int) -> list[dict[str, Any]]:
        return [good(f"B{batch}-{i}") for i in range(40)]

    try:
        wait_for(lambda: health()[0] == 200, 30, "the endpoint")
        accepted = push(f"{base}/events", token, items(1))
        wait_for(lambda: health()[1].get("pending") == 0, 30, "the first batch to be sent")

        private_broker.stop()  # Kafka goes away
        stopped = time.monotonic()
        accepted += push(f"{base}/events", token, items(2))  # still accepted
        wait_for(lambda: health()[0] == 503, 40, "/health to say the forwarder is stalled")
        status, body = health()
        assert body["forwarder"] == "waiting_for_kafka" and body["pending"] == 40, body
        assert body["oldest_pending_seconds"] > settings.forwarder_stale_after
        assert "Kafka" in body["detail"]
        seen = forwarder_metrics(metrics_url, "camhs")
        assert seen["waiting_for_kafka"] == 1 and seen["sending"] == 0, seen
        assert seen["hub_adapter_forwarder_stalled"] == 1
        assert seen["hub_adapter_outbox_oldest_pending_seconds"] > 3
        accepted += push(f"{base}/events", token, items(3))
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        assert health()[0] == 503

        private_broker.start(quiet=True)  # Kafka is back; the adapter was never restarted
        wait_for(
            lambda: health() == (200, health()[1]) and health()[1]["pending"] == 0,
            60,
            "the outbox to drain",
        )
        assert health()[1]["forwarder"] == "sending"
        assert forwarder_metrics(metrics_url, "camhs")["hub_adapter_forwarder_stalled"] == 0
    finally:
        os.killpg(adapter.pid, signal.SIGINT)
        output = adapter.communicate(timeout=60)[0].decode()
        print(without_client_noise(output))  # shown when the test fails
    exactly_once_on_topic(settings, settings.case_topic("camhs"), accepted)
    assert output.count("forwarder waiting for kafka") == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_watch_rides_out_a_kafka_outage_and_sends_every_event_once(
    hub_settings: HubSettings, private_broker: Broker, tmp_path: Path
) -> None:
    settings = outage_settings(hub_settings, private_broker)
    private_broker.start(quiet=True)
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    metrics_url = f"http://127.0.0.1:{settings.adapter_metrics_port}/metrics"
    drop = tmp_path / "drop"
    drop.mkdir()
    pool = child_pool(60)
    exports = []
    for seed in (1, 2, 3):
        path = tmp_path / f"export-{seed}.csv"
        write_csv(path, synth_rows("camhs", 150, seed, pool))
        exports.append(path)
    expected = set().union(*(expected_event_ids(settings, p, "camhs") for p in exports))
    watcher = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "adapter", "run", "--profile", "generic"]
        + ["--agency", "camhs", "--watch", str(drop), "--quarantine", str(tmp_path / "q")],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def state() -> dict[str, float]:
        assert watcher.poll() is None, "the adapter exited"
        try:
            return forwarder_metrics(metrics_url, "camhs")
        except (OSError, KeyError):
            return {}

    try:
        exports[0].rename(drop / exports[0].name)
        wait_for(
            lambda: (
                outbox_counts(settings.outbox)[1] > 0 and outbox_counts(settings.outbox)[0] == 0
            ),
            60,
            "the first file to be sent",
        )
        private_broker.stop()
        stopped = time.monotonic()
        exports[1].rename(drop / exports[1].name)
        wait_for(lambda: state().get("hub_adapter_forwarder_stalled") == 1, 40, "stalled")
        seen = state()
        assert seen["waiting_for_kafka"] == 1 and seen["sending"] == 0, seen
        assert seen["hub_adapter_outbox_oldest_pending_seconds"] > 3
        exports[2].rename(drop / exports[2].name)
        wait_for(lambda: len(list((drop / "done").iterdir())) == 3, 30, "the files to be read")
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        assert outbox_counts(settings.outbox)[0] > 0

        private_broker.start(quiet=True)
        wait_for(lambda: outbox_counts(settings.outbox)[0] == 0, 60, "the outbox to drain")
        wait_for(lambda: state().get("sending") == 1, 10, "the forwarder to say sending")
        assert state()["hub_adapter_forwarder_stalled"] == 0
    finally:
        os.killpg(watcher.pid, signal.SIGINT)
        output = watcher.communicate(timeout=60)[0].decode()
        print(without_client_noise(output))  # shown when the test fails
    assert outbox_counts(settings.outbox) == (0, len(expected))
    exactly_once_on_topic(settings, settings.case_topic("camhs"), len(expected))
    assert output.count("forwarder waiting for kafka") == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_a_full_disk_and_a_read_only_outbox_are_ridden_out_without_resending(
    topics: HubSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = topics.model_copy(
        update={
            "forwarder_backoff": 0.1,
            "forwarder_backoff_max": 0.5,
            "forwarder_stale_after": 1.0,
        }
    )
    opened: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = real_connect(*args, **kwargs)
        opened.append(connection)
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    token = "t" * 40
    with (
        caplog.at_level(logging.INFO, logger="adapters"),
        adapter_run(settings, "generic", "camhs", quarantine=tmp_path / "q") as run,
        serve(run, "127.0.0.1", free_port(), {token: "kooth"}) as endpoint,
        run.forwarding_in_background(poll=0.1),
    ):
        assert run.outbox is not None
        ingesting = db(run.outbox)
        events, health = f"{endpoint.url}/events", f"{endpoint.url}/health"
        accepted = push(events, token, [good(f"A-{i}") for i in range(40)])
        wait_for(lambda: get_json(health)[1]["pending"] == 0, 30, "the first batch to be sent")
        # The forwarder's own connection (its thread's outbox), not the scrapes' short ones.
        (forwarding,) = [c for c in opened if c is not ingesting and c.isolation_level is None]

        # The disk is full: a push is refused with 503, the log says why, nothing is lost.
        for connection in (ingesting, forwarding):
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            push(events, token, [good(f"B-{i}") for i in range(200)])
        refused.value.close()
        assert refused.value.code == 503
        assert "is full" in caplog.text and "Free space" in caplog.text
        assert get_json(health)[0] == 200  # nothing waits: the forwarder is fine
        for connection in (ingesting, forwarding):
            connection.execute("PRAGMA max_page_count = 1073741823")  # space is back

        # The outbox turns read-only under the forwarder: what Kafka acknowledged is kept
        # in memory and marked once it can be, never sent twice.
        forwarding.execute("PRAGMA query_only = ON")
        accepted += push(events, token, [good(f"C-{i}") for i in range(40)])
        wait_for(lambda: get_json(health)[0] == 503, 30, "/health to report the outbox error")
        body = get_json(health)[1]
        assert body["forwarder"] == "outbox_error" and body["pending"] == 40, body
        assert "cannot be written" in body["detail"] and str(settings.outbox) in body["detail"]
        assert run.metrics is not None
        assert (
            run.metrics.registry.get_sample_value(
                "hub_adapter_forwarder_state", {"agency": "camhs", "state": "outbox_error"}
            )
            == 1
        )
        time.sleep(1)  # several retries of the mark
        forwarding.execute("PRAGMA query_only = OFF")
        wait_for(lambda: get_json(health)[1]["pending"] == 0, 30, "the mark to succeed")
        assert get_json(health)[0] == 200
    exactly_once_on_topic(settings, settings.case_topic("camhs"), accepted)
    assert caplog.text.count("forwarder outbox error") == 1
