"""The ACLs the agreement implies, and SCRAM credentials.

`derived_acls` turns the agreement into allow rules, one principal at a time,
each with exactly what it needs:

- a partner writes (and describes) its own case topic, and nothing else;
- the stream workers (``services.workers``) read the case topics in their
  consumer group, write the deferred topic, and create, read and write their
  own Faust topics (named with the app id: the table changelog, the assignor's
  leader topic);
- the publisher (``services.publisher``) reads the workers' changelog, looks
  up the case topics' end offsets, reads back and writes the publication
  topics, in transactions with its own transactional ids;
- a reader reads (and describes) the topics listed for it;
- partners and the publisher write the audit topic (``hub.audit``) and cannot read
  it; the agreement's audit readers read it;
- the publisher writes and reads the staged-releases topic; the agreement's
  approvers read it, and write it, the publication topics and the audit topic,
  in transactions with one transactional id of their own.

`apply_acls` (``hub security acls --apply``) reconciles the cluster with them:
it creates what is missing and removes every other allow rule on the
resources the hub manages (`managed`), such as a departed partner's; it never
touches rules on other resources. `set_password` (``hub security
set-password``) stores a SCRAM credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from hub.agreement.model import Agreement
from hub.audit import audit_topic
from hub.errors import BrokerError, ConfigError
from hub.kafka.client import admin_client
from hub.settings import HubSettings, case_topic_name

#: The kinds of resource the hub grants on (`kafka.admin.ResourceType` names).
Resource = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID", "CLUSTER"]
#: LITERAL: the resource of that name; PREFIXED: every resource whose name starts so.
Pattern = Literal["LITERAL", "PREFIXED"]
#: The one name of the CLUSTER resource.
CLUSTER_NAME = "kafka-cluster"

#: The workers' record-versions changelog after ``<app id>-``: the name Faust gives the
#: changelog of the table ``streams.records.RECORD_VERSIONS_TABLE``, which the publisher
#: reads (``streams.publish.publisher.changelog_topic``).
CHANGELOG_SUFFIX = "record-versions-changelog"
#: The consumer group of ``hub streams replay-deferred`` after ``<app id>-``
#: (``streams.deferred.replay_group``); the workers' lag gauges describe it.
REPLAY_GROUP_SUFFIX = "deferred-replay"

_LABELS: dict[tuple[str, str], str] = {
    ("TOPIC", "LITERAL"): "topic",
    ("TOPIC", "PREFIXED"): "topic-prefix",
    ("GROUP", "LITERAL"): "group",
    ("GROUP", "PREFIXED"): "group-prefix",
    ("TRANSACTIONAL_ID", "LITERAL"): "transactional-id",
    ("TRANSACTIONAL_ID", "PREFIXED"): "transactional-id-prefix",
    ("CLUSTER", "LITERAL"): "cluster",
}


@dataclass(frozen=True, order=True, kw_only=True)
class Grant:
    """One allow rule, from any host: `principal` may do `operation` on the resource
    (`resource`, `name`, `pattern`). Sorted by principal, then resource."""

    principal: str
    resource: Resource = "TOPIC"
    name: str
    pattern: Pattern = "LITERAL"
    operation: str  # an ACLOperation name: READ, WRITE, DESCRIBE, CREATE, ...

    def __post_init__(self) -> None:
        if (self.resource, self.pattern) not in _LABELS:
            raise ValueError(f"no {self.pattern} pattern for {self.resource}")
        ACLOperation[self.operation]  # a KeyError names an operation Kafka does not know

    def acl(self) -> ACL:
        return ACL(
            principal=self.principal,
            host="*",
            operation=ACLOperation[self.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[self.resource], self.name, ACLResourcePatternType[self.pattern]
            ),
        )

    def __str__(self) -> str:
        """``User:analysts READ topic partnership.trends.v1``"""
        return rule_text(self.acl())


def rule_text(acl: ACL) -> str:
    """An allow rule as `hub security acls` prints it (the host only when not any)."""
    pattern = acl.resource_pattern
    kind = (
        ResourceType(pattern.resource_type).name,
        ACLResourcePatternType(pattern.pattern_type).name,
    )
    label = _LABELS.get(kind, " ".join(kind).lower())
    host = "" if acl.host == "*" else f" from {acl.host}"
    return (
        f"{acl.principal} {ACLOperation(acl.operation).name} {label} {pattern.resource_name}{host}"
    )


def _grants(
    principal: str,
    operations: Iterable[str],
    name: str,
    resource: Resource = "TOPIC",
    pattern: Pattern = "LITERAL",
) -> list[Grant]:
    return [
        Grant(principal=principal, resource=resource, name=name, pattern=pattern, operation=op)
        for op in operations
    ]


def derived_acls(agreement: Agreement, settings: HubSettings) -> list[Grant]:
    """Every allow rule the agreement implies, names with the hub's namespace, sorted.

    Nobody is granted anything on the cluster resource. An idempotent producer (the
    adapters', the publisher's) needs no IDEMPOTENT_WRITE there: since Kafka 2.8 (KIP-679)
    the broker allows it to any principal that may WRITE some topic, and the hub's broker
    is Kafka 4.4 (deploy/kafka/pom.xml). Nor do the workers need CREATE there: CREATE on
    a topic's name lets a principal create that topic.
    """
    app = settings.worker_app_id
    case_topics = [settings.topic(topic) for topic in agreement.case_topics]
    publication_topics = [settings.trends_topic]
    publication_topics += [settings.topic(t) for t in agreement.publication_topics]
    grants: set[Grant] = set()

    audit = audit_topic(settings)
    for partner in agreement.partners:
        grants.update(
            _grants(partner.principal, ("WRITE", "DESCRIBE"), settings.topic(partner.topic))
        )
        # Its submissions and key rotations (hub.audit), written, never read.
        grants.update(_grants(partner.principal, ("WRITE", "DESCRIBE"), audit))

    workers = agreement.services.workers.principal
    for topic in case_topics:
        grants.update(_grants(workers, ("READ", "DESCRIBE"), topic))
    # Offsets are committed in the group named after the app id (READ lets a member join,
    # commit and fetch them; it implies DESCRIBE).
    grants.update(_grants(workers, ("READ",), app, "GROUP"))
    # The lag gauges (streams.lag) fetch the replay's committed offsets.
    grants.update(_grants(workers, ("DESCRIBE",), f"{app}-{REPLAY_GROUP_SUFFIX}", "GROUP"))
    grants.update(_grants(workers, ("WRITE", "DESCRIBE"), settings.deferred_topic))
    # Faust declares its internal topics, all named "<app id>-...": the table changelog
    # (written in batches, read back on recovery) and "<app id>-__assignor-__leader".
    # It creates one that does not exist yet (CreateTopics, no DescribeConfigs).
    internal = ("CREATE", "READ", "WRITE", "DESCRIBE")
    grants.update(_grants(workers, internal, f"{app}-", "TOPIC", "PREFIXED"))

    publisher = agreement.services.publisher.principal
    grants.update(_grants(publisher, ("READ", "DESCRIBE"), f"{app}-{CHANGELOG_SUFFIX}"))
    # Only the case topics' partitions and end offsets (the wait for the workers):
    # DESCRIBE, never READ, so the publisher cannot read a case event.
    for topic in case_topics:
        grants.update(_grants(publisher, ("DESCRIBE",), topic))
    # It reads its past releases back (read_committed) and sends new ones.
    for topic in publication_topics:
        grants.update(_grants(publisher, ("READ", "WRITE", "DESCRIBE"), topic))
    # One transaction per release, with the transactional id "<app id>-publisher-<role>".
    grants.update(
        _grants(
            publisher, ("WRITE", "DESCRIBE"), f"{app}-publisher-", "TRANSACTIONAL_ID", "PREFIXED"
        )
    )
    # The publisher's readers (hub.kafka.client.TopicReader) use no consumer group.
    # Forced releases (`hub publish --now`, run with the publisher's credentials) are
    # asked of the service on its requests topic, read in the group "<app id>-publisher-
    # requests", whose members `hub publish --now` describes to find the service.
    grants.update(
        _grants(publisher, ("READ", "WRITE", "DESCRIBE"), settings.publish_requests_topic)
    )
    grants.update(_grants(publisher, ("READ", "DESCRIBE"), f"{app}-publisher-requests", "GROUP"))
    # Each release's audit entry, in the release's transaction: written, never read.
    grants.update(_grants(publisher, ("WRITE", "DESCRIBE"), audit))
    # The audit trail is read by the operator (a super user) and the audit readers only.
    for auditor in agreement.audit.readers:
        grants.update(_grants(auditor, ("READ", "DESCRIBE"), audit))

    grants.update(_approval_grants(agreement, settings, publication_topics))

    # `hub subscribe` reads without a consumer group (TopicReader) too: topics only.
    for reader in agreement.readers:
        for name in reader.topics:
            grants.update(_grants(reader.principal, ("READ", "DESCRIBE"), settings.topic(name)))
    return sorted(grants)


def _approval_grants(
    agreement: Agreement, settings: HubSettings, publication_topics: Iterable[str]
) -> list[Grant]:
    """Two-person release (``streams.publish.approval``): the publisher stages releases,
    an approver reads them, and publishes one (cells, audit entry and the staged record's
    new state in one transaction under ``<app id>-release-approval``) or rejects it."""
    staged = settings.staged_releases_topic
    grants: list[Grant] = []
    if any(schedule.approval == "two-person" for schedule in agreement.publication):
        publisher = agreement.services.publisher.principal
        grants += _grants(publisher, ("READ", "WRITE", "DESCRIBE"), staged)
    transactions = f"{settings.worker_app_id}-release-approval"
    for approver in agreement.approval.approvers:
        grants += _grants(approver, ("READ", "WRITE", "DESCRIBE"), staged)
        for topic in publication_topics:
            grants += _grants(approver, ("READ", "WRITE", "DESCRIBE"), topic)
        grants += _grants(approver, ("WRITE", "DESCRIBE"), audit_topic(settings))
        grants += _grants(approver, ("WRITE", "DESCRIBE"), transactions, "TRANSACTIONAL_ID")
    return grants


def managed(agreement: Agreement, settings: HubSettings, resource: ResourcePattern) -> bool:
    """True for a resource whose allow rules are the agreement's alone: a topic under the
    case topics' prefix (``cases.``, partners past and present), the deferred topic, a
    publication topic, the audit topic, a topic or transactional id named
    ``<app id>-...``, and the groups ``<app id>`` and ``<app id>-...``. Never the
    cluster, nor any other resource."""
    name = str(resource.resource_name)
    app = settings.worker_app_id
    if resource.resource_type == ResourceType.TOPIC:
        publication = {settings.trends_topic, *map(settings.topic, agreement.publication_topics)}
        return (
            name.startswith(settings.topic(case_topic_name("")))
            or name == settings.deferred_topic
            or name == settings.publish_requests_topic
            or name == settings.staged_releases_topic
            or name == audit_topic(settings)
            or name in publication
            or name.startswith(f"{app}-")
        )
    if resource.resource_type == ResourceType.GROUP:
        return name == app or name.startswith(f"{app}-")
    if resource.resource_type == ResourceType.TRANSACTIONAL_ID:
        return name.startswith(f"{app}-")
    return False


@dataclass(frozen=True)
class AclChanges:
    """What one `apply_acls` did to the cluster."""

    created: list[ACL]
    removed: list[ACL]

    def summary(self) -> str:
        return f"{len(self.created)} created, {len(self.removed)} removed"


def _refused(exc: KafkaError) -> BrokerError:
    return BrokerError(
        f"the cluster refused the ACLs ({exc}); run this as a super user of the"
        " cluster, against a broker with an authorizer"
    )


def _allow_rules() -> ACLFilter:
    return ACLFilter(
        principal=None,
        host=None,
        operation=ACLOperation.ANY,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )


def apply_acls(settings: HubSettings, agreement: Agreement) -> AclChanges:
    """Make the allow rules on the resources the hub manages exactly `derived_acls`:
    create the missing ones, remove the others. Rules on any other resource, and deny
    rules, are left alone; a second run changes nothing."""
    wanted = {grant.acl() for grant in derived_acls(agreement, settings)}
    admin = admin_client(settings, "hub-security")
    try:
        existing, _ = admin.describe_acls(_allow_rules())
        present = {acl for acl in existing if managed(agreement, settings, acl.resource_pattern)}
        missing = sorted(wanted - present, key=repr)
        stale = sorted(present - wanted, key=repr)
        created = admin.create_acls(missing) if missing else {"succeeded": [], "failed": []}
        # Each filter names one whole rule (no ANY, no MATCH): it removes that rule only.
        deleted = admin.delete_acls(stale) if stale else []
    except KafkaError as exc:
        raise _refused(exc) from exc
    finally:
        admin.close()
    if created["failed"]:
        raise BrokerError(f"the cluster refused {len(created['failed'])} ACLs: {created['failed']}")
    removed: list[ACL] = []
    for rule, matched, error in deleted:
        if error.errno != 0:
            raise BrokerError(f"the cluster did not remove the ACL {rule}: {error.__name__}")
        removed.extend(matched)
    return AclChanges(created=list(created["succeeded"]), removed=removed)


def set_password(settings: HubSettings, user: str, password: str) -> None:
    """Store (or replace) `user`'s SCRAM credential for the configured mechanism."""
    if len(password) < 12:
        raise ConfigError("use a password of at least 12 characters")
    mechanism = settings.sasl_mechanism
    if not mechanism.startswith("SCRAM"):
        raise ConfigError(f"HUB_SASL_MECHANISM={mechanism}: only SCRAM credentials are stored")
    admin = admin_client(settings, "hub-security")
    try:
        errors = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, mechanism, password)]
        )
    except KafkaError as exc:
        errors = {user: str(exc)}
    finally:
        admin.close()
    if errors.get(user):
        raise BrokerError(f"the cluster refused the credential of {user}: {errors[user]}")
