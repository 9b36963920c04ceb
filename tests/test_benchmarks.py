"""The publication benchmark runs, and its own cross-check holds on a small history.

``benchmarks.publish_history`` raises when the cells it gets from the index
differ from the cells computed from every record, for one month and, after a
day of changes, for every released period; so a short run is a check of the
index on a realistic history too. Nothing here is timed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_publish_history_runs_and_the_index_agrees_with_scratch() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.publish_history",
            "--sizes",
            "3000,6000",
            "--period-events",
            "500",
            "--scratch-recheck-max",
            "6000",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| 3,000 ")]
    assert rows, run.stdout
    assert "| 6,000 |" in run.stdout
