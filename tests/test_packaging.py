"""A normal install works: the wheel carries every file the hub reads, and the hub finds them.

An agency's IT team installs the adapter with ``pip install online-risk-hub``,
not from a checkout. The wheel is built here as pip builds it for
``pip install .`` (from a copy of the source, so no ``build/`` lands in the
checkout) and installed with ``--no-deps`` into a directory. That directory is
then used by this venv's Python started with ``-S`` from an empty working
directory: without site-packages processing the checkout's editable install
(its ``.pth`` and import finder) is absent and cannot stand in for a file the
wheel lacks. The venv's site-packages go on PYTHONPATH after the wheel's
directory, for the dependencies only.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from hub.codec import versions
from hub.ops.broker import kafka_version
from hub.resources import DATA_PACKAGE
from hub.schema_check import schema_names
from tests.support.events import sample_event
from tests.support.locks import lock_at, normal

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"
#: What a build of the checkout never needs: environments, caches, run state.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".hub-worker",
    ".demo",
)
#: The files of deploy/ the code reads: the example agreement (HUB_AGREEMENT's
#: default), Prometheus' config and rules (hub.ops.prometheus), the Kafka pom
#: (`hub broker fetch`).
DEPLOY_FILES = (
    "agreement/example.yaml",
    "prometheus/prometheus.yml",
    "prometheus/rules.yml",
    "prometheus/alerts.yml",
    "kafka/pom.xml",
)

#: Run by the installed wheel: everything that reads a shipped file, with default settings.
PROBE = """
import io, json, sys
import fastavro
import adapters, hub, streams
from adapters.profile import load_profile, shipped_profiles
from hub import codec, resources
from hub.agreement.model import load_agreement
from hub.models import CaseEvent
from hub.ops import prometheus
from hub.ops.broker import kafka_version
from hub.schema_check import schema_names
from hub.settings import HubSettings

settings = HubSettings()
event = CaseEvent.model_validate_json(sys.argv[1])
reader = codec.Codec("case_event")
decoded = {}
for version in codec.versions("case_event"):
    out = io.BytesIO()
    out.write(version.header)
    fastavro.schemaless_writer(out, version.parsed, event.to_avro())
    decoded[version.version] = CaseEvent.from_avro(reader.decode(out.getvalue())).event_id
config = prometheus.render_config(settings)
print(json.dumps({
    "meta_path": [repr(finder) for finder in sys.meta_path],
    "modules": [hub.__file__, adapters.__file__, streams.__file__],
    "data": [
        str(resources.schemas()), str(resources.profiles()), str(codec.SCHEMAS_DIR),
        str(prometheus.CONFIG), str(settings.kafka_pom), str(settings.agreement),
        *config["rule_files"],
    ],
    "schemas": {name: [v.version for v in codec.versions(name)] for name in schema_names()},
    "decoded": decoded,
    "round_trip": CaseEvent.from_avro(reader.decode(reader.encode(event.to_avro()))) == event,
    "profiles": {name: load_profile(name).agency for name in shipped_profiles()},
    "partnership": load_agreement(settings.agreement).partnership,
    "recording_rules": len(prometheus.recording_rules()),
    "scrape_jobs": [job["job_name"] for job in config["scrape_configs"]],
    "kafka": kafka_version(settings.kafka_pom),
}))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    target: Path

    def python(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """This venv's Python, without site processing, importing the hub from the wheel only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "PYTHON"))}
        env["PYTHONPATH"] = os.pathsep.join([str(self.target), *site.getsitepackages()])
        return subprocess.run(
            [sys.executable, "-S", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )


def pip(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    # Build isolation, as `pip install .` does: the build-system requirements
    # of pyproject.toml, not whatever setuptools this venv happens to hold.
    pip("wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source))
    (wheel,) = (work / "dist").glob("online_risk_hub-*.whl")
    target = work / "site"
    pip("install", "--no-deps", "--target", str(target), str(wheel))
    return Installed(wheel, target)


def shipped_in_checkout() -> set[str]:
    """Where every module and data file of the checkout belongs in the wheel."""
    files = {
        p.relative_to(REPO).as_posix()
        for package in ("hub", "adapters", "streams")
        for p in (REPO / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    files |= {p.relative_to(REPO).as_posix() for p in REPO.glob("hub/report/templates/*.j2")}
    files |= {p.relative_to(REPO).as_posix() for p in REPO.glob("adapters/profiles/*.yaml")}
    files |= {f"{DATA_PACKAGE}/{p.relative_to(REPO).as_posix()}" for p in SCHEMAS.rglob("*.avsc")}
    files |= {f"{DATA_PACKAGE}/deploy/{name}" for name in DEPLOY_FILES}
    return files


def test_the_wheel_carries_every_module_schema_profile_and_deploy_file(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    expected = shipped_in_checkout()
    assert {
        f"{DATA_PACKAGE}/schemas/case_event/v1.avsc",
        "adapters/profiles/camhs.yaml",
    } <= expected
    assert sorted(expected - names) == []


def test_the_installed_wheel_works_away_from_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    result = installed.python("-c", PROBE, sample_event().model_dump_json(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    probe: dict[str, Any] = json.loads(result.stdout)

    # The hub and every file it read came from the installed wheel, not this checkout.
    assert not [f for f in probe["meta_path"] if "__editable__" in f]
    target = installed.target.resolve()
    for path in probe["modules"] + probe["data"]:
        assert Path(path).resolve().is_relative_to(target), path
        assert Path(path).exists(), path

    assert probe["schemas"] == {
        name: [v.version for v in versions(name, SCHEMAS)] for name in schema_names(SCHEMAS)
    }
    event_id = sample_event().event_id
    assert probe["decoded"] == {str(v.version): event_id for v in versions("case_event", SCHEMAS)}
    assert probe["round_trip"] is True
    assert set(probe["profiles"]) == {p.stem for p in REPO.glob("adapters/profiles/*.yaml")}
    assert probe["partnership"]
    assert probe["recording_rules"] > 0
    assert {"hub-worker", "hub-publisher", "hub-adapters"} <= set(probe["scrape_jobs"])
    assert probe["kafka"] == kafka_version(REPO / "deploy" / "kafka" / "pom.xml")


def test_the_installed_command_checks_the_shipped_schemas(
    installed: Installed, tmp_path: Path
) -> None:
    result = installed.python("-m", "hub.cli", "schema", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{', '.join(schema_names(SCHEMAS))}: " in result.stdout


def test_kafka_python_checks_batches_with_the_c_crc32c() -> None:
    """Without the ``crc32c`` extension kafka-python checks every record batch it reads in
    pure Python, most of the publisher's time on a long changelog."""
    from kafka.record import util

    assert util.crc32c_c is not None
    data = memoryview(bytes(range(256)) * 16)
    assert util.calc_crc32c(data) == util.crc32c_py(data)


def test_the_lock_pins_every_requirement_with_hashes_and_the_exact_build_backend() -> None:
    """constraints.txt (`make constraints`) satisfies every requirement of pyproject.toml,
    its extras and [build-system], and every pin carries the hashes pip checks."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    wanted = [*project["dependencies"], *pyproject["build-system"]["requires"]]
    wanted += [r for extra in project["optional-dependencies"].values() for r in extra]
    lock = lock_at(REPO / "constraints.txt")
    for text in wanted:
        requirement = Requirement(text)
        pins = lock.get(normal(requirement.name), [])
        assert pins, f"{text} is not in constraints.txt"
        assert all(requirement.specifier.contains(p.version) for p in pins), (text, pins)
    assert all(pin.hashes for pins in lock.values() for pin in pins)
    (backend,) = pyproject["build-system"]["requires"]
    assert str(Requirement(backend).specifier) == f"=={lock['setuptools'][0].version}"


def test_pip_check_reports_only_the_overridden_requirements() -> None:
    """`pip check` on this environment reports nothing but what constraints-overrides.txt
    overrides (mode-streaming's croniter<6), and the code behind that runs on the
    locked croniter."""
    overridden = {
        normal(Requirement(line).name)
        for line in (REPO / "constraints-overrides.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    check = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    reported = [line for line in check.stdout.splitlines() if " has requirement " in line]
    assert reported, check.stdout
    for line in reported:
        needed = Requirement(line.split(" has requirement ")[1].split(", but ")[0])
        assert normal(needed.name) in overridden, line

    from importlib.metadata import version

    from mode.utils.cron import secs_for_next

    assert version("croniter").startswith("7.")
    assert 0 < secs_for_next("*/5 * * * *", UTC) <= 300
    assert 0 < secs_for_next("0 9 * * *") <= 86400
