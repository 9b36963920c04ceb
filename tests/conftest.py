"""Shared fixtures: one real Kafka broker per test session, a fresh namespace per test.

The broker comes from the same launcher as `hub broker start`, on free ports
and a temporary data directory. When it cannot start, every test that needs
it errors: nothing here skips.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from adapters.mapping import RowMapper
from adapters.pipeline import RunSummary
from adapters.profile import load_profile
from adapters.runner import adapter_run
from adapters.sources.delimited import CsvSource
from hub import resources
from hub.agreement.model import Agreement, load_agreement
from hub.areas import Areas
from hub.cli.demo import scrape
from hub.errors import RecordError
from hub.models import CaseEvent, EventType
from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.pseudonymise import KeyRing, Pseudonymiser, write_key_file
from hub.settings import HubSettings, case_topic_name

EXAMPLE_AGREEMENT = resources.deploy("agreement", "example.yaml")


def example_areas() -> Areas:
    """The example agreement's areas: the ones the synthetic exports' area cells name."""
    return load_agreement(EXAMPLE_AGREEMENT).area_vocabulary


def write_agreement(path: Path, partners: Iterable[str]) -> Path:
    """The example agreement with only `partners` (ids, in this order), written to `path`:
    the partnership a test's topics, worker, ACLs and publisher all take their partners from.
    An id the example lacks (generic) is a partner of its shipped profile's agency type."""
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    by_id = {partner["id"]: partner for partner in data["partners"]}
    data["partners"] = [by_id.get(agency) or _profile_partner(agency) for agency in partners]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _profile_partner(agency: str) -> dict[str, object]:
    return {
        "id": agency,
        "type": str(load_profile(agency).agency_type),
        "topic": case_topic_name(agency),
        "principal": f"User:{agency}-adapter",
        "submit_by": {"cron": "0 17 5 * *"},
    }


def agreement_of(settings: HubSettings) -> Agreement:
    """The agreement `settings` name (HUB_AGREEMENT), as a `hub` process loads it."""
    return load_agreement(settings.agreement)


def partner_ids(settings: HubSettings) -> tuple[str, ...]:
    """The agency ids of the partners in the agreement `settings` name."""
    return tuple(partner.id for partner in agreement_of(settings).partners)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def broker_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubSettings]:
    settings = HubSettings(
        broker_data=tmp_path_factory.mktemp("broker"),
        broker_port=free_port(),
        controller_port=free_port(),
    )
    broker = Broker(settings)
    broker.start(quiet=True)
    try:
        yield settings
    finally:
        broker.stop()


@pytest.fixture
def private_broker(broker_settings: HubSettings, tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own (not started), for tests that stop and start it."""
    settings = broker_settings.model_copy(
        update={
            "broker_data": tmp_path / "state",
            "broker_port": free_port(),
            "controller_port": free_port(),
        }
    )
    broker = Broker(settings)
    try:
        yield broker
    finally:
        broker.stop()


#: The partners of the agreement `hub_settings` name.
TEST_PARTNERS = ("camhs", "police", "spa")


@pytest.fixture
def hub_settings(broker_settings: HubSettings, tmp_path: Path) -> HubSettings:
    """Settings for one test: its own topic namespace, worker state, key and metrics port,
    and an agreement of three partners (TEST_PARTNERS)."""
    namespace = f"t{uuid.uuid4().hex[:10]}."
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("test"))
    return broker_settings.model_copy(
        update={
            "topic_namespace": namespace,
            "agreement": write_agreement(tmp_path / "hub-agreement.yaml", TEST_PARTNERS),
            "case_partitions": 4,
            "worker_data": tmp_path / "worker",
            "metrics_port": free_port(),
            "publisher_metrics_port": free_port(),
            "adapter_metrics_port": free_port(),
            "key_file": key_file,
            "session_timeout": 8.0,
            "outbox": tmp_path / "outbox.sqlite",
        }
    )


@pytest.fixture
def topics(hub_settings: HubSettings) -> HubSettings:
    apply_topics(hub_settings, declared_topics(hub_settings, agreement_of(hub_settings)))
    return hub_settings


def publish_file(
    settings: HubSettings, path: Path, agency: str, profile: str = "generic"
) -> RunSummary:
    """Run one file through the real adapter (outbox, then Kafka) as `agency`."""
    with adapter_run(settings, profile, agency, quarantine=path.parent / "quarantine") as run:
        summary = run.ingest_file(path)
        run.drain(timeout=60)
    return summary


@dataclass(frozen=True)
class GroundTruth:
    """What the worker must count, computed offline from the input files."""

    by_code: Counter[str]
    records: int  # live records, current version
    events: int  # distinct event ids (record versions)


def ground_truth(files: dict[str, Path], pseudonymiser: Pseudonymiser) -> GroundTruth:
    """Per record, its highest version counts unless that version withdraws it."""
    profile = load_profile("generic")
    current: dict[str, CaseEvent] = {}
    event_ids: set[str] = set()
    for agency, path in files.items():
        mapper = RowMapper(profile, pseudonymiser, str(path), agency=agency)
        for item in CsvSource(path, profile).records():
            if isinstance(item, RecordError):
                continue
            try:
                event = mapper.map(item.row, item.values)
            except RecordError:
                continue
            event_ids.add(event.event_id)
            held = current.get(event.record_key)
            if held is None or event.record_version > held.record_version:
                current[event.record_key] = event
    live = [e for e in current.values() if e.event_type is not EventType.WITHDRAWN]
    by_code: Counter[str] = Counter()
    for event in live:
        by_code.update(event.online_risks)
    return GroundTruth(by_code, len(live), len(event_ids))


def settings_env(settings: HubSettings) -> dict[str, str]:
    """The environment that makes a `hub` subprocess build the same settings."""
    return settings.to_env()


def hub(
    settings: HubSettings, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `hub ARGS...` as a user would, with `settings` as its environment."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=settings_env(settings),
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


class WorkerProcess:
    """`hub streams worker` as a child process that a test can SIGKILL."""

    def __init__(self, settings: HubSettings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "streams", "worker"],
                env=settings_env(self.settings),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited: {self.log.read_text()[-3000:]}")
            try:
                scrape(self.url)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("worker did not serve metrics within 60 s")

    def metrics(self) -> dict[str, float]:
        return scrape(self.url)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, 9)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def worker(topics: HubSettings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(topics, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()


#: Tests outside the broker fixtures that still start a Kafka broker themselves.
_STARTS_ITS_OWN_BROKER = ("tests/test_demo.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a Kafka broker `broker`, so the quick ones run alone
    (`pytest -m "not broker"`); a test is marked by the fixtures it uses, never by hand."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        own = item.nodeid.startswith(_STARTS_ITS_OWN_BROKER)
        if "broker_settings" in fixtures or own:
            item.add_marker(pytest.mark.broker)
