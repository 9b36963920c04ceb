"""Every long-running `hub` command stops on SIGTERM (a supervisor's stop) as it does on
Ctrl-C: cleanly, promptly, with exit status 0 and the same closing line. The push
endpoint's stop is tested in tests/adapters/test_push_hardening.py, the worker's forced
stop (exit status 3) in tests/streams/test_worker_shutdown.py."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from tests.support.processes import Started, WorkerProcess, signal_group

#: How long a clean stop may take here (no Kafka: the forwarder's send times out first).
PROMPTLY = 15.0


def offline_settings(tmp_path: Path) -> HubSettings:
    """An agency's settings with no Kafka to reach: what is ingested stays in the outbox."""
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    return HubSettings(
        key_file=key_file,
        outbox=tmp_path / "outbox.sqlite",
        bootstrap="127.0.0.1:1",
        publish_timeout=2.0,
        forwarder_backoff=0.5,
        forwarder_backoff_max=1.0,
    )


def test_a_watching_adapter_stops_on_sigterm(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    watcher = Started(
        offline_settings(tmp_path),
        tmp_path,
        *("adapter", "run", "--profile", "generic", "--agency", "camhs"),
        *("--watch", str(drop), "--quarantine", str(tmp_path / "q"), "--metrics-port", "0"),
    )
    try:
        watcher.wait_for("watching")
        export = tmp_path / "export.csv"
        write_csv(export, synth_rows("camhs", 20, 1, child_pool(20)))
        export.rename(drop / export.name)
        deadline = time.monotonic() + 60
        while not (drop / "done" / export.name).exists():
            assert time.monotonic() < deadline, watcher.stdout() + watcher.stderr()
            time.sleep(0.2)
        code, took = watcher.signal(signal.SIGTERM)
    finally:
        watcher.kill()
    assert code == 0, watcher.stderr()
    assert took < PROMPTLY
    assert watcher.stdout().splitlines()[-1] == "stopped watching"
    assert "Traceback" not in watcher.stderr()


def test_a_following_drain_stops_on_sigterm(tmp_path: Path) -> None:
    drain = Started(
        offline_settings(tmp_path), tmp_path, "adapter", "drain", "--follow", "--poll", "0.2"
    )
    try:
        drain.wait_for("until SIGTERM or Ctrl-C")
        code, took = drain.signal(signal.SIGTERM)
    finally:
        drain.kill()
    assert code == 0, drain.stderr()
    assert took < PROMPTLY
    assert drain.stdout().splitlines()[-1] == "stopped: 0 events sent"
    assert "Traceback" not in drain.stderr()


def test_a_following_subscriber_stops_on_sigterm(topics: HubSettings, tmp_path: Path) -> None:
    subscriber = Started(topics, tmp_path, "subscribe", "--follow")
    try:
        subscriber.wait_for("publication,period_start")  # the header: it follows now
        code, took = subscriber.signal(signal.SIGTERM)
    finally:
        subscriber.kill()
    assert code == 0, subscriber.stderr()
    assert took < PROMPTLY
    assert subscriber.stderr().splitlines()[-1] == "0 published cells"


def test_the_publisher_and_the_worker_stop_on_sigterm_logging_json(
    topics: HubSettings, tmp_path: Path
) -> None:
    """The publisher waiting for the worker's changelog and the publisher serving stop
    alike; the worker stops with status 0, and every line it logged, Faust's included,
    is one JSON object (HUB_LOG_FORMAT=json)."""
    settings = topics.model_copy(update={"log_format": "json"})
    waiting = Started(settings, tmp_path, "streams", "publisher")
    try:
        waiting.wait_for("waiting:")
        code, took = waiting.signal(signal.SIGTERM)
    finally:
        waiting.kill()
    assert (code, waiting.stderr().splitlines()[-1]) == (0, "publisher stopped"), waiting.stderr()
    assert took < PROMPTLY

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        publisher = Started(settings, tmp_path, "streams", "publisher")
        try:
            publisher.wait_for("publisher metrics on")
            code, took = publisher.signal(signal.SIGTERM)
        finally:
            publisher.kill()
        assert code == 0, publisher.stderr()
        assert publisher.stderr().splitlines()[-1] == "publisher stopped"
        assert took < PROMPTLY
        assert worker.proc is not None
        code, took = signal_group(worker.proc, signal.SIGTERM)
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log[-3000:]
    assert took < PROMPTLY
    lines = [line for line in log.splitlines() if not line.startswith("metrics on http")]
    entries = [json.loads(line) for line in lines]  # each line one object
    loggers = {entry["logger"].split(".", 1)[0] for entry in entries}
    assert {"faust", "mode"} & loggers, loggers
    assert all(entry["time"].endswith("Z") for entry in entries)
