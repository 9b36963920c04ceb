"""One agreement, one set of names: the worker reads, `hub topics apply` declares, the ACLs
grant and the publisher waits for the case topics of the same partners, and sends each
publication to the topic the agreement names for it. No broker: the Kafka clients are
never reached (the publisher's are stand-ins)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hub.agreement.model import Agreement, load_agreement
from hub.errors import ConfigError
from hub.ops.acls import derived_acls
from hub.ops.topics import declared_topics
from hub.settings import HubSettings
from hub.taxonomy import Taxonomy
from streams.app import Worker
from streams.index import RecordIndex
from streams.metrics import WorkerMetrics
from streams.publish import publisher as publisher_module
from streams.publish.publisher import Publisher
from streams.state import WorkerState
from tests.support.agreements import write_agreement

PARTNERS = ("police", "camhs", "youth-service")


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    agreement = write_agreement(tmp_path / "agreement.yaml", PARTNERS)
    return HubSettings(topic_namespace="ns.", agreement=agreement)


@pytest.fixture
def agreement(settings: HubSettings) -> Agreement:
    return load_agreement(settings.agreement)


def test_worker_topics_declared_topics_and_acls_name_the_same_partners(
    settings: HubSettings, agreement: Agreement
) -> None:
    case_topics = {f"ns.cases.{partner}": partner for partner in PARTNERS}

    state = WorkerState()
    worker = Worker(settings, agreement, WorkerMetrics(CollectorRegistry(), state), state)
    assert worker.agency_of == case_topics

    declared = {spec.name for spec in declared_topics(settings, agreement)}
    assert {name for name in declared if ".cases." in name} == set(case_topics)

    grants = derived_acls(agreement, settings)
    partners = {partner.principal for partner in agreement.partners}
    writes = {
        g.name: g.principal
        for g in grants
        if g.operation == "WRITE" and g.principal in partners and ".cases." in g.name
    }
    assert writes == {topic: f"User:{partner}-adapter" for topic, partner in case_topics.items()}
    # Besides its own case topic, a partner writes only its audit entries.
    others = {g.name for g in grants if g.principal in partners and ".cases." not in g.name}
    assert others == {"ns.partnership.audit.v1"}

    # What an agency's adapter writes to is the same name.
    assert {settings.case_topic(partner) for partner in PARTNERS} == set(case_topics)


class _Future:
    def get(self, timeout: float) -> None:
        return None


class _Producer:
    """Records what is sent (topic, key), as KafkaProducer would take it."""

    sent: list[tuple[str, bytes]] = []

    def __init__(self, **_: Any) -> None:
        _Producer.sent = []

    def init_transactions(self) -> None:
        pass

    def begin_transaction(self) -> None:
        pass

    def send(self, topic: str, key: bytes, value: bytes) -> _Future:
        self.sent.append((topic, key))
        return _Future()

    def commit_transaction(self) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class _Log:
    """Stands for the changelog and trends readers: nothing to read."""

    def __init__(self, settings: HubSettings, taxonomy: Taxonomy | None = None) -> None:
        self.index = RecordIndex(taxonomy or Taxonomy())  # no record in it
        self.periods: dict[tuple[str, date], Any] = {}

    def catch_up(self) -> None:
        pass

    def retain(self, since: str) -> int:
        return 0

    def releases(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


@pytest.fixture
def waited_for(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The case topics each wait for the workers named (no Kafka client is made)."""
    waits: list[list[str]] = []

    def wait(settings: HubSettings, topics: Iterable[str], *_: Any) -> None:
        waits.append(list(topics))

    monkeypatch.setattr(publisher_module, "KafkaProducer", _Producer)
    monkeypatch.setattr(publisher_module, "VersionLog", _Log)
    monkeypatch.setattr(publisher_module, "TrendsLog", _Log)
    monkeypatch.setattr(publisher_module, "wait_for_workers", wait)
    return waits


def test_the_publisher_waits_for_the_partners_and_sends_to_the_publication_topic(
    settings: HubSettings, agreement: Agreement, waited_for: list[list[str]]
) -> None:
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    publisher = Publisher(settings, agreement, now=lambda: now)
    try:
        monthly = publisher.publish_now("2026-10", reason="test release")
        quarterly = publisher.publish_now("2026Q3", reason="test release")
    finally:
        publisher.close()
    assert (monthly.publication, quarterly.publication) == ("monthly", "board-quarterly")
    assert waited_for == [[f"ns.cases.{partner}" for partner in PARTNERS]] * 2
    # Each release's cells, and its one entry on the audit trail.
    sent = [(topic, key) for topic, key in _Producer.sent if topic != "ns.partnership.audit.v1"]
    entries = [key for topic, key in _Producer.sent if topic == "ns.partnership.audit.v1"]
    assert len(sent) == monthly.cells + quarterly.cells > 0
    assert entries == [b"RELEASE", b"RELEASE"]
    topics = {schedule.topic for schedule in agreement.publication}
    assert {topic for topic, _ in sent} == {f"ns.{topic}" for topic in topics}
    assert {topic for topic, _ in sent} == {settings.trends_topic}


@pytest.mark.usefixtures("waited_for")
def test_a_publication_on_a_topic_the_hub_does_not_read_is_refused(
    settings: HubSettings, agreement: Agreement
) -> None:
    monthly, quarterly = agreement.publication
    moved = agreement.model_copy(
        update={"publication": (monthly, quarterly.model_copy(update={"topic": "board.v1"}))}
    )
    with pytest.raises(ConfigError, match=r"'board-quarterly' names board\.v1.*trends\.v1"):
        Publisher(settings, moved)
