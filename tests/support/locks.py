"""Reading the hashed locks (constraints.txt, deploy/docker/requirements.txt)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: tuple[str, ...]

    @property
    def version(self) -> str:
        (specifier,) = self.requirement.specifier
        assert specifier.operator == "==", self.requirement
        return specifier.version


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, list[Pin]]:
    """Normalised name -> its pins (one per marker, e.g. numpy per Python version)."""
    pins: dict[str, list[Pin]] = {}
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = re.split(r"\s+(?=--)", line)
        hashes = tuple(o.split("=", 1)[1] for o in options if o.startswith("--hash="))
        requirement = Requirement(spec)
        pins.setdefault(normal(requirement.name), []).append(Pin(requirement, hashes))
    return pins


def lock_at(path: Path) -> dict[str, list[Pin]]:
    return read_lock(path.read_text(encoding="utf-8"))
