"""The topics the hub needs, with explicit partition counts and configs.

`hub topics apply` creates what is missing and brings the configs of what
exists back to this declaration; running it twice changes nothing. The
data-sharing agreement drives it: a case topic per partner (the topic the
partner names, which its ACLs grant), each publication's topic, and the
retention of both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import AuthorizationError, TopicAlreadyExistsError

from hub.agreement.model import Agreement, Retention
from hub.audit import audit_topic
from hub.errors import BrokerError
from hub.kafka.client import admin_client, min_insync
from hub.kafka.security import principal
from hub.settings import HubSettings

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated,"
            f" {len(self.unchanged)} unchanged"
        )


def declared_topics(settings: HubSettings, agreement: Agreement) -> list[TopicSpec]:
    """Every topic the hub owns, from the agreement: each partner's case topic, the
    deferred topic, the publish-requests topic, each publication's topic and the audit
    topic, with the agreement's retention. Faust creates its own changelog and repartition
    topics."""
    replication = settings.replication_factor
    case_config = case_topic_config(agreement.retention, replication)
    topics = [
        TopicSpec(settings.topic(topic), settings.case_partitions, case_config)
        for topic in agreement.case_topics
    ]
    # Events the worker could not read yet (a newer schema), kept as long as case events.
    topics.append(TopicSpec(settings.deferred_topic, settings.case_partitions, case_config))
    # Forced releases asked of the publisher service, and its answers: one partition,
    # in order; a request is worth nothing once its asker has stopped waiting.
    topics.append(TopicSpec(settings.publish_requests_topic, 1, requests_config(replication)))
    trends_config = publication_topic_config(agreement.retention, replication)
    topics.extend(
        TopicSpec(settings.topic(topic), 3, trends_config) for topic in agreement.publication_topics
    )
    # Staged releases of two-person publications, if any (hub release): one per release,
    # its latest state kept; cells as they would be published, kept as published ones.
    if any(schedule.approval == "two-person" for schedule in agreement.publication):
        topics.append(TopicSpec(settings.staged_releases_topic, 1, trends_config))
    # The audit trail (hub.audit): one partition, so entries keep the order written.
    audit_config = audit_topic_config(agreement.retention, replication)
    topics.append(TopicSpec(audit_topic(settings), 1, audit_config))
    return topics


def requests_config(replication: int = 1) -> dict[str, str]:
    """Forced-release requests and answers, worth nothing after a week."""
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(7 * _DAY_MS),
        "min.insync.replicas": min_insync(replication),
    }


def case_topic_config(retention: Retention, replication: int = 1) -> dict[str, str]:
    """A case topic keeps each event `case_events_days`, then deletes it. Its messages
    carry the time the broker appended them (not the sender's clock): what lateness and
    retention are measured by."""
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention.case_events_days * _DAY_MS),
        "min.insync.replicas": min_insync(replication),
        "message.timestamp.type": "LogAppendTime",
    }


def publication_topic_config(retention: Retention, replication: int = 1) -> dict[str, str]:
    """A publication topic is compacted: one record per period and cell, the latest
    revision kept. With `trends_days` a cell is also deleted that many days after its
    release; without, nothing is deleted by age."""
    if retention.trends_days is None:
        policy, ms = "compact", -1
    else:
        policy, ms = "compact,delete", retention.trends_days * _DAY_MS
    return {
        "cleanup.policy": policy,
        "retention.ms": str(ms),
        "min.insync.replicas": min_insync(replication),
    }


def audit_topic_config(retention: Retention, replication: int = 1) -> dict[str, str]:
    """The audit topic is never compacted: every entry stays, for `audit_days` or for ever."""
    ms = -1 if retention.audit_days is None else retention.audit_days * _DAY_MS
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(ms),
        "min.insync.replicas": min_insync(replication),
    }


def apply_topics(settings: HubSettings, specs: list[TopicSpec]) -> ApplyReport:
    """Create missing topics and set declared configs on existing ones."""
    report = ApplyReport()
    admin = admin_client(settings, "hub-topics")
    try:
        existing = set(admin.list_topics())
        for spec in specs:
            try:
                if spec.name not in existing and _create(admin, spec, settings.replication_factor):
                    report.created.append(spec.name)
                elif _reconcile(admin, spec):
                    report.updated.append(spec.name)
                else:
                    report.unchanged.append(spec.name)
            except (AuthorizationError, ValueError) as exc:
                # kafka-python reports a refused DescribeConfigs as a ValueError.
                raise BrokerError(
                    f"{principal(settings)} may not create or configure topic {spec.name} ({exc});"
                    " `hub topics apply` runs as the operator, a super user of the cluster"
                ) from exc
    finally:
        admin.close()
    return report


def _create(admin: KafkaAdminClient, spec: TopicSpec, replication: int) -> bool:
    """Create one topic; False when it already existed (a stale topic list)."""
    topic = NewTopic(spec.name, spec.partitions, replication, topic_configs=spec.config)
    try:
        admin.create_topics([topic])
    except TopicAlreadyExistsError:
        return False
    _await_visible(admin, spec)
    return True


def _await_visible(admin: KafkaAdminClient, spec: TopicSpec, timeout: float = 15.0) -> None:
    """Wait until the broker's metadata shows the new topic with its partitions and configs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (described,) = admin.describe_topics([spec.name])
        if (
            len(described.get("partitions") or ()) == spec.partitions
            and current_config(admin, spec.name).items() >= spec.config.items()
        ):
            return
        time.sleep(0.1)
    raise BrokerError(f"topic {spec.name} was created but is not visible after {timeout:.0f}s")


def current_config(admin: KafkaAdminClient, name: str) -> dict[str, str]:
    response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    return {key: entry["value"] for key, entry in response["topic"].get(name, {}).items()}


def _reconcile(admin: KafkaAdminClient, spec: TopicSpec) -> bool:
    """Bring an existing topic to its declaration; True if anything changed."""
    (described,) = admin.describe_topics([spec.name])
    have = len(described["partitions"])
    if have > spec.partitions:
        raise BrokerError(
            f"topic {spec.name} has {have} partitions but {spec.partitions} are declared;"
            " Kafka cannot shrink a topic. Recreate it or change HUB_CASE_PARTITIONS."
        )
    if have < spec.partitions:
        # Kafka would send a key's later messages to another partition than its earlier
        # ones: a child's events to another worker's state, a cell's revisions past
        # compaction. Refused, with the way to migrate.
        raise BrokerError(
            f"topic {spec.name} has {have} partitions and {spec.partitions} are declared;"
            " adding partitions would move each child's later events to another partition"
            f" than its earlier ones. Set HUB_CASE_PARTITIONS back to {have}, or migrate to"
            ' a new topic namespace (docs/deploy.md, "Changing the partition count").'
        )
    changed = False
    current = current_config(admin, spec.name)
    if any(current.get(k) != v for k, v in spec.config.items()):
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.config)])
        changed = True
    return changed
