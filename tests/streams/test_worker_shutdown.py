"""A stream worker stops when told to, even when Kafka has gone away."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.agreements import agreement_of
from tests.support.processes import WorkerProcess


def test_sigterm_stops_a_worker_whose_broker_is_gone(
    private_broker: Broker, hub_settings: HubSettings, tmp_path: Path
) -> None:
    own = private_broker.settings
    settings = hub_settings.model_copy(
        update={
            "broker_data": own.broker_data,
            "broker_port": own.broker_port,
            "controller_port": own.controller_port,
            "shutdown_timeout": 5.0,
        }
    )
    private_broker.start(quiet=True)
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while worker.metrics().get("hub_worker_partitions", 0) == 0:
            assert time.monotonic() < deadline, "the worker never got its partitions"
            time.sleep(0.5)
        private_broker.stop()

        assert worker.proc is not None
        asked = time.monotonic()
        os.killpg(worker.proc.pid, signal.SIGTERM)
        code = worker.proc.wait(60)  # without the deadline it never returns
        took = time.monotonic() - asked
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert code == 3, log[-3000:]
    assert "did not stop within 5 s (HUB_SHUTDOWN_TIMEOUT); is Kafka reachable?" in log
    assert 5 <= took < 30
