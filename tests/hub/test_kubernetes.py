"""`hub deploy`: the Kubernetes manifests checked in for the example agreement are what
the command writes, every resource validates against the schemas the cluster would
apply (Kubernetes' own API, Strimzi's CRDs from ../shared/reference/strimzi), and the
cluster they describe holds every principal, topic and ACL the agreement implies and
nothing more. The expected principals and topics are read from the agreement file here;
the expected ACLs are `hub security acls`'s own output, so the two commands cannot
disagree."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hub.settings import HubSettings
from tests.support.agreements import EXAMPLE_AGREEMENT
from tests.support.processes import hub

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "deploy" / "k8s"
STRIMZI = ROOT.parent / "shared" / "reference" / "strimzi"
CRDS = {
    "Kafka": "040-Crd-kafka.yaml",
    "KafkaTopic": "043-Crd-kafkatopic.yaml",
    "KafkaUser": "044-Crd-kafkauser.yaml",
    "KafkaNodePool": "045-Crd-kafkanodepool.yaml",
}
#: The Kubernetes release whose API schemas the core resources are checked against.
KUBERNETES = kubernetes_validate.utils.latest_version()
DAY_MS = 86_400_000


def settings() -> HubSettings:
    return HubSettings(agreement=EXAMPLE_AGREEMENT)


def documents(folder: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(folder.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return found


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("k8s")
    done = hub(settings(), "deploy", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return documents(out)


def closed(schema: Any) -> Any:
    """The CRD's schema with unknown fields refused: the API server would prune them
    without a word (a structural schema), so a misspelt field would silently vanish."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        result.setdefault("additionalProperties", False)
    return result


def crd_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((STRIMZI / CRDS[kind]).read_text(encoding="utf-8"))
    (served,) = [v for v in crd["spec"]["versions"] if v.get("served")]
    assert f"{crd['spec']['group']}/{served['name']}" == "kafka.strimzi.io/v1"
    schema = closed(served["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are the API server's, not the CRD's to describe.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def test_the_checked_in_manifests_are_what_hub_deploy_writes() -> None:
    done = hub(settings(), "deploy", "--out", str(CHECKED_IN), "--check")
    assert done.returncode == 0, done.stderr
    assert "6 files match the agreement" in done.stdout


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    shutil.copytree(CHECKED_IN, tmp_path / "k8s")
    users = tmp_path / "k8s" / "30-users.yaml"
    users.write_text(users.read_text(encoding="utf-8").replace("Describe", "Alter", 1))
    done = hub(settings(), "deploy", "--out", str(tmp_path / "k8s"), "--check")
    assert done.returncode == 1
    assert "30-users.yaml: differs" in done.stderr and "Traceback" not in done.stderr


def test_core_resources_validate_against_the_kubernetes_api(
    generated: list[dict[str, Any]],
) -> None:
    core = [doc for doc in generated if not doc["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {doc["kind"] for doc in core} == {
        "Namespace",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "Deployment",
    }
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_validator_refuses_a_misspelt_field(generated: list[dict[str, Any]]) -> None:
    (deployment,) = of_kind(generated, "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    (user, *_) = of_kind(generated, "KafkaUser")
    broken = copy.deepcopy(user)
    broken["spec"]["authorization"]["acls"][0]["operation"] = "Read"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, crd_schema("KafkaUser"))


def test_strimzi_resources_validate_against_strimzis_crds(
    generated: list[dict[str, Any]],
) -> None:
    strimzi = [doc for doc in generated if doc["apiVersion"].startswith("kafka.strimzi.io/")]
    assert {doc["kind"] for doc in strimzi} == set(CRDS)
    for doc in strimzi:
        assert doc["apiVersion"] == "kafka.strimzi.io/v1"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "hub"
        jsonschema.validate(doc, crd_schema(doc["kind"]))


def test_the_cluster_is_kraft_with_scram_over_tls_and_simple_authorization(
    generated: list[dict[str, Any]],
) -> None:
    (kafka,) = of_kind(generated, "Kafka")
    (pool,) = of_kind(generated, "KafkaNodePool")
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert listeners and all(
        listener["tls"] and listener["authentication"]["type"] == "scram-sha-512"
        for listener in listeners
    )
    authorization = kafka["spec"]["kafka"]["authorization"]
    assert authorization == {"type": "simple", "superUsers": ["hub-operator"]}
    config = kafka["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] == 2 and config["auto.create.topics.enable"] is False


def agreement_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    return data


def test_every_principal_of_the_agreement_is_a_user_and_nothing_more(
    generated: list[dict[str, Any]],
) -> None:
    data = agreement_file()
    named = {partner["principal"] for partner in data["partners"]}
    named |= {service["principal"] for service in data["services"].values()}
    named |= {reader["principal"] for reader in data.get("readers", [])}
    named |= set(data.get("audit", {}).get("readers", []))
    named |= set(data.get("approval", {}).get("approvers", []))
    users = {f"User:{doc['metadata']['name']}" for doc in of_kind(generated, "KafkaUser")}
    assert users == named | {"User:hub-operator"}
    for doc in of_kind(generated, "KafkaUser"):
        assert doc["spec"]["authentication"] == {"type": "scram-sha-512"}


_LABEL = {
    ("topic", "literal"): "topic",
    ("topic", "prefix"): "topic-prefix",
    ("group", "literal"): "group",
    ("group", "prefix"): "group-prefix",
    ("transactionalId", "literal"): "transactional-id",
    ("transactionalId", "prefix"): "transactional-id-prefix",
}


def test_the_users_acls_are_exactly_hub_security_acls(generated: list[dict[str, Any]]) -> None:
    listed = hub(settings(), "security", "acls")
    assert listed.returncode == 0, listed.stderr
    expected = set(listed.stdout.splitlines())
    assert len(expected) > 50
    found = set()
    for user in of_kind(generated, "KafkaUser"):
        principal = f"User:{user['metadata']['name']}"
        for rule in user["spec"].get("authorization", {}).get("acls", []):
            assert rule["type"] == "allow" and rule["host"] == "*"
            resource = rule["resource"]
            label = _LABEL[(resource["type"], resource["patternType"])]
            for operation in rule["operations"]:
                # Strimzi's "Describe", "Write" are Kafka's DESCRIBE, WRITE.
                kafka_op = re.sub(r"(?<!^)([A-Z])", r"_\1", operation).upper()
                found.add(f"{principal} {kafka_op} {label} {resource['name']}")
    assert found == expected


def test_every_topic_is_declared_with_the_agreements_retention(
    generated: list[dict[str, Any]],
) -> None:
    data = agreement_file()
    retention = data["retention"]
    topics = {doc["spec"]["topicName"]: doc["spec"] for doc in of_kind(generated, "KafkaTopic")}
    cases = {partner["topic"] for partner in data["partners"]}
    publications = {schedule["topic"] for schedule in data["publication"]}
    internal = {
        "deferred.cases",
        "publish.requests",
        "partnership.audit.v1",
        "online-risk-hub-record-versions-changelog",
    }
    assert set(topics) == cases | publications | internal
    for spec in topics.values():
        assert spec["replicas"] == 3
        assert spec["config"]["min.insync.replicas"] == "2"
    for name in cases:
        assert topics[name]["partitions"] == 6
        assert topics[name]["config"]["retention.ms"] == str(retention["case_events_days"] * DAY_MS)
        assert topics[name]["config"]["message.timestamp.type"] == "LogAppendTime"
    for name in publications:
        kept = retention["trends_days"]
        assert topics[name]["config"]["retention.ms"] == str(-1 if kept is None else kept * DAY_MS)
    changelog = topics["online-risk-hub-record-versions-changelog"]
    assert changelog["config"]["cleanup.policy"] == "compact"


def test_pods_reference_secrets_and_embed_no_password(generated: list[dict[str, Any]]) -> None:
    (workers,) = of_kind(generated, "StatefulSet")
    (publisher,) = of_kind(generated, "Deployment")
    assert workers["spec"]["replicas"] <= 6 and publisher["spec"]["replicas"] == 1
    for workload, user in ((workers, "hub-workers"), (publisher, "hub-publisher")):
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        assert env["HUB_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": user,
            "key": "password",
        }
        assert env["HUB_SASL_USERNAME"]["value"] == user
        assert env["HUB_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    text = "\n".join(path.read_text(encoding="utf-8") for path in CHECKED_IN.glob("*.yaml"))
    assert "kind: Secret\n" not in text and "password:" not in text.replace("key: password", "")


def test_the_worker_settings_are_settings_the_hub_knows(generated: list[dict[str, Any]]) -> None:
    known = {f"HUB_{name.upper()}" for name in HubSettings.model_fields}
    for workload in of_kind(generated, "StatefulSet") + of_kind(generated, "Deployment"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert {item["name"] for item in container["env"]} <= known


def test_prometheus_configuration_passes_promtool(
    generated: list[dict[str, Any]], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus)"
    (config_map,) = [
        doc
        for doc in of_kind(generated, "ConfigMap")
        if doc["metadata"]["name"] == "hub-prometheus"
    ]
    data = config_map["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text.replace("/etc/prometheus/", f"{tmp_path}/"))
    assert {"rules.yml", "alerts.yml"} <= set(data)  # recording and alerting rules
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {
        job["job_name"]: job for job in yaml.safe_load(data["prometheus.yml"])["scrape_configs"]
    }
    assert set(jobs) == {"hub-worker", "hub-publisher"}
    # Each job finds the pods behind the headless Service of the same name, on its port.
    services = {doc["metadata"]["name"]: doc for doc in of_kind(generated, "Service")}
    for name, job in jobs.items():
        (dns,) = job["dns_sd_configs"]
        assert dns["names"] == [f"{name}.online-risk-hub.svc"]
        assert services[name]["spec"]["clusterIP"] == "None"
        assert dns["port"] == services[name]["spec"]["ports"][0]["port"]


def test_a_principal_kubernetes_cannot_name_is_a_clear_error(tmp_path: Path) -> None:
    data = agreement_file()
    data["readers"][0]["principal"] = "User:Analysts_Team"
    bad = tmp_path / "agreement.yaml"
    bad.write_text(yaml.safe_dump(data))
    done = hub(HubSettings(agreement=bad), "deploy", "--out", str(tmp_path / "k8s"))
    assert done.returncode == 1
    assert "User:Analysts_Team" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "k8s").exists()
