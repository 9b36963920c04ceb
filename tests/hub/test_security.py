"""Security on: a broker with a SCRAM listener and ACLs derived from the agreement.

The analyst principal reads the published trends with its own credentials and
nothing else; a wrong password and an agency topic are refused with errors that
say what to do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer
from pydantic import SecretStr

from hub.agreement.model import load_agreement
from hub.codec import Codec
from hub.models import TrendSnapshot
from hub.ops.acls import Grant, derived_acls
from hub.ops.broker import Broker
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.agreements import agreement_of, write_agreement
from tests.support.processes import free_port, hub


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


def test_agreement_implies_least_privilege() -> None:
    settings = HubSettings(topic_namespace="ns.")
    grants = derived_acls(load_agreement(settings.agreement), settings)
    by_principal: dict[str, set[tuple[str, str]]] = {}
    for grant in grants:
        by_principal.setdefault(grant.principal, set()).add((grant.operation, grant.topic))
    assert by_principal["User:analysts"] == {
        ("READ", "ns.partnership.trends.v1"),
        ("DESCRIBE", "ns.partnership.trends.v1"),
    }
    assert by_principal["User:camhs-adapter"] == {
        ("WRITE", "ns.cases.camhs"),
        ("DESCRIBE", "ns.cases.camhs"),
    }
    # No agency reads anything; nobody but the analysts reads the trends.
    assert not any(g.operation == "READ" and g.principal != "User:analysts" for g in grants)
    assert Grant("User:analysts", "READ", "ns.cases.camhs") not in grants


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
