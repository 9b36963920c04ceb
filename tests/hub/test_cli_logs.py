"""`hub --log-level` and `--log-format` override HUB_LOG_LEVEL and HUB_LOG_FORMAT for the
command and the processes it starts; the push endpoint's lines (listening, one per
request, its stop) come out in the format chosen; unknown HUB_* variables are warned
about, once, and the command goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import READ_ELSEWHERE, HubSettings, unknown_variables
from tests.support.http_push import TOKENS, Remote, good, post, request
from tests.support.processes import Started, free_port


def test_the_push_endpoint_logs_json_lines_at_the_level_given(tmp_path: Path) -> None:
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    settings = HubSettings(
        key_file=key_file,
        outbox=tmp_path / "outbox.sqlite",
        bootstrap="127.0.0.1:1",  # no Kafka: the events stay in the outbox
        publish_timeout=2.0,
        log_level="ERROR",  # the options below override both
        log_format="text",
    )
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    port = free_port()
    served = Started(
        settings,
        tmp_path,
        *("--log-level", "info", "--log-format", "json", "adapter", "run"),
        *("--profile", "generic", "--agency", "camhs", "--serve", str(port)),
        *("--tokens", str(tokens), "--quarantine", str(tmp_path / "q"), "--metrics-port", "0"),
    )
    try:
        served.wait_for("accepting events at")
        remote = Remote("127.0.0.1", port)
        assert request(remote, "GET", "/health")[0] == 200
        assert post(remote, [good("LOGGED-1")])[0] == 202
        code, _ = served.signal(signal.SIGTERM)
    finally:
        served.kill()
    assert code == 0, served.stderr()
    entries = [json.loads(line) for line in served.stderr().splitlines()]  # all JSON
    messages = [e["message"] for e in entries if e["logger"] == "adapters.sources.http_push"]
    assert any(m.startswith("push endpoint listening on http://127.0.0.1:") for m in messages)
    requests = [m for m in messages if m.startswith("POST /events provider=kooth")]
    assert len(requests) == 1 and "status=202 accepted=1" in requests[0], messages
    assert not any(m.startswith("GET /health") for m in messages)  # DEBUG, below INFO
    assert "SIGTERM: stopping the push endpoint" in messages
    assert "LOGGED-1" not in served.stderr()  # no record identifier in a log line


def run_hub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_an_unknown_hub_variable_is_one_warning_and_the_command_goes_on(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env = {**base, "HUB_BROKER_PROT": "9092", "HUB_ZZZ_QQQ": "1", "HUB_TEST_PG_BIN": "/x"}
    path = str(HubSettings().agreement)
    done = run_hub(env, "agreement", "check", path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "warning: no setting reads HUB_BROKER_PROT (did you mean HUB_BROKER_PORT?),"
        " HUB_ZZZ_QQQ; ignored"
    ]
    assert "the agreement is valid" in done.stdout
    quiet = run_hub({**base, "HUB_BROKER_PORT": "9092"}, "agreement", "check", path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_known_and_elsewhere_read_names_are_not_unknown() -> None:
    environ = {f"HUB_{name.upper()}": "x" for name in HubSettings.model_fields}
    environ.update(dict.fromkeys(READ_ELSEWHERE, "x"))
    environ["hub_log_level"] = "x"  # pydantic-settings reads names in any case
    assert unknown_variables(environ) == {}
    assert unknown_variables({"HUB_OUTBX": "x", "PATH": "x"}) == {"HUB_OUTBX": "HUB_OUTBOX"}


def test_a_log_level_that_is_not_one_is_a_usage_error() -> None:
    done = run_hub(dict(os.environ), "--log-level", "loud", "broker", "status")
    assert done.returncode == 2
    assert "Invalid value for '--log-level'" in done.stderr and "Traceback" not in done.stderr
