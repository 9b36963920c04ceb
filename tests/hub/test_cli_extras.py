"""A command that needs an optional extra which is not installed says which, with the
install command: one line, exit status 1, no traceback. Each extra's absence is made
real in a `hub` process of its own (its modules set to None in sys.modules, so that
importing them fails as when they are not installed)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from hub.errors import EXTRAS, install_command
from hub.pseudonymise import KeyRing, write_key_file

ROOT = Path(__file__).resolve().parents[2]

#: `hub` with the named modules missing, its arguments after them (separated by "--").
WITHOUT = """
import sys
split = sys.argv.index("--")
for name in sys.argv[1:split]:
    sys.modules[name] = None
from hub.cli.main import main
main(sys.argv[split + 1:], prog_name="hub")
"""


def hub_without(modules: list[str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, *modules, "--", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [f"error: {expected}"]


def test_the_confluent_publisher_without_its_extra(tmp_path: Path) -> None:
    done = hub_without(
        ["confluent_kafka"],
        *("adapter", "drain"),
        HUB_PUBLISHER="confluent",
        HUB_OUTBOX=str(tmp_path / "outbox.sqlite"),
        HUB_BOOTSTRAP="127.0.0.1:1",
    )
    assert_one_line(
        done,
        "HUB_PUBLISHER=confluent needs the confluent extra (confluent_kafka is missing):"
        " pip install 'online-risk-hub[confluent]'",
    )


def test_the_board_pack_without_its_extra(tmp_path: Path) -> None:
    """Either module of the extra missing, before the command reads anything from Kafka
    (there is none at HUB_BOOTSTRAP)."""
    for missing in ("matplotlib", "jinja2"):
        done = hub_without(
            [missing],
            *("report", "--period", "2026Q3", "--out", str(tmp_path / "pack.html")),
            HUB_BOOTSTRAP="127.0.0.1:1",
        )
        assert_one_line(
            done,
            f"`hub report` needs the report extra ({missing} is missing):"
            " pip install 'online-risk-hub[report]'",
        )


def test_a_workbook_without_the_spreadsheet_extra(tmp_path: Path) -> None:
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    workbook = tmp_path / "export.xlsx"
    workbook.write_bytes(b"")  # never opened: the reader is missing
    done = hub_without(
        ["python_calamine"],
        *("adapter", "check", "--profile", "generic", str(workbook)),
        HUB_KEY_FILE=str(key_file),
    )
    assert_one_line(
        done,
        f"{workbook}: reading workbooks (.xlsx, .xls, .ods) needs the spreadsheet extra"
        " (python_calamine is missing): pip install 'online-risk-hub[spreadsheet]'",
    )


def test_every_extra_of_the_package_is_mapped_by_its_modules() -> None:
    """EXTRAS names every module that the extras in pyproject.toml install (besides dev),
    and nothing else."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: v for k, v in project["optional-dependencies"].items() if k != "dev"}
    by_distribution: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            by_distribution.setdefault(distribution.lower().replace("_", "-"), set()).add(module)
    expected: dict[str, str] = {}
    for extra, requirements in extras.items():
        for text in requirements:
            name = Requirement(text).name.lower().replace("_", "-")
            modules = by_distribution[name] - {"pylab", "mpl_toolkits"}  # matplotlib's extras
            expected.update(dict.fromkeys(modules, extra))
    assert EXTRAS == expected
    assert install_command("report") == "pip install 'online-risk-hub[report]'"
