"""Kubernetes manifests for the hub, generated from the agreement (``hub deploy``).

Kafka runs under the Strimzi operator; everything the hub needs of it comes from the
same derivations as the single-machine commands, so the two cannot drift apart:

- a ``Kafka`` cluster in KRaft mode with one node pool (controllers and brokers, three
  by default), a TLS listener with SCRAM-SHA-512 inside the cluster (and optionally one
  for the agencies outside it), Kafka's simple authorizer, the topic and user operators;
- a ``KafkaTopic`` per topic `hub topics apply` declares (``hub.ops.topics``), with the
  agreement's retention, plus the workers' record-versions changelog, so every topic
  the hub relies on has the cluster's replication factor;
- a ``KafkaUser`` per principal of the agreement, with exactly the allow rules of
  ``hub security acls`` (``hub.ops.acls.derived_acls``), and one for the operator, a
  super user with no rules;
- the stream workers (a StatefulSet: a stable pod name is the worker's static member
  id, and its RocksDB state survives a restart on its own volume) and the publisher
  (a Deployment of one), with the agreement in a ConfigMap and every password and the
  cluster's CA certificate referenced from the Secrets Strimzi writes, never embedded;
- a ConfigMap with Prometheus's scrape configuration (pods found by label) and the
  hub's recording and alerting rules.

`manifests` returns the files as text; ``hub deploy`` writes them to a folder.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from hub import resources
from hub.agreement.model import Agreement
from hub.errors import ConfigError
from hub.kafka.client import min_insync
from hub.ops.acls import CHANGELOG_SUFFIX, Grant, derived_acls
from hub.ops.topics import TopicSpec, declared_topics
from hub.settings import HubSettings

Manifest = dict[str, Any]

#: What every resource the hub generates is labelled with (Prometheus finds its pods so).
PART_OF = "online-risk-hub"
STRIMZI = "kafka.strimzi.io/v1"
#: Strimzi's names for the hub's resource types, patterns and operations.
_RESOURCE = {"TOPIC": "topic", "GROUP": "group", "TRANSACTIONAL_ID": "transactionalId"}
_PATTERN = {"LITERAL": "literal", "PREFIXED": "prefix"}
#: The internal listener's port (Strimzi's convention for TLS inside the cluster).
TLS_PORT = 9093
EXTERNAL_PORT = 9094
#: Where the pods find what is mounted into them.
AGREEMENT_DIR = "/etc/online-risk-hub/agreement"
CA_DIR = "/etc/online-risk-hub/ca"
STATE_DIR = "/var/lib/hub/worker"
#: A DNS-1123 subdomain: what Kubernetes accepts as most resources' names.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_EXTERNAL = ("none", "loadbalancer", "nodeport", "route", "ingress")
#: The Prometheus rule files shipped in deploy/prometheus/ that the scrape config loads.
RULE_FILES = ("rules.yml", "alerts.yml")


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What ``hub deploy`` is asked for, besides the agreement and the settings."""

    namespace: str = "online-risk-hub"
    cluster: str = "hub"
    brokers: int = 3
    workers: int = 2
    image: str = f"online-risk-hub:{version('online-risk-hub')}"
    storage: str = "100Gi"
    worker_storage: str = "10Gi"
    external: str = "loadbalancer"

    def __post_init__(self) -> None:
        for label, name in (("namespace", self.namespace), ("cluster", self.cluster)):
            if not _NAME.match(name) or len(name) > 63 or "." in name:
                raise ConfigError(
                    f"--{label} {name!r} is not a Kubernetes name: use lowercase letters,"
                    " digits and '-', at most 63 characters"
                )
        if self.brokers < 1 or self.workers < 1:
            raise ConfigError("--brokers and --workers must be at least 1")
        if self.external not in _EXTERNAL:
            raise ConfigError(f"--external must be one of {', '.join(_EXTERNAL)}")

    @property
    def replication(self) -> int:
        return min(3, self.brokers)

    @property
    def bootstrap(self) -> str:
        return f"{self.cluster}-kafka-bootstrap.{self.namespace}.svc:{TLS_PORT}"


def user_name(principal: str) -> str:
    """The KafkaUser for a principal ``User:<name>``: Strimzi's SCRAM users are
    ``User:<metadata.name>``, so the name must be a Kubernetes name as it is."""
    kind, _, name = principal.partition(":")
    if kind != "User" or not _NAME.match(name) or len(name) > 253:
        raise ConfigError(
            f"principal {principal!r} cannot be a Strimzi KafkaUser: it must be User:<name>"
            " with a name of lowercase letters, digits, '-' and '.'; rename it in the agreement"
        )
    return name


def topic_resource_name(topic: str) -> str:
    """A KafkaTopic's metadata name for a Kafka topic name (the name itself stays in
    ``spec.topicName``): lowercase, with '_' as '-'."""
    name = topic.lower().replace("_", "-")
    if not _NAME.match(name) or len(name) > 253:
        raise ConfigError(f"topic {topic!r} has no Kubernetes name; rename it in the agreement")
    return name


def _metadata(name: str, plan: Plan, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": plan.namespace,
        "labels": {"app.kubernetes.io/part-of": PART_OF, **labels},
    }


def _strimzi(kind: str, name: str, plan: Plan, spec: Mapping[str, Any]) -> Manifest:
    return {
        "apiVersion": STRIMZI,
        "kind": kind,
        "metadata": _metadata(name, plan, **{"strimzi.io/cluster": plan.cluster}),
        "spec": dict(spec),
    }


def kafka_cluster(plan: Plan, settings: HubSettings) -> list[Manifest]:
    """The Kafka cluster and its node pool: KRaft, TLS with SCRAM-SHA-512 for clients,
    the simple authorizer with the operator as its only super user."""
    scram = {"type": "scram-sha-512"}
    listeners: list[dict[str, Any]] = [
        {"name": "tls", "port": TLS_PORT, "type": "internal", "tls": True, "authentication": scram}
    ]
    if plan.external != "none":
        listeners.append(
            {
                "name": "external",
                "port": EXTERNAL_PORT,
                "type": plan.external,
                "tls": True,
                "authentication": scram,
            }
        )
    replication = plan.replication
    config = {
        "auto.create.topics.enable": False,
        "default.replication.factor": replication,
        "min.insync.replicas": int(min_insync(replication)),
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": int(min_insync(replication)),
    }
    kafka = _strimzi(
        "Kafka",
        plan.cluster,
        plan,
        {
            "kafka": {
                "listeners": listeners,
                "authorization": {"type": "simple", "superUsers": [settings.broker_operator]},
                "config": config,
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    )
    pool = _strimzi(
        "KafkaNodePool",
        "kafka",
        plan,
        {
            "replicas": plan.brokers,
            "roles": ["controller", "broker"],
            "storage": {
                "type": "jbod",
                "volumes": [
                    {
                        "id": 0,
                        "type": "persistent-claim",
                        "size": plan.storage,
                        "deleteClaim": False,
                        "kraftMetadata": "shared",
                    }
                ],
            },
        },
    )
    return [kafka, pool]


def hub_topics(plan: Plan, settings: HubSettings, agreement: Agreement) -> list[TopicSpec]:
    """The topics `hub topics apply` declares, at the cluster's replication factor, and
    the workers' record-versions changelog as Faust would create it (compacted)."""
    replicated = settings.model_copy(update={"replication_factor": plan.replication})
    topics = declared_topics(replicated, agreement)
    changelog = TopicSpec(
        f"{settings.worker_app_id}-{CHANGELOG_SUFFIX}",
        settings.case_partitions,
        {"cleanup.policy": "compact", "min.insync.replicas": min_insync(plan.replication)},
    )
    return [*topics, changelog]


def kafka_topics(plan: Plan, settings: HubSettings, agreement: Agreement) -> list[Manifest]:
    return [
        _strimzi(
            "KafkaTopic",
            topic_resource_name(topic.name),
            plan,
            {
                "topicName": topic.name,
                "partitions": topic.partitions,
                "replicas": plan.replication,
                "config": dict(sorted(topic.config.items())),
            },
        )
        for topic in hub_topics(plan, settings, agreement)
    ]


def principals(agreement: Agreement) -> list[str]:
    """Every principal the agreement names, once each, in a stable order."""
    named = [partner.principal for partner in agreement.partners]
    named += [agreement.services.workers.principal, agreement.services.publisher.principal]
    named += [reader.principal for reader in agreement.readers]
    named += list(agreement.audit.readers)
    named += list(agreement.approval.approvers)
    return list(dict.fromkeys(named))


def strimzi_acls(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    """One Strimzi ACL rule per resource, with its operations, in `Grant` order."""
    operations: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for grant in sorted(grants):
        if grant.resource not in _RESOURCE:
            raise ConfigError(f"no Strimzi rule for a grant on {grant.resource}: {grant}")
        operations[(grant.resource, grant.name, grant.pattern)].append(
            "".join(part.capitalize() for part in grant.operation.split("_"))
        )
    return [
        {
            "type": "allow",
            "resource": {"type": _RESOURCE[kind], "name": name, "patternType": _PATTERN[pattern]},
            "operations": sorted(ops),
            "host": "*",
        }
        for (kind, name, pattern), ops in operations.items()
    ]


def kafka_users(plan: Plan, settings: HubSettings, agreement: Agreement) -> list[Manifest]:
    """A SCRAM user per principal with its rules; Strimzi generates each password into a
    Secret of the user's name (key ``password``), which the pods and the agencies use."""
    grants = derived_acls(agreement, settings)
    by_principal: dict[str, list[Grant]] = defaultdict(list)
    for grant in grants:
        by_principal[grant.principal].append(grant)
    users = []
    for principal in principals(agreement):
        spec: dict[str, Any] = {"authentication": {"type": "scram-sha-512"}}
        spec["authorization"] = {"type": "simple", "acls": strimzi_acls(by_principal[principal])}
        users.append(_strimzi("KafkaUser", user_name(principal), plan, spec))
    operator = user_name(f"User:{settings.broker_operator}")
    # The operator (`hub topics apply`, `hub security acls`, `hub audit`) is a super
    # user of the cluster (Kafka's spec.kafka.authorization.superUsers): no rules.
    users.append(
        _strimzi("KafkaUser", operator, plan, {"authentication": {"type": "scram-sha-512"}})
    )
    return users


def _env(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def _client_env(plan: Plan, settings: HubSettings, principal: str) -> list[dict[str, Any]]:
    """The settings a hub pod needs to reach the cluster as `principal`: the password
    from the user's Secret, the CA from the cluster's."""
    user = user_name(principal)
    plain = {
        "HUB_BOOTSTRAP": plan.bootstrap,
        "HUB_SECURITY_PROTOCOL": "SASL_SSL",
        "HUB_SASL_MECHANISM": "SCRAM-SHA-512",
        "HUB_SASL_USERNAME": user,
        "HUB_SSL_CAFILE": f"{CA_DIR}/ca.crt",
        "HUB_AGREEMENT": f"{AGREEMENT_DIR}/agreement.yaml",
        "HUB_TOPIC_NAMESPACE": settings.topic_namespace,
        "HUB_APP_ID": settings.app_id,
        "HUB_CASE_PARTITIONS": str(settings.case_partitions),
        "HUB_REPLICATION_FACTOR": str(plan.replication),
        "HUB_METRICS_HOST": "0.0.0.0",  # noqa: S104 - scraped from other pods
        # One JSON object per log line, for the cluster's log collector.
        "HUB_LOG_FORMAT": "json",
    }
    secret = {"secretKeyRef": {"name": user, "key": "password"}}
    return [*_env(plain), {"name": "HUB_SASL_PASSWORD", "valueFrom": secret}]


def _volumes(plan: Plan) -> list[dict[str, Any]]:
    return [
        {"name": "agreement", "configMap": {"name": "hub-agreement"}},
        {"name": "cluster-ca", "secret": {"secretName": f"{plan.cluster}-cluster-ca-cert"}},
        {"name": "tmp", "emptyDir": {}},
    ]


#: The root file system is read-only: the agreement, the CA and a scratch /tmp mounted.
_MOUNTS: list[dict[str, Any]] = [
    {"name": "agreement", "mountPath": AGREEMENT_DIR, "readOnly": True},
    {"name": "cluster-ca", "mountPath": CA_DIR, "readOnly": True},
    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
]
_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,  # the image's `hub` user (deploy/docker/Dockerfile)
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _container(
    plan: Plan, name: str, args: list[str], env: list[dict[str, Any]], port: int
) -> dict[str, Any]:
    return {
        "name": name,
        "image": plan.image,
        "args": args,
        "env": env,
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}},
        "securityContext": _SECURITY,
        "volumeMounts": [dict(mount) for mount in _MOUNTS],
    }


def agreement_map(plan: Plan, agreement_text: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata("hub-agreement", plan),
        "data": {"agreement.yaml": agreement_text},
    }


def _headless(plan: Plan, name: str, labels: Mapping[str, str], port: int) -> Manifest:
    """A Service without an address: its DNS name resolves to each ready pod, which is
    how Prometheus finds them (``scrape_config``) and the StatefulSet names them."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, plan, **{"app.kubernetes.io/name": name}),
        "spec": {
            "clusterIP": "None",
            "selector": dict(labels),
            "ports": [{"name": "metrics", "port": port}],
        },
    }


def workers(plan: Plan, settings: HubSettings, agreement: Agreement) -> list[Manifest]:
    """The stream workers: at most one per case partition (more would sit idle).

    A StatefulSet, not a Deployment: each pod's stable name is its static member id in
    the consumer group (HUB_WORKER_INSTANCE_ID), so a restarted worker takes its
    partitions back without a rebalance, and its RocksDB state is on a volume of its
    own, read again rather than rebuilt from the changelog.
    """
    name = "hub-worker"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}
    env = _client_env(plan, settings, agreement.services.workers.principal)
    env += _env({"HUB_METRICS_PORT": str(settings.metrics_port), "HUB_WORKER_DATA": STATE_DIR})
    env.append(
        {
            "name": "HUB_WORKER_INSTANCE_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        }
    )
    container = _container(plan, name, ["streams", "worker"], env, settings.metrics_port)
    container["volumeMounts"].append({"name": "state", "mountPath": STATE_DIR})
    service = _headless(plan, name, labels, settings.metrics_port)
    stateful = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(name, plan, **{"app.kubernetes.io/name": name}),
        "spec": {
            "serviceName": name,
            "replicas": min(plan.workers, settings.case_partitions),
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    # The clean stop's own limit (HUB_SHUTDOWN_TIMEOUT), then some.
                    "terminationGracePeriodSeconds": round(settings.shutdown_timeout) + 15,
                    "securityContext": {"fsGroup": 10001},
                    "containers": [container],
                    "volumes": _volumes(plan),
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "state"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": plan.worker_storage}},
                    },
                }
            ],
        },
    }
    return [service, stateful]


def publisher(plan: Plan, settings: HubSettings, agreement: Agreement) -> list[Manifest]:
    """The publisher: one pod (its releases are transactions under one id), replaced,
    never doubled, on an upgrade."""
    name = "hub-publisher"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}
    env = _client_env(plan, settings, agreement.services.publisher.principal)
    env += _env({"HUB_PUBLISHER_METRICS_PORT": str(settings.publisher_metrics_port)})
    container = _container(
        plan, name, ["streams", "publisher"], env, settings.publisher_metrics_port
    )
    return [
        _headless(plan, name, labels, settings.publisher_metrics_port),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(name, plan, **{"app.kubernetes.io/name": name}),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 30,
                        "containers": [container],
                        "volumes": _volumes(plan),
                    },
                },
            },
        },
    ]


def scrape_config(plan: Plan, settings: HubSettings) -> dict[str, Any]:
    """Prometheus's configuration: the jobs ``hub-worker`` and ``hub-publisher`` of
    deploy/prometheus/prometheus.yml, each finding its pods through the DNS records of
    its headless Service (no access to the Kubernetes API needed), and the hub's rule
    files beside it. Agencies' adapters run outside the cluster: add them as static
    targets."""
    ports = {"hub-worker": settings.metrics_port, "hub-publisher": settings.publisher_metrics_port}
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [f"/etc/prometheus/{name}" for name in _rule_files()],
        "scrape_configs": [
            {
                "job_name": name,
                "dns_sd_configs": [
                    {"names": [f"{name}.{plan.namespace}.svc"], "type": "A", "port": port}
                ],
            }
            for name, port in ports.items()
        ],
    }


def _rule_files() -> list[str]:
    return [name for name in RULE_FILES if resources.deploy("prometheus", name).is_file()]


def prometheus_config(plan: Plan, settings: HubSettings) -> Manifest:
    data = {"prometheus.yml": _dump([scrape_config(plan, settings)])}
    for name in _rule_files():
        data[name] = resources.deploy("prometheus", name).read_text(encoding="utf-8")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata("hub-prometheus", plan),
        "data": data,
    }


def namespace(plan: Plan) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": plan.namespace, "labels": {"app.kubernetes.io/part-of": PART_OF}},
    }


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings (the agreement, the rules) as literal blocks; a
    value repeated is written again, not as an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def _dump(documents: list[Manifest]) -> str:
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


HEADER = (
    "# Generated by `hub deploy` from the data-sharing agreement; do not edit.\n"
    '# Regenerate after changing the agreement: docs/deploy.md, "Kubernetes with Strimzi".\n'
)


def manifests(
    plan: Plan, settings: HubSettings, agreement: Agreement, agreement_text: str
) -> dict[str, str]:
    """The files ``hub deploy`` writes, by name, in the order to apply them."""
    files = {
        "00-namespace.yaml": [namespace(plan)],
        "10-kafka.yaml": kafka_cluster(plan, settings),
        "20-topics.yaml": kafka_topics(plan, settings, agreement),
        "30-users.yaml": kafka_users(plan, settings, agreement),
        "40-hub.yaml": [
            agreement_map(plan, agreement_text),
            *workers(plan, settings, agreement),
            *publisher(plan, settings, agreement),
        ],
        "50-prometheus.yaml": [prometheus_config(plan, settings)],
    }
    return {name: HEADER + _dump(documents) for name, documents in files.items()}


def write(out: Path, files: Mapping[str, str]) -> list[Path]:
    """Write the files to `out`, removing generated files no longer produced."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.yaml"):
        if stale.name not in files and stale.read_text(encoding="utf-8").startswith(HEADER):
            stale.unlink()
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
