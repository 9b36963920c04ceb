"""`hub publish --now` with the publisher service running: the service, which already
holds the changelog, carries the release out and answers; the same cells as the command
computes on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from hub.settings import HubSettings
from streams.publish.requests import service_running
from tests.support.agreements import partner_ids
from tests.support.processes import WorkerProcess, free_port, hub, settings_env
from tests.support.scenario import Scenario, send

OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))


def wait_for_service(settings: HubSettings, service: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while not service_running(settings):
        if service.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no publisher service: {log.read_text()[-3000:]}")
        time.sleep(0.5)


def test_a_forced_release_is_served_by_the_running_publisher(
    topics: HubSettings, tmp_path: Path
) -> None:
    settings = topics.model_copy(update={"publisher_metrics_port": free_port()})
    scenario = Scenario.create(partner_ids(settings), children=200, seed=9)
    send(settings, scenario.new_records(1500, *OCTOBER), scenario.rnd, replay=0.1)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    log = tmp_path / "publisher.log"
    service: subprocess.Popen[bytes] | None = None
    try:
        worker.start()
        with log.open("wb") as out:
            service = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "streams", "publisher"],
                env=settings_env(settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_service(settings, service, log)

        # Late October records after the service's first release of October.
        send(settings, scenario.new_records(300, *OCTOBER), scenario.rnd, replay=0.0)
        forced = hub(
            settings,
            "publish",
            "--now",
            "--period",
            "2026-10",
            "--wait",
            "120",
            "--reason",
            "test release",
        )
        assert forced.returncode == 0, forced.stderr
        assert "released monthly 2026-10 revision 1" in forced.stdout
        assert "asked the running publisher service" in forced.stderr
        assert "forced release by" not in forced.stderr  # not computed here
        assert "forced release by" in log.read_text()

        early = hub(
            settings,
            "publish",
            "--now",
            "--period",
            "2099-01",
            "--wait",
            "10",
            "--reason",
            "test release",
        )
        assert early.returncode != 0
        assert "has not ended" in early.stderr and "Traceback" not in early.stderr
    finally:
        if service is not None and service.poll() is None:
            os.killpg(service.pid, 15)
            service.wait(30)
    try:
        # Alone, the command computes the release itself: nothing new to send.
        assert not service_running(settings)
        alone = hub(
            settings,
            "publish",
            "--now",
            "--period",
            "2026-10",
            "--wait",
            "120",
            "--reason",
            "test release",
        )
    finally:
        worker.stop()
    assert alone.returncode == 0, alone.stderr
    assert "forced release by" in alone.stderr
    assert "monthly 2026-10 unchanged since revision 1; nothing sent" in alone.stdout
