"""Processes the tests drive: free ports, the `hub` command, a worker to SIGKILL, and
a reader of a Prometheus endpoint."""

from __future__ import annotations

import glob
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from hub.settings import HubSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metrics_text(url: str, timeout: float = 2.0) -> str:
    """The text a Prometheus endpoint (http://host:port/path) answers; OSError when
    nothing answers."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=timeout
    )
    try:
        connection.request("GET", parts.path or "/metrics")
        return connection.getresponse().read().decode("utf-8")
    finally:
        connection.close()


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Samples from a Prometheus text endpoint (http://host:port/path) as
    {"name{labels}": value}, labels sorted by name; OSError when nothing answers."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text(url, timeout)):
        for sample in family.samples:
            labels = ",".join(f'{name}="{value}"' for name, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def settings_env(settings: HubSettings) -> dict[str, str]:
    """The environment that makes a `hub` subprocess build the same settings."""
    return settings.to_env()


#: Debian's libfaketime (package faketime): a process's clock moved by the test.
FAKETIME_LIBRARIES = "/usr/lib/*/faketime/libfaketime.so.1"


def clock_env(days: int) -> dict[str, str]:
    """The environment that runs a process `days` days from now (negative: ago), its
    clock going on from there: libfaketime, preloaded. Fails when it is not installed."""
    found = sorted(glob.glob(FAKETIME_LIBRARIES))
    assert found, "libfaketime is missing: install Debian's faketime (`.ci/run` does)"
    return {"LD_PRELOAD": found[0], "FAKETIME": f"{days:+d}d"}


def hub(
    settings: HubSettings, *args: str, input: str | None = None, days: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run `hub ARGS...` as a user would, with `settings` as its environment; with
    `days`, on a clock that many days from now (``clock_env``)."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env={**settings_env(settings), **(clock_env(days) if days else {})},
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


class WorkerProcess:
    """`hub streams worker` as a child process that a test can SIGKILL."""

    def __init__(self, settings: HubSettings, log: Path, days: int = 0) -> None:
        self.settings = settings
        self.log = log
        self.days = days  # its clock that many days from now (``clock_env``)
        self.url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "streams", "worker"],
                env={**settings_env(self.settings), **(clock_env(self.days) if self.days else {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited: {self.log.read_text()[-3000:]}")
            try:
                scrape(self.url)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("worker did not serve metrics within 60 s")

    def metrics(self) -> dict[str, float]:
        return scrape(self.url)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, 9)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def signal_group(
    proc: subprocess.Popen[bytes], signum: int, within: float = 60
) -> tuple[int, float]:
    """Send `signum` to the process group of `proc` (started in its own session); its exit
    status and the seconds it took. AssertionError (after SIGKILL) when it outlives `within`."""
    sent = time.monotonic()
    os.killpg(proc.pid, signum)
    try:
        code = proc.wait(within)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise AssertionError(f"still running {within} s after signal {signum}") from None
    return code, time.monotonic() - sent


class Started:
    """`hub ARGS...` started in its own session, stdout and stderr each in a file, for a
    test that waits for a line, then stops it with a signal as a supervisor would."""

    def __init__(self, settings: HubSettings, folder: Path, *args: str) -> None:
        self.out = folder / f"{args[0]}-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", *args],
                env=settings_env(settings),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Until `text` is on its stdout or stderr; AssertionError when it exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout() + self.stderr():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {self.stderr()[-3000:]}")
            assert time.monotonic() < deadline, f"no {text!r} in {timeout} s: {self.stderr()}"
            time.sleep(0.1)

    def signal(self, signum: int, within: float = 60) -> tuple[int, float]:
        """Send `signum`; its exit status and the seconds it took (SIGKILL after `within`)."""
        return signal_group(self.proc, signum, within)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
