"""Store-and-forward against real brokers: Kafka stopped mid-run, the adapter SIGKILLed mid-file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kafka import KafkaConsumer

from adapters.csv_source import CsvSource
from adapters.mapping import RowMapper
from adapters.outbox import Outbox, OutboxItem
from adapters.profile import load_profile
from adapters.synth import child_pool, synth_rows, write_csv
from hub.broker import Broker
from hub.codec import Codec
from hub.errors import RecordError
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings
from hub.topics import apply_topics, declared_topics
from tests.conftest import WorkerProcess, ground_truth, settings_env


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


def event_ids_on(settings: HubSettings, topic: str) -> list[str]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    codec = Codec("case_event")
    try:
        return [codec.decode(m.value)["event_id"] for m in consumer]
    finally:
        consumer.close()


def outbox_counts(path: Path) -> tuple[int, int]:
    """(pending, sent), read from a connection of the test's own, as another process would."""
    if not path.exists():
        return 0, 0
    db = sqlite3.connect(path, timeout=30)
    try:
        row = db.execute(
            "SELECT COALESCE(SUM(sent_at IS NULL), 0), COALESCE(SUM(sent_at IS NOT NULL), 0)"
            " FROM outbox"
        ).fetchone()
    except sqlite3.OperationalError:  # the adapter has not created its tables yet
        return 0, 0
    finally:
        db.close()
    return int(row[0]), int(row[1])


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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
    apply_topics(settings, declared_topics(settings))
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
