"""`hub demo`, the command behind `make demo`, run as a user would, twice, with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hub.ops.broker.launcher import port_is_free
from hub.ops.prometheus import Prometheus
from hub.settings import HubSettings
from tests.support.grafana import panel_queries
from tests.support.processes import free_port, metrics_text, scrape, settings_env
from tests.support.promtool import check_metrics


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def every_panel_has_data(settings: HubSettings) -> None:
    """The acceptance check: the demo's Prometheus answers every dashboard query."""
    prometheus = Prometheus(settings, Path("unused"), settings.prometheus_port)
    deadline = time.monotonic() + 120  # the shipped 15 s scrape and rule intervals
    missing = panel_queries()
    while missing and time.monotonic() < deadline:
        missing = [q for q in missing if not prometheus.query(q[2])]
        time.sleep(2)
    assert missing == []


def run_demo_until_counts(
    settings: HubSettings, cwd: Path, while_running: Callable[[], None] = lambda: None
) -> tuple[dict[str, float], dict[str, float]]:
    url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
    trends_url = f"http://127.0.0.1:{settings.publisher_metrics_port}/metrics"
    adapters_url = f"http://127.0.0.1:{settings.adapter_metrics_port}/metrics"
    out = cwd / "demo.out"
    with out.open("w") as log:
        demo = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "demo"],
            cwd=cwd,
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while "The hub is running" not in out.read_text():
            assert demo.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.5)
        for endpoint in (url, trends_url, adapters_url):
            check_metrics(metrics_text(endpoint))
        samples = scrape(url)
        trends = scrape(trends_url)
        adapters = scrape(adapters_url)
        rejected = sum(
            v for k, v in adapters.items() if k.startswith("hub_adapter_rows_rejected_total{")
        )
        assert rejected > 0  # the synthetic exports carry a few bad rows
        assert (cwd / ".demo" / "board-pack.html").stat().st_size > 10_000
        while_running()
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        demo.wait(120)
    assert "broker stopped" in out.read_text()
    assert "stream worker and publisher stopped" in out.read_text()
    return samples, trends


def test_demo_shows_counts_and_ctrl_c_leaves_nothing(
    broker_settings: HubSettings, tmp_path: Path
) -> None:
    settings = broker_settings.model_copy(
        update={
            "broker_data": tmp_path / "broker",
            "broker_port": free_port(),
            "controller_port": free_port(),
            "metrics_port": free_port(),
            "publisher_metrics_port": free_port(),
            "prometheus_port": free_port(),
            "adapter_metrics_port": free_port(),
            "topic_namespace": f"demo{tmp_path.name[-6:]}.",
        }
    )
    for attempt in (1, 2):  # running it again works
        check = (lambda: every_panel_has_data(settings)) if attempt == 1 else (lambda: None)
        samples, trends = run_demo_until_counts(settings, tmp_path, check)
        by_code = {k: v for k, v in samples.items() if k.startswith("hub_events_by_risk_code{")}
        assert by_code and all(v >= 0 for v in by_code.values()), attempt
        assert sum(by_code.values()) > 0, attempt
        assert samples["hub_events_counted"] > 0
        # The timetable had closed October 2026 (monthly) and Q3 (board) before today:
        # the publisher released them, with counts after disclosure control.
        assert trends['hub_trend_revision{publication="monthly"}'] >= 0
        assert trends['hub_trend_revision{publication="board-quarterly"}'] >= 0
        published = [
            v
            for k, v in trends.items()
            if k.startswith("hub_trend_published{") and "risk_code" in k
        ]
        assert published and all(v == 0 or v > 7 for v in published)
        assert sum(published) > 0
        assert processes_with(f"HUB_TOPIC_NAMESPACE={settings.topic_namespace}") == []
        for port in (
            settings.broker_port,
            settings.controller_port,
            settings.metrics_port,
            settings.publisher_metrics_port,
            settings.prometheus_port,
            settings.adapter_metrics_port,
        ):
            assert port_is_free("127.0.0.1", port)
    # The second run republished the first run's exports: the outbox knew every event.
    second_run = (tmp_path / "demo.out").read_text()
    assert second_run.count("; 0 new, 0 corrected, 0 withdrawn, ") == 6
