"""Shared fixtures: one real Kafka broker per test session, a fresh namespace per test.

The broker comes from the same launcher as `hub broker start`, on free ports
and a temporary data directory. When it cannot start, every test that needs
it errors: nothing here skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from tests.support.agreements import TEST_PARTNERS, agreement_of, write_agreement
from tests.support.processes import WorkerProcess, free_port


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
            # Snapshots and tombstones on the changelog many times in every worker test.
            "changelog_snapshot_bytes": 20_000,
            "outbox": tmp_path / "outbox.sqlite",
        }
    )


@pytest.fixture
def topics(hub_settings: HubSettings) -> HubSettings:
    apply_topics(hub_settings, declared_topics(hub_settings, agreement_of(hub_settings)))
    return hub_settings


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
