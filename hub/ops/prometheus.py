"""Debian's Prometheus, run by the hub for the demo and the tests.

The configuration is ``deploy/prometheus/prometheus.yml`` with its recording
rules (``rules.yml``) and alerting rules (``alerts.yml``); only the scrape
targets (the ports in use) and, for tests, the intervals are rewritten.
Prometheus itself is not bundled: it is the ``prometheus`` package of the
machine (``apt-get install prometheus``).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from hub import resources
from hub.errors import HubError
from hub.settings import HubSettings

CONFIG = resources.deploy("prometheus", "prometheus.yml")
INSTALL = "install Debian's package: sudo apt-get update && sudo apt-get install prometheus"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def recording_rules() -> list[dict[str, str]]:
    """Every recording rule in the shipped rules file (record name and expression)."""
    rules_file = CONFIG.parent / "rules.yml"
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


def render_config(settings: HubSettings, interval: str | None = None) -> dict[str, Any]:
    """The shipped configuration, pointed at this hub's metrics ports."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    targets = {
        "hub-worker": f"{settings.metrics_host}:{settings.metrics_port}",
        "hub-publisher": f"{settings.metrics_host}:{settings.publisher_metrics_port}",
        "hub-adapters": f"{settings.metrics_host}:{settings.adapter_metrics_port}",
    }
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config["rule_files"] = [str(CONFIG.parent / name) for name in config["rule_files"]]
    if interval is not None:
        config["global"]["scrape_interval"] = interval
        config["global"]["evaluation_interval"] = interval
    return config


class Prometheus:
    """One Prometheus process with its own data directory and port."""

    def __init__(
        self, settings: HubSettings, data: Path, port: int, interval: str | None = None
    ) -> None:
        self.settings = settings
        self.data = data
        self.port = port
        self.interval = interval
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise HubError(f"prometheus is not installed: {INSTALL}")
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.data / "prometheus.yml"
        config.write_text(yaml.safe_dump(render_config(self.settings, self.interval)))
        log = (self.data / "prometheus.log").open("ab")
        with log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HubError(
                    f"prometheus exited (status {self.proc.returncode});"
                    f" see {self.data / 'prometheus.log'}"
                )
            try:
                if self._get("/-/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise HubError(f"prometheus was not ready on {self.url} within {timeout:.0f} s")

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant PromQL query: the result vector (metric labels and value)."""
        status, text = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
        body = json.loads(text)
        if status != 200 or body.get("status") != "success":
            raise HubError(f"PromQL {expression!r} failed: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def _get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
