"""Debian's promtool (package prometheus): the lint of a /metrics text, and the checks
and unit tests of the shipped rule files. A test that needs it fails when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
#: promtool's unit tests of the alerting rules (`promtool test rules`).
ALERT_TESTS = Path(__file__).resolve().parents[1] / "prometheus" / "alerts_test.yml"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Runs promtool with `args` (and `stdin`); its exit status and output, not checked."""
    binary = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(binary).is_file(), (
        "promtool is missing: install Debian's package (apt-get install prometheus)"
    )
    return subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def check_metrics(text: str) -> None:
    """`promtool check metrics` on an exposition text: fails on any problem it reports."""
    assert text.strip(), "the metrics text is empty"
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
