"""Resolve Apache Kafka's jars from Maven Central through deploy/kafka/pom.xml.

The pom pins the Kafka version; Maven resolves the broker and its runtime
dependencies into ``<HUB_BROKER_CACHE>/m2`` and copies them to
``<HUB_BROKER_CACHE>/kafka-<version>/libs``. A ``.complete`` marker written last
makes the fetch all-or-nothing: an interrupted download is redone, a finished
one is never repeated.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hub.errors import BrokerError
from hub.settings import HubSettings

_VERSION_PROPERTY = re.compile(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>")


@dataclass(frozen=True)
class KafkaArtifacts:
    version: str
    libs: Path

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")


def kafka_version(pom: Path) -> str:
    """The Kafka version pinned in the pom's ``kafka.version`` property."""
    try:
        text = pom.read_text(encoding="utf-8")
    except OSError as exc:
        raise BrokerError(f"cannot read the Kafka pom {pom}: {exc}") from exc
    match = _VERSION_PROPERTY.search(text)
    if match is None:
        raise BrokerError(f"{pom} has no <kafka.version> property")
    return match.group(1)


def require_tool(name: str, what: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"{what} was not found on PATH ({name}). Install it: {install}")
    return path


def ensure_artifacts(settings: HubSettings, *, quiet: bool = False) -> KafkaArtifacts:
    """Return the cached Kafka jars, fetching them with Maven the first time."""
    version = kafka_version(settings.kafka_pom)
    home = settings.broker_cache / f"kafka-{version}"
    libs = home / "libs"
    marker = home / ".complete"
    if marker.exists():
        return KafkaArtifacts(version, libs)

    mvn = require_tool("mvn", "Maven", "apt-get install maven")
    require_tool("java", "Java 17", "apt-get install openjdk-17-jre-headless")
    staging = home / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [
        mvn,
        "-B",
        "-f",
        str(settings.kafka_pom),
        f"-Dmaven.repo.local={settings.broker_cache / 'm2'}",
        f"-DoutputDirectory={staging}",
        "dependency:copy-dependencies",
    ]
    _say(f"Fetching Apache Kafka {version} from Maven Central into {home} (once) ...", quiet)
    fetched = _run_maven(cmd, quiet)
    jars = sorted(staging.glob("*.jar"))
    if not any(j.name.startswith(f"kafka_2.13-{version}") for j in jars):
        raise BrokerError(f"Maven finished but {staging} holds no kafka_2.13-{version} jar")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.write_text(f"{version}\n{len(jars)} jars\n")
    _say(f"Kafka {version}: {len(jars)} jars ready ({fetched} downloaded).", quiet)
    return KafkaArtifacts(version, libs)


def _run_maven(cmd: list[str], quiet: bool) -> int:
    """Run Maven, echoing one progress line per downloaded artifact."""
    tail: list[str] = []
    fetched = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout or ():
            tail = [*tail[-30:], line.rstrip()]
            if "Downloaded from" in line:
                fetched += 1
                if not quiet and fetched % 50 == 0:
                    print(f"  ... {fetched} artifacts downloaded", flush=True)
        code = proc.wait()
    if code != 0:
        detail = "\n".join(tail)
        raise BrokerError(
            "Maven could not fetch Kafka (is Maven Central reachable? a proxy in"
            f" ~/.m2/settings.xml?). Last lines of its output:\n{detail}"
        )
    return fetched


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)
