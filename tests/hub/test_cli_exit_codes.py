"""The README's table of exit codes is what the commands do: 0 to 3 each come from a real
run here (3 for a worker's forced stop in tests/streams/test_worker_shutdown.py; 4, the
stalled worker's, is checked in process by tests/streams/test_watchdog.py), and every
exit status the code sets is in the table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "adapters", "streams")
#: An exit the code sets: sys.exit(N), os._exit(N), SystemExit(N), ctx.exit(N), N a
#: number or a name bound to one in the same module.
EXIT = re.compile(r"\b(?:sys\.exit|os\._exit|SystemExit|ctx\.exit)\(\s*(\w+)\s*\)")


def documented() -> dict[int, str]:
    """The README's "Exit codes" table: code -> meaning."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Exit codes", 1)[1]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section.split("\n\n", 2)[1], re.MULTILINE)
    return {int(code): meaning for code, meaning in rows}


def used_in_code() -> dict[int, list[str]]:
    """Every exit status the packages set, with where."""
    used: dict[int, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            for match in EXIT.finditer(source):
                token = match.group(1)
                if not token.isdigit():
                    bound = re.search(rf"^{token}\s*(?::\s*\w+\s*)?=\s*(\d+)\s*$", source, re.M)
                    assert bound, f"{path}: exit status {token} is not a number in the module"
                    token = bound.group(1)
                line = source[: match.start()].count("\n") + 1
                used.setdefault(int(token), []).append(f"{path.relative_to(ROOT)}:{line}")
    return used


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_table_lists_exactly_the_codes_in_use() -> None:
    table, used = documented(), used_in_code()
    assert sorted(table) == [0, 1, 2, 3, 4]
    # 0 is every command's normal end; 1 and 2 are also click's (Aborted!, usage errors).
    assert set(used) | {0} == set(table), used
    assert {3, 4} <= set(used)


def test_each_documented_code_from_a_real_run(tmp_path: Path) -> None:
    table = documented()
    example = ROOT / "deploy" / "agreement" / "example.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("partners: [\n")
    export = tmp_path / "export.csv"
    export.write_text("id\n1\n")

    ok = run("agreement", "check", str(example))
    assert ok.returncode == 0 and "done" in table[0], ok.stderr
    assert run("--help").returncode == 0

    problem = run("agreement", "check", str(bad))
    assert problem.returncode == 1 and "agreement check" in table[1]
    unreadable = run(
        "adapter", "check", "--profile", "generic", str(export), HUB_AGREEMENT=str(bad)
    )
    assert unreadable.returncode == 1, unreadable.stderr
    assert unreadable.stderr.startswith(f"error: {bad}:2:") and "Traceback" not in unreadable.stderr

    setting = run("broker", "status", HUB_BROKER_PORT="abc")
    assert setting.returncode == 2 and setting.stderr.startswith("error: HUB_BROKER_PORT")
    assert run("no-such-command").returncode == 2
    assert run("adapter", "run").returncode == 2  # --profile is required
    assert "bad `HUB_*` setting" in table[2]

    stopped = run("broker", "status", HUB_BROKER_DATA=str(tmp_path / "broker"), HUB_BROKER_PORT="1")
    assert stopped.returncode == 3 and stopped.stdout.startswith("not running")
    assert "the broker is not running" in table[3]
