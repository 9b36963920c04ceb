"""Every HUB_* name the documentation mentions is one the hub reads, and every HUB_*
variable read outside `HubSettings` is in `READ_ELSEWHERE` (so `hub` does not warn
about it)."""

from __future__ import annotations

import re
from pathlib import Path

from hub.settings import READ_ELSEWHERE, variable_names

ROOT = Path(__file__).resolve().parents[2]
#: A HUB_ name; one ending in "_" (followed by "*" in the text) is a family of names.
NAME = re.compile(r"\bHUB_[A-Z0-9_]*[A-Z0-9_]")
#: A read of the environment by name.
READ = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*["'](HUB_[A-Z0-9_]+)["']""")


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "hub" / "settings.py",
        ROOT / "docker-compose.yml",
        *sorted((ROOT / "docs").rglob("*.md")),
    ]


def test_every_documented_name_exists() -> None:
    known = variable_names()
    unknown = []
    for path in documents():
        for name in set(NAME.findall(path.read_text())):
            if name.endswith("_"):  # HUB_SASL_*, HUB_PUSH_*: some setting starts so
                ok = any(k.startswith(name) for k in known)
            else:
                ok = name in known
            if not ok:
                unknown.append(f"{path.relative_to(ROOT)}: {name}")
    assert unknown == []


def test_what_is_read_outside_the_settings_is_listed() -> None:
    read = set()
    for folder in ("hub", "adapters", "streams", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            read.update(READ.findall(path.read_text()))
    assert read == set(READ_ELSEWHERE)
