"""Security on: a broker with a SCRAM listener and ACLs derived from the agreement.

The analyst principal reads the published trends with its own credentials and
nothing else; a wrong password and an agency topic are refused with errors that
say what to do. The partners and the publisher do their work with the ACLs the
agreement implies alone, and the ACLs follow the agreement when a partner leaves.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import TopicAuthorizationFailedError, TransactionalIdAuthorizationFailedError
from pydantic import SecretStr

from hub.codec import Codec
from hub.models import TrendSnapshot
from hub.ops.acls import apply_acls, derived_acls, set_password
from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.agreements import agreement_of, write_agreement
from tests.support.events import sample_event
from tests.support.messages import wait_for
from tests.support.processes import WorkerProcess, free_port, hub


@pytest.fixture
def secure(broker_settings: HubSettings, tmp_path: Path) -> Iterator[HubSettings]:
    """A broker of the test's own with a SASL listener and an authorizer."""
    settings = broker_settings.model_copy(
        update={
            "broker_data": tmp_path / "secure-broker",
            "broker_port": free_port(),
            "controller_port": free_port(),
            "broker_sasl_port": free_port(),
            "agreement": write_agreement(tmp_path / "agreement.yaml", ("camhs", "police")),
        }
    )
    broker = Broker(settings)
    broker.start(quiet=True)
    try:
        yield settings
    finally:
        broker.stop()


def as_user(settings: HubSettings, user: str, password: str) -> HubSettings:
    return settings.model_copy(
        update={
            "bootstrap": f"{settings.broker_host}:{settings.broker_sasl_port}",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_username": user,
            "sasl_password": SecretStr(password),
        }
    )


def publish_cells(settings: HubSettings) -> None:
    codec = Codec("trend_snapshot")
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for value, count in (("all", 40), ("GROOMING", None)):
        snapshot = TrendSnapshot(
            partnership="example-safeguarding-partnership",
            publication="monthly",
            period_start=date(2026, 10, 1),
            period_end=date(2026, 10, 31),
            measure="events",
            dimension="total" if value == "all" else "risk_code",
            value=value,
            count=count,
            suppressed=count is None,
            revision=0,
            published_at=datetime(2026, 11, 10, 9, tzinfo=UTC),
        )
        producer.send(
            settings.trends_topic, key=value.encode(), value=codec.encode(snapshot.to_avro())
        )
    producer.flush(30)
    producer.close()


def test_analyst_reads_trends_with_its_own_credentials_and_nothing_else(
    secure: HubSettings,
) -> None:
    apply_topics(secure, declared_topics(secure, agreement_of(secure)))
    publish_cells(secure)
    password = secrets.token_urlsafe(18)
    stored = hub(secure, "security", "set-password", "analysts", input=password + "\n")
    assert stored.returncode == 0, stored.stderr
    analyst = as_user(secure, "analysts", password)

    # Authenticated, but no ACL grants the analysts anything yet.
    refused = hub(analyst, "subscribe", "--format", "csv")
    assert refused.returncode == 1
    assert "User:analysts may not read" in refused.stderr
    assert "hub security acls --apply" in refused.stderr

    applied = hub(secure, "security", "acls", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "User:analysts READ" in applied.stdout

    listed = hub(analyst, "subscribe", "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 3  # the header and the two cells
    assert any(",GROOMING,,True," in line for line in lines)  # suppressed, not zero

    # An agency topic stays closed to the analysts.
    cases = hub(analyst, "subscribe", secure.case_topic("camhs"))
    assert cases.returncode == 1
    assert "may not read" in cases.stderr and "cases.camhs" in cases.stderr

    wrong = hub(as_user(secure, "analysts", "not-the-password"), "subscribe")
    assert wrong.returncode == 1
    assert "refused the credentials of User:analysts" in wrong.stderr
    assert "not-the-password" not in wrong.stderr + wrong.stdout
    assert password not in refused.stderr + listed.stderr + cases.stderr


def sasl(settings: HubSettings, user: str, password: str) -> dict[str, Any]:
    """kafka-python options for `user` on the broker's SCRAM listener."""
    return {
        "bootstrap_servers": f"{settings.broker_host}:{settings.broker_sasl_port}",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def allow_rules(settings: HubSettings) -> set[ACL]:
    """Every allow rule on the cluster, as its super user sees them."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="test")
    try:
        rules, _ = admin.describe_acls(
            ACLFilter(
                None,
                None,
                ACLOperation.ANY,
                ACLPermissionType.ALLOW,
                ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
            )
        )
        return set(rules)
    finally:
        admin.close()


def create_rule(settings: HubSettings, rule: ACL) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="test")
    try:
        assert not admin.create_acls([rule])["failed"]
    finally:
        admin.close()


def write_case(
    settings: HubSettings, user: str, password: str, agency: str, value: bytes = b"v"
) -> None:
    """One message as the agency's adapter sends it: idempotent, acks=all."""
    producer = KafkaProducer(
        **sasl(settings, user, password), acks="all", enable_idempotence=True, max_block_ms=30000
    )
    try:
        producer.send(settings.case_topic(agency), key=b"k", value=value).get(timeout=60)
    finally:
        producer.close(timeout=10)


def test_each_principal_works_with_its_acls_alone_and_they_follow_the_agreement(
    secure: HubSettings,
) -> None:
    apply_topics(secure, declared_topics(secure, agreement_of(secure)))
    users = ("camhs-adapter", "police-adapter", "hub-publisher")
    passwords = {user: secrets.token_urlsafe(18) for user in users}
    for user, password in passwords.items():
        set_password(secure, user, password)
    # A rule on a resource the hub does not manage: no apply may touch it.
    foreign = ACL(
        "User:monitoring",
        "*",
        ACLOperation.DESCRIBE,
        ACLPermissionType.ALLOW,
        ResourcePattern(ResourceType.TOPIC, "monitoring.heartbeat", ACLResourcePatternType.LITERAL),
    )
    create_rule(secure, foreign)

    first = apply_acls(secure, agreement_of(secure))
    derived = {grant.acl() for grant in derived_acls(agreement_of(secure), secure)}
    assert set(first.created) == derived and first.removed == []
    before = allow_rules(secure)
    assert before == derived | {foreign}

    # A partner writes its own topic as its adapter does (idempotent: no cluster ACL).
    write_case(secure, "camhs-adapter", passwords["camhs-adapter"], "camhs")
    write_case(secure, "police-adapter", passwords["police-adapter"], "police")
    with pytest.raises(TopicAuthorizationFailedError):
        write_case(secure, "camhs-adapter", passwords["camhs-adapter"], "police")

    # The publisher: a release in a transaction of its own id, the case topics' end
    # offsets, but never a case event.
    publisher = sasl(secure, "hub-publisher", passwords["hub-publisher"])
    producer = KafkaProducer(
        **publisher, transactional_id=f"{secure.worker_app_id}-publisher-scheduled"
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(secure.trends_topic, key=b"cell", value=b"snapshot")
        producer.commit_transaction()
    finally:
        producer.close(timeout=10)
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        stranger = KafkaProducer(**publisher, transactional_id="someone-else")
        try:
            stranger.init_transactions()
        finally:
            stranger.close(timeout=10)
    consumer = KafkaConsumer(**publisher, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(secure.case_topic("camhs"), p)
            for p in sorted(consumer.partitions_for_topic(secure.case_topic("camhs")) or ())
        ]
        assert partitions and sum(consumer.end_offsets(partitions).values()) == 1
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        with pytest.raises(TopicAuthorizationFailedError):
            for _ in range(20):
                consumer.poll(timeout_ms=500)
    finally:
        consumer.close()

    # The police leave the partnership.
    write_agreement(secure.agreement, ("camhs",))
    second = hub(secure, "security", "acls", "--apply")
    assert second.returncode == 0, second.stderr
    police_topic = secure.case_topic("police")
    gone = {
        rule
        for rule in before
        if rule.resource_pattern.resource_name == police_topic
        or rule.principal == "User:police-adapter"
    }
    # Its adapter's WRITE and DESCRIBE on its topic and on the audit topic, the workers'
    # READ and DESCRIBE, the publisher's DESCRIBE.
    assert len(gone) == 7
    assert f"0 created, {len(gone)} removed" in second.stderr
    assert second.stderr.count("removed: ") == len(gone)
    assert "police" not in second.stdout
    assert allow_rules(secure) == before - gone
    with pytest.raises(TopicAuthorizationFailedError):
        write_case(secure, "police-adapter", passwords["police-adapter"], "police")

    third = apply_acls(secure, agreement_of(secure))
    assert (third.created, third.removed) == ([], [])
    assert allow_rules(secure) == before - gone


def test_the_workers_and_the_publisher_run_as_their_own_principals(
    secure: HubSettings, tmp_path: Path
) -> None:
    """With the derived ACLs alone: the worker creates its Faust topics, joins its
    group, counts an event and reports its lag; the publisher releases a period."""
    apply_topics(secure, declared_topics(secure, agreement_of(secure)))
    users = ("camhs-adapter", "hub-workers", "hub-publisher")
    passwords = {user: secrets.token_urlsafe(18) for user in users}
    for user, password in passwords.items():
        set_password(secure, user, password)
    apply_acls(secure, agreement_of(secure))
    event = sample_event()
    value = Codec("case_event").encode(event.to_avro())
    write_case(secure, "camhs-adapter", passwords["camhs-adapter"], "camhs", value)

    workers = as_user(secure, "hub-workers", passwords["hub-workers"]).model_copy(
        update={"worker_data": tmp_path / "worker", "metrics_port": free_port()}
    )
    worker = WorkerProcess(workers, tmp_path / "worker.log")
    worker.start()
    try:
        samples = wait_for(
            worker,
            lambda s: (
                s.get("hub_events_counted") == 1
                and f'hub_consumer_group_lag{{topic="{secure.case_topic("camhs")}"}}' in s
            ),
            "the event counted and the group's lag reported",
        )
        assert samples["hub_events_deferred_waiting"] == 0  # the replay group described
        publisher = as_user(secure, "hub-publisher", passwords["hub-publisher"])
        released = hub(
            publisher,
            "publish",
            "--now",
            "--period",
            "2026-10",
            "--wait",
            "60",
            "--reason",
            "test release",
        )
        assert released.returncode == 0, released.stderr[-3000:]
        assert "released monthly 2026-10 revision 0" in released.stdout
    finally:
        worker.stop()
    assert "uthoriz" not in (tmp_path / "worker.log").read_text()
