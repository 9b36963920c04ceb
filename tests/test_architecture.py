"""The import contracts cover the whole tree, and hold (docs/architecture.md).

import-linter checks only the modules a contract names, so a new module that
no layer lists would escape every rule: each package's modules must all be
placed in its layers contract.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    found: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return found


def children(package: str) -> set[str]:
    """The modules and subpackages directly inside `package`."""
    folder = REPO / package
    names = {p.stem for p in folder.glob("*.py") if p.stem not in {"__init__", "__main__"}}
    names |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
    return names - {"profiles"}  # adapters/profiles holds YAML only


def layered(container: str) -> set[str]:
    for contract in contracts():
        if contract["type"] == "layers" and contract.get("containers") == [container]:
            return {
                name.strip() for layer in contract["layers"] for name in re.split(r"[|:]", layer)
            }
    raise AssertionError(f"no layers contract for {container}")


def test_every_module_has_its_place_in_a_layer() -> None:
    for package in ("hub", "adapters", "streams"):
        missing = children(package) - layered(package)
        assert not missing, f"{package}: {sorted(missing)} in no layer of pyproject.toml"
        gone = layered(package) - children(package)
        assert not gone, f"{package}: the layers name {sorted(gone)}, which do not exist"


def test_the_core_listed_for_no_kafka_is_the_core_layer() -> None:
    core = next(c for c in contracts() if c["name"].startswith("The contract core"))
    bottom = layered("hub") - {"cli", "ops", "report", "subscribe", "audit", "kafka", "agreement"}
    assert {m.removeprefix("hub.") for m in core["source_modules"]} >= bottom


def test_the_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout
