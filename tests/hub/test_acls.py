"""The ACLs the agreement implies: exactly what each principal needs, and a reconciliation
that removes the hub's other allow rules and never touches anyone else's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import NoError

from hub.agreement.model import Agreement, load_agreement
from hub.ops import acls
from hub.ops.acls import Grant, apply_acls, derived_acls, managed, rule_text
from hub.settings import HubSettings
from streams.deferred import replay_group
from streams.publish.publisher import changelog_topic
from tests.support.agreements import EXAMPLE_AGREEMENT, EXAMPLE_PARTNERS, agreement_problems

PARTNERS = EXAMPLE_PARTNERS
SETTINGS = HubSettings(topic_namespace="ns.")
APP = "ns.online-risk-hub"


def topic(principal: str, name: str, *operations: str) -> set[Grant]:
    return {Grant(principal=principal, name=name, operation=op) for op in operations}


def example() -> Agreement:
    return load_agreement(EXAMPLE_AGREEMENT)


def by_principal(grants: list[Grant]) -> dict[str, set[Grant]]:
    found: dict[str, set[Grant]] = {}
    for grant in grants:
        found.setdefault(grant.principal, set()).add(grant)
    return found


def test_the_example_agreement_implies_exactly_these_grants() -> None:
    grants = derived_acls(example(), SETTINGS)
    assert grants == sorted(grants) and len(set(grants)) == len(grants)
    mine = by_principal(grants)
    cases = [f"ns.cases.{partner}" for partner in PARTNERS]

    audit = "ns.partnership.audit.v1"
    assert mine["User:camhs-adapter"] == topic(
        "User:camhs-adapter", "ns.cases.camhs", "WRITE", "DESCRIBE"
    ) | topic("User:camhs-adapter", audit, "WRITE", "DESCRIBE")

    workers = "User:hub-workers"
    expected_workers = {
        *(g for name in cases for g in topic(workers, name, "READ", "DESCRIBE")),
        *topic(workers, "ns.deferred.cases", "WRITE", "DESCRIBE"),
        Grant(principal=workers, resource="GROUP", name=APP, operation="READ"),
        Grant(
            principal=workers,
            resource="GROUP",
            name=f"{APP}-deferred-replay",
            operation="DESCRIBE",
        ),
        *(
            Grant(
                principal=workers,
                resource="TOPIC",
                name=f"{APP}-",
                pattern="PREFIXED",
                operation=op,
            )
            for op in ("CREATE", "READ", "WRITE", "DESCRIBE")
        ),
    }
    assert mine[workers] == expected_workers

    publisher = "User:hub-publisher"
    expected_publisher = {
        *topic(publisher, f"{APP}-record-versions-changelog", "READ", "DESCRIBE"),
        *(g for name in cases for g in topic(publisher, name, "DESCRIBE")),
        *topic(publisher, "ns.partnership.trends.v1", "READ", "WRITE", "DESCRIBE"),
        # Each release's audit entry, never reading the trail.
        *topic(publisher, audit, "WRITE", "DESCRIBE"),
        # Forced releases asked of the service, and its group of one.
        *topic(publisher, "ns.publish.requests", "READ", "WRITE", "DESCRIBE"),
        *(
            Grant(
                principal=publisher,
                resource="GROUP",
                name=f"{APP}-publisher-requests",
                operation=op,
            )
            for op in ("READ", "DESCRIBE")
        ),
        *(
            Grant(
                principal=publisher,
                resource="TRANSACTIONAL_ID",
                name=f"{APP}-publisher-",
                pattern="PREFIXED",
                operation=op,
            )
            for op in ("WRITE", "DESCRIBE")
        ),
    }
    assert mine[publisher] == expected_publisher

    assert mine["User:analysts"] == topic(
        "User:analysts", "ns.partnership.trends.v1", "READ", "DESCRIBE"
    )
    # The audit trail's one reader besides the operator reads it and nothing else.
    assert mine["User:ig-lead"] == topic("User:ig-lead", audit, "READ", "DESCRIBE")
    audit_readers = {g.principal for g in grants if g.name == audit and g.operation == "READ"}
    assert audit_readers == {"User:ig-lead"}
    # Every partner, both services, the one reader and the auditor; nobody else.
    assert set(mine) == {
        *(f"User:{partner}-adapter" for partner in PARTNERS),
        workers,
        publisher,
        "User:analysts",
        "User:ig-lead",
    }
    assert not any(grant.resource == "CLUSTER" for grant in grants)


def test_a_partner_may_write_its_own_topic_and_touch_no_other() -> None:
    agreement = example()
    mine = by_principal(derived_acls(agreement, SETTINGS))
    for partner in agreement.partners:
        own = f"ns.{partner.topic}"
        assert mine[partner.principal] == topic(
            partner.principal, own, "WRITE", "DESCRIBE"
        ) | topic(partner.principal, "ns.partnership.audit.v1", "WRITE", "DESCRIBE")
        others = {f"ns.{p.topic}" for p in agreement.partners} - {own}
        assert not any(grant.name in others for grant in mine[partner.principal])
    # Only the workers read a case topic; only the publisher writes the trends.
    case_readers = {
        g.principal
        for g in derived_acls(agreement, SETTINGS)
        if g.operation == "READ" and ".cases." in g.name
    }
    assert case_readers == {"User:hub-workers"}
    trend_writers = {
        g.principal
        for g in derived_acls(agreement, SETTINGS)
        if g.operation == "WRITE" and g.name == "ns.partnership.trends.v1"
    }
    assert trend_writers == {"User:hub-publisher"}


def test_the_names_granted_are_the_ones_the_services_use() -> None:
    assert changelog_topic(SETTINGS) == f"{APP}-{acls.CHANGELOG_SUFFIX}"
    assert replay_group(SETTINGS) == f"{APP}-{acls.REPLAY_GROUP_SUFFIX}"
    assert SETTINGS.worker_app_id == APP
    # Faust's internal topics: the table changelog and the assignor's leader topic.
    for internal in (changelog_topic(SETTINGS), f"{APP}-__assignor-__leader"):
        assert internal.startswith(f"{APP}-")


def test_the_services_principals_come_from_the_agreement() -> None:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    data["services"] = {"publisher": {"principal": "User:trends-release"}}
    agreement = Agreement.model_validate(data)
    assert agreement.services.workers.principal == "User:hub-workers"  # the default
    principals = {grant.principal for grant in derived_acls(agreement, SETTINGS)}
    assert "User:trends-release" in principals and "User:hub-publisher" not in principals

    del data["services"]
    defaults = Agreement.model_validate(data).services
    assert (defaults.workers.principal, defaults.publisher.principal) == (
        "User:hub-workers",
        "User:hub-publisher",
    )


def test_a_principal_serves_one_role_only(tmp_path: Path) -> None:
    base = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))

    data = copy.deepcopy(base)
    data["services"]["publisher"]["principal"] = "User:analysts"
    data["readers"].append(
        {"principal": "User:police-adapter", "topics": ["partnership.trends.v1"]}
    )
    data["partners"][1]["principal"] = "User:camhs-adapter"
    found = agreement_problems(tmp_path, data)
    assert set(found) == {
        "services.publisher.principal",
        "readers[1].principal",
        "partners[1].principal",
    }
    assert (
        "'User:analysts' is already used at readers[0].principal"
        in found["services.publisher.principal"]
    )
    assert "already used at partners[2].principal" in found["readers[1].principal"]
    assert "already used at partners[0].principal" in found["partners[1].principal"]

    # A service's default counts: the partner naming it is the one at fault.
    data = copy.deepcopy(base)
    del data["services"]
    data["partners"][3]["principal"] = "User:hub-workers"
    found = agreement_problems(tmp_path, data)
    assert found == {
        "partners[3].principal": "principal 'User:hub-workers' is already used at"
        " services.workers.principal (the default); each partner, reader, service and"
        " approver needs a principal of its own"
    }

    data = copy.deepcopy(base)
    data["services"] = {
        "workers": {"principal": "hub-workers"},
        "publisher": {"principal": "User:hub-workers"},
    }
    found = agreement_problems(tmp_path, data)
    assert set(found) == {"services.workers.principal"}
    assert "should match pattern" in found["services.workers.principal"]

    data = copy.deepcopy(base)
    data["services"]["publisher"]["principal"] = "User:hub-workers"
    assert set(agreement_problems(tmp_path, data)) == {"services.publisher.principal"}


def test_a_grant_is_one_kafka_acl() -> None:
    grant = Grant(
        principal="User:hub-publisher",
        resource="TRANSACTIONAL_ID",
        name="hub-publisher-",
        pattern="PREFIXED",
        operation="WRITE",
    )
    assert grant.acl() == ACL(
        "User:hub-publisher",
        "*",
        ACLOperation.WRITE,
        ACLPermissionType.ALLOW,
        ResourcePattern(
            ResourceType.TRANSACTIONAL_ID, "hub-publisher-", ACLResourcePatternType.PREFIXED
        ),
    )
    assert str(grant) == "User:hub-publisher WRITE transactional-id-prefix hub-publisher-"
    reader = Grant(principal="User:analysts", name="partnership.trends.v1", operation="READ")
    assert str(reader) == "User:analysts READ topic partnership.trends.v1"
    cluster = Grant(
        principal="User:x", resource="CLUSTER", name="kafka-cluster", operation="IDEMPOTENT_WRITE"
    )
    assert cluster.acl().resource_pattern.resource_type == ResourceType.CLUSTER
    with pytest.raises(ValueError, match="PREFIXED pattern for CLUSTER"):
        Grant(
            principal="User:x", resource="CLUSTER", name="k", pattern="PREFIXED", operation="ALTER"
        )
    with pytest.raises(KeyError):
        Grant(principal="User:x", name="t", operation="SCRIBBLE")


def test_the_hub_manages_its_own_resources_only() -> None:
    agreement = example()

    def is_managed(kind: ResourceType, name: str, prefixed: bool = False) -> bool:
        pattern = ACLResourcePatternType.PREFIXED if prefixed else ACLResourcePatternType.LITERAL
        return managed(agreement, SETTINGS, ResourcePattern(kind, name, pattern))

    assert is_managed(ResourceType.TOPIC, "ns.cases.camhs")
    assert is_managed(ResourceType.TOPIC, "ns.cases.a-partner-that-left")
    assert is_managed(ResourceType.TOPIC, "ns.cases.", prefixed=True)
    assert is_managed(ResourceType.TOPIC, "ns.deferred.cases")
    assert is_managed(ResourceType.TOPIC, "ns.partnership.trends.v1")
    assert is_managed(ResourceType.TOPIC, f"{APP}-record-versions-changelog")
    assert is_managed(ResourceType.GROUP, APP)
    assert is_managed(ResourceType.GROUP, f"{APP}-deferred-replay")
    assert is_managed(ResourceType.TRANSACTIONAL_ID, f"{APP}-publisher-", prefixed=True)

    assert not is_managed(ResourceType.TOPIC, "cases.camhs")  # another namespace
    assert not is_managed(ResourceType.TOPIC, "ns.audit.log")
    assert not is_managed(ResourceType.TOPIC, "*")
    assert not is_managed(ResourceType.TOPIC, APP)  # not one of the workers' topics
    assert not is_managed(ResourceType.GROUP, "ns.online-risk-hubby")
    assert not is_managed(ResourceType.GROUP, "analysts-dashboard")
    assert not is_managed(ResourceType.CLUSTER, "kafka-cluster")
    # Everything derived is managed, so what apply creates it can also remove.
    for grant in derived_acls(agreement, SETTINGS):
        assert managed(agreement, SETTINGS, grant.acl().resource_pattern), grant


class FakeAdmin:
    """The ACL calls of KafkaAdminClient over a set of ACLs."""

    def __init__(self, rules: set[ACL]) -> None:
        self.rules = rules
        self.closed = False

    def describe_acls(self, rule_filter: ACLFilter) -> tuple[list[ACL], type[NoError]]:
        wanted = rule_filter.permission_type
        return [acl for acl in self.rules if acl.permission_type == wanted], NoError

    def create_acls(self, rules: list[ACL]) -> dict[str, list[Any]]:
        self.rules.update(rules)
        return {"succeeded": list(rules), "failed": []}

    def delete_acls(self, filters: list[ACL]) -> list[tuple[ACL, list[ACL], type[NoError]]]:
        results = []
        for rule in filters:
            matched = [rule] if rule in self.rules else []
            self.rules.difference_update(matched)
            results.append((rule, matched, NoError))
        return results

    def close(self) -> None:
        self.closed = True


def rule(principal: str, name: str, operation: str, *, host: str = "*", allow: bool = True) -> ACL:
    permission = ACLPermissionType.ALLOW if allow else ACLPermissionType.DENY
    return ACL(
        principal,
        host,
        ACLOperation[operation],
        permission,
        ResourcePattern(ResourceType.TOPIC, name, ACLResourcePatternType.LITERAL),
    )


def test_apply_creates_what_is_missing_and_removes_only_the_hubs_other_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agreement = example()
    wanted = {grant.acl() for grant in derived_acls(agreement, SETTINGS)}
    foreign = {
        rule("User:monitoring", "ns.audit.log", "READ"),
        rule("User:monitoring", "*", "DESCRIBE"),
        rule("User:camhs-adapter", "ns.cases.police", "WRITE", allow=False),  # a deny
    }
    stale = {
        rule("User:gone-adapter", "ns.cases.gone", "WRITE"),
        rule("User:analysts", "ns.cases.camhs", "READ"),
        rule("User:analysts", "ns.partnership.trends.v1", "READ", host="10.0.0.9"),
    }
    kept = set(list(wanted)[:10])
    admin = FakeAdmin(foreign | stale | kept)
    monkeypatch.setattr(acls, "admin_client", lambda settings, client_id: admin)

    changes = apply_acls(SETTINGS, agreement)

    assert set(changes.created) == wanted - kept
    assert set(changes.removed) == stale
    assert admin.rules == wanted | foreign
    assert admin.closed
    assert changes.summary() == f"{len(wanted) - 10} created, 3 removed"
    again = apply_acls(SETTINGS, agreement)
    assert (again.created, again.removed) == ([], [])
    assert rule_text(rule("User:analysts", "t", "READ", host="10.0.0.9")) == (
        "User:analysts READ topic t from 10.0.0.9"
    )
