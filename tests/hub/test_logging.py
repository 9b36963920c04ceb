"""How `hub` commands report: a library's traceback is one line unless the level is DEBUG,
the hub's own tracebacks are kept (they mean a fault to report), in the text format and
in JSON lines alike; a bad HUB_* setting is named, one line each, with no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

PROGRAM = """
import logging, sys
from hub.logs import configure_logging
configure_logging(sys.argv[1], sys.argv[2])
def fail():
    raise ConnectionResetError(104, "Connection reset by peer")
for name in ("kafka.net.transport", "adapters.pipeline"):
    try:
        fail()
    except OSError:
        logging.getLogger(name).exception("receiving from %s", "broker")
from hub.periods import parse_period
try:
    parse_period("the hub's own fault")
except Exception:
    logging.getLogger("faust.agents.agent").exception("agent crashed")
"""


def run(level: str, fmt: str = "text") -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, level, fmt], capture_output=True, text=True, check=True
    )
    return done.stderr


def test_a_library_traceback_is_one_line_naming_the_exception() -> None:
    lines = run("INFO").splitlines()
    kafka = [line for line in lines if "kafka.net.transport" in line]
    assert len(kafka) == 1
    assert kafka[0].endswith(
        "receiving from broker (ConnectionResetError: [Errno 104] Connection reset by peer)"
    )
    assert " ERROR kafka.net.transport: " in kafka[0]
    assert sum("Traceback" in line for line in lines) == 2  # the hub's own, below


def test_the_hubs_own_traceback_is_kept() -> None:
    output = run("WARNING")
    own = output[output.index("adapters.pipeline") : output.index("faust.agents.agent")]
    assert "Traceback (most recent call last)" in own and "in fail" in own


def test_a_fault_in_the_hubs_code_logged_by_a_library_keeps_its_traceback() -> None:
    output = run("INFO")
    agent = output[output.index("faust.agents.agent") :]
    assert "Traceback (most recent call last)" in agent and "hub/periods.py" in agent


def test_at_debug_every_traceback_is_kept() -> None:
    assert run("debug").count("Traceback (most recent call last)") == 3


def test_json_lines_carry_time_level_logger_message_and_exception() -> None:
    lines = run("INFO", "json").splitlines()
    assert len(lines) == 3  # one line per record, the traceback inside it
    library, own, agent = (json.loads(line) for line in lines)
    assert "hub/periods.py" in agent["exception"]
    assert set(library) == {"time", "level", "logger", "message", "exception"}
    assert (library["level"], library["logger"], library["message"]) == (
        "ERROR",
        "kafka.net.transport",
        "receiving from broker",
    )
    assert library["exception"] == "ConnectionResetError: [Errno 104] Connection reset by peer"
    assert own["exception"].startswith("Traceback (most recent call last)")
    assert "in fail" in own["exception"]
    when = datetime.fromisoformat(own["time"])
    assert own["time"].endswith("Z") and when.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_json_at_debug_keeps_every_traceback() -> None:
    entries = [json.loads(line) for line in run("DEBUG", "json").splitlines()]
    assert all(e["exception"].startswith("Traceback (most recent") for e in entries)


def test_a_bad_setting_is_named_without_a_traceback() -> None:
    env = {**os.environ, "HUB_LOG_LEVEL": "loud", "HUB_METRICS_PORT": "abc"}
    done = subprocess.run(
        [sys.executable, "-m", "hub.cli", "topics", "list"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("error: HUB_LOG_LEVEL (given 'loud'): ")
    assert lines[1].startswith("error: HUB_METRICS_PORT (given 'abc'): ")
