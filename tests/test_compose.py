"""docker-compose.yml and deploy/docker/Dockerfile against the code and the shipped configs.

The development machine has no Docker engine, so nothing here builds or runs a
container (docs/deploy.md says so). Each check is a function that returns its
problems; the tests assert there are none in the shipped files, and that each
check finds the mistake it exists for in a copy with that mistake planted.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from packaging.requirements import Requirement
from pydantic import ValidationError

from hub.agreement.model import check_agreement
from hub.cli import main
from hub.ops.broker import kafka_version
from hub.settings import HubSettings
from tests.support.locks import lock_at, normal, read_lock

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
IMAGE_LOCK = REPO / "deploy" / "docker" / "requirements.txt"
#: Packages of the dev extra that nothing else needs: the test, lint and lock tools.
DEV_TOOLS = {"pytest", "hypothesis", "ruff", "mypy", "import-linter", "deptry", "pip-audit", "uv"}
HUB_IMAGE = "online-risk-hub:"
SECRET_KEY = re.compile(r"PASSWORD|PASSPHRASE|TOKEN|SECRET|CREDENTIAL", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")

Doc = dict[str, Any]


def schema_problems(path: Path) -> list[str]:
    """check-jsonschema's findings for a compose file against the Compose Specification
    schema it ships (``vendor.compose-spec``). Run behind an unreachable proxy, so the
    check cannot fetch anything: it passes only on the vendored schema."""
    offline = "http://127.0.0.1:9"
    env = os.environ | {"HTTP_PROXY": offline, "HTTPS_PROXY": offline, "NO_PROXY": ""}
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        + ["--no-cache", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if run.returncode == 0:
        assert "validation done" in run.stdout, run.stdout
        return []
    found = [line.strip() for line in run.stdout.splitlines() if "::" in line]
    return found or [(run.stdout + run.stderr).strip()]


def load_compose() -> Doc:
    doc: Doc = yaml.safe_load(COMPOSE.read_text())
    return doc


def agency_example(text: str) -> dict[str, Any]:
    """The commented agency adapter service at the end of docker-compose.yml."""
    block = text.split("agency adapter example (begin)")[1].split("agency adapter example (end)")[0]
    lines = [line[2:] for line in block.splitlines() if line.startswith("#  ")]
    ((_, service),) = yaml.safe_load("\n".join(lines)).items()
    assert isinstance(service, dict)
    return service


def hub_services(doc: Doc) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in doc["services"].items() if s.get("image", "").startswith(HUB_IMAGE)}


def example() -> dict[str, Any]:
    return agency_example(COMPOSE.read_text())


def with_example(doc: Doc) -> dict[str, dict[str, Any]]:
    return {**hub_services(doc), "agency-adapter (commented)": example()}


def interpolate(value: str) -> str:
    """Compose's ${...} with the defaults a fresh checkout gets; no default is an error."""

    def default(match: re.Match[str]) -> str:
        if match["op"] not in (":-", "-"):
            raise ValueError(f"{match[0]} has no default")
        return match["arg"]

    return VARIABLE.sub(default, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(source, target, read-only) of every short-syntax volume, source interpolated."""
    for volume in service.get("volumes", []):
        source, target, *mode = interpolate(volume).split(":")
        yield source, target, mode == ["ro"]


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def setting_default(field: str) -> Any:
    return HubSettings.model_fields[field].default


def port_in(text: str) -> int | None:
    match = re.search(r"127\.0\.0\.1:(\d+)", text)
    return int(match[1]) if match else None


# --- the checks --------------------------------------------------------------------


def command_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    """Each hub service's command is a `hub` command (the image's ENTRYPOINT) that parses."""
    problems = []
    for name, service in services.items():
        args: list[str] = list(service["command"])
        ctx = click.Context(main, info_name="hub")
        command: click.Command = main
        path = ["hub"]
        while isinstance(command, click.Group) and args:
            sub = command.get_command(ctx, args[0])
            if sub is None:
                break
            path.append(args.pop(0))
            command = sub
            ctx = click.Context(sub, info_name=path[-1], parent=ctx)
        if isinstance(command, click.Group):
            problems.append(f"{name}: {' '.join(path)} has no command {args[:1]}")
            continue
        try:
            command.make_context(path[-1], args, parent=ctx.parent)
        except click.ClickException as exc:
            problems.append(f"{name}: {' '.join(path)}: {exc.format_message()}")
    return problems


def environment_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    """Every variable of a hub service is a HubSettings field, with a value it accepts."""
    problems = []
    for name, service in services.items():
        values = {}
        for key, value in environment(service).items():
            field = key.removeprefix("HUB_").lower()
            if not key.startswith("HUB_") or field not in HubSettings.model_fields:
                problems.append(f"{name}: {key} is not a HubSettings field")
            else:
                values[field] = interpolate(value)
        try:
            HubSettings.model_validate(values)
        except ValidationError as exc:
            problems.append(f"{name}: {exc}")
    return problems


def mount_problems(doc: Doc) -> list[str]:
    """Bind mounts are repository paths that exist; named volumes are declared."""
    problems = []
    for name, service in doc["services"].items():
        for source, _target, _ in mounts(service):
            if not is_bind(source):
                if source not in (doc.get("volumes") or {}):
                    problems.append(f"{name}: volume {source} is not declared")
            elif not source.startswith("./") or not (REPO / source).exists():
                problems.append(f"{name}: {source} is not a path in the repository")
    return problems


def grafana_problems(doc: Doc) -> list[str]:
    grafana = doc["services"]["grafana"]
    binds = {source: target for source, target, _ in mounts(grafana)}
    providers = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/hub.yml").read_text()
    )
    env = environment(grafana)
    expected = {
        "./deploy/grafana/dashboards": providers["providers"][0]["options"]["path"],
        "./deploy/grafana/provisioning": "/etc/grafana/provisioning",
    }
    problems = [f"grafana: {s} is not on {t}" for s, t in expected.items() if binds.get(s) != t]
    if env.get("GF_AUTH_ANONYMOUS_ENABLED") != "false":
        problems.append("grafana: anonymous access is not off")
    if "GF_SECURITY_ADMIN_PASSWORD" not in env:
        problems.append("grafana: the admin password is not taken from the environment")
    return problems


def prometheus_problems(doc: Doc) -> list[str]:
    prometheus = doc["services"]["prometheus"]
    config = {s: (t, ro) for s, t, ro in mounts(prometheus)}.get("./deploy/prometheus")
    if config is None:
        return ["prometheus: deploy/prometheus is not mounted"]
    target, read_only = config
    problems = [] if read_only else ["prometheus: deploy/prometheus is not read-only"]
    if f"--config.file={target}/prometheus.yml" not in prometheus["command"]:
        problems.append(f"prometheus: --config.file is not {target}/prometheus.yml")
    shipped = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    for needed in ("prometheus.yml", "rules.yml", *shipped["rule_files"]):
        if not (REPO / "deploy/prometheus" / needed).is_file():
            problems.append(f"prometheus: {needed} is not in the mounted folder")
    if "rules.yml" not in shipped["rule_files"]:
        problems.append("prometheus: prometheus.yml does not load rules.yml")
    return problems


def kafka_problems(doc: Doc) -> list[str]:
    version = kafka_version(setting_default("kafka_pom"))  # what `hub broker fetch` uses
    kafka = doc["services"]["kafka"]
    env = environment(kafka)
    problems = []
    if kafka["image"] != f"apache/kafka:{version}":
        problems.append(f"kafka: {kafka['image']} is not apache/kafka:{version} (the pom's)")
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    if port_in(advertised) != setting_default("broker_port"):
        problems.append(f"kafka: {advertised} is not on HUB_BROKER_PORT's default")
    if port_in(env["KAFKA_CONTROLLER_QUORUM_VOTERS"]) != setting_default("controller_port"):
        problems.append("kafka: the controller is not on HUB_CONTROLLER_PORT's default")
    for name, service in hub_services(doc).items():
        if environment(service).get("HUB_BOOTSTRAP") != advertised:
            problems.append(f"{name}: HUB_BOOTSTRAP is not {advertised}")
    return problems


def port_problems(doc: Doc, example: dict[str, Any]) -> list[str]:
    """The hub's ports are HubSettings' defaults, which the shipped configs point at."""
    services = doc["services"]
    problems = [
        f"{n}: not on the host's network (the configs scrape 127.0.0.1)"
        for n, s in {**services, "agency-adapter": example}.items()
        if s.get("network_mode") != "host"
    ]
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]
    }
    served = {
        "hub-worker": (services["worker"], "metrics_port"),
        "hub-publisher": (services["publisher"], "publisher_metrics_port"),
        "hub-adapters": (example, "adapter_metrics_port"),
    }
    for job, (service, field) in served.items():
        port = setting_default(field)
        if targets[job] != [f"127.0.0.1:{port}"]:
            problems.append(f"{job}: prometheus.yml scrapes {targets[job]}, not {port}")
        if environment(service).get(f"HUB_{field.upper()}") != str(port):
            problems.append(f"{job}: HUB_{field.upper()} is not {port}")
        if service.get("healthcheck") and port_in(str(service["healthcheck"]["test"])) != port:
            problems.append(f"{job}: the health check does not ask port {port}")
    datasources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/hub.yml").read_text()
    )
    prometheus_port = urlsplit(datasources["datasources"][0]["url"]).port
    if port_in(str(services["prometheus"]["command"])) != prometheus_port:
        problems.append(f"prometheus: not listening on the datasource's port {prometheus_port}")
    if prometheus_port != setting_default("prometheus_port"):
        problems.append("prometheus: the datasource's port is not HUB_PROMETHEUS_PORT's default")
    return problems


def startup_problems(doc: Doc) -> list[str]:
    """The worker starts after Kafka answers and the topics exist; each wait can be met."""
    services = doc["services"]
    problems = []
    if not services["kafka"].get("healthcheck"):
        problems.append("kafka: no health check")
    if (
        services["topics"]["command"] != ["topics", "apply"]
        or services["topics"]["restart"] != "no"
    ):
        problems.append("topics: not a one-shot `hub topics apply`")
    waits = {
        "worker": {"kafka": "service_healthy", "topics": "service_completed_successfully"},
        "publisher": {"topics": "service_completed_successfully"},
    }
    for name, needs in waits.items():
        depends = services[name].get("depends_on", {})
        for other, condition in needs.items():
            if depends.get(other, {}).get("condition") != condition:
                problems.append(f"{name}: does not wait for {other} ({condition})")
    for name, service in services.items():  # a condition another service can meet
        for other, wait in (service.get("depends_on") or {}).items():
            if wait["condition"] == "service_healthy" and not services[other].get("healthcheck"):
                problems.append(f"{name} waits for {other} to be healthy: it has no health check")
            if wait["condition"] == "service_completed_successfully" and (
                services[other].get("restart", "no") != "no"
            ):
                problems.append(f"{name} waits for {other} to complete: it restarts")
    return problems


def state_problems(doc: Doc) -> list[str]:
    """The worker's RocksDB on a named volume; every hub service reads a mounted agreement."""
    problems = []
    worker = doc["services"]["worker"]
    env = environment(worker)
    named = {t for s, t, _ in mounts(worker) if not is_bind(s)}
    if (
        not env.get("HUB_STORE", "").startswith("rocksdb://")
        or env.get("HUB_WORKER_DATA") not in named
    ):
        problems.append("worker: HUB_STORE is not rocksdb:// on a named HUB_WORKER_DATA volume")
    for name, service in hub_services(doc).items():
        binds = {t: s for s, t, _ in mounts(service) if is_bind(s)}
        agreement = binds.get(environment(service).get("HUB_AGREEMENT", ""))
        if agreement is None:
            problems.append(f"{name}: HUB_AGREEMENT is not a mounted file")
        else:
            problems.extend(f"{name}: {p}" for p in check_agreement(REPO / agreement))
    return problems


def secret_problems(services: dict[str, dict[str, Any]]) -> list[str]:
    """A password, token or passphrase is a ${VARIABLE} without a default, never a value."""
    problems = []
    for name, service in services.items():
        for key, value in environment(service).items():
            match = VARIABLE.fullmatch(value)
            if SECRET_KEY.search(key) and not (match and match["op"] in (None, ":?", "?")):
                problems.append(f"{name}: {key} holds a value")
        for arg in service.get("command") or []:
            if SECRET_KEY.search(str(arg)) and "=" in str(arg):
                problems.append(f"{name}: a secret on the command line")
    return problems


def dockerfile_problems(text: str, doc: Doc, lock: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    steps = [line.split(None, 1) for line in joined.splitlines() if line.strip() and line[0] != "#"]
    instructions = [(op.upper(), rest.strip()) for op, rest in steps]
    problems = []
    if ("FROM", "python:3.11-slim") not in instructions:
        problems.append("not FROM python:3.11-slim")
    if [rest for op, rest in instructions if op == "ENTRYPOINT"][-1:] != ['["hub"]']:
        problems.append('ENTRYPOINT is not ["hub"] (the services\' commands are hub commands)')
    users = [rest for op, rest in instructions if op == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("runs as root")
    (install,) = [rest for op, rest in instructions if op == "RUN" and "pip install" in rest]
    if f"--require-hashes --no-deps -r {IMAGE_LOCK.relative_to(REPO)}" not in install:
        problems.append(f"third-party packages not installed hash-checked from {IMAGE_LOCK.name}")
    if not install.endswith("pip install --no-deps --no-build-isolation ."):
        problems.append("the hub is not installed last, from the checkout, with the locked backend")
    return problems + image_lock_problems(lock, doc)


def image_lock_problems(lock: str, doc: Doc) -> list[str]:
    """The image's lock holds the hub's dependencies and the extras the services need,
    at the pins of constraints.txt, each with its hashes; no dev package."""
    env = {k: v for s in hub_services(doc).values() for k, v in environment(s).items()}
    # report: `docker compose run --rm publisher report ...` (docs/deploy.md)
    extras = {"report"} | ({"confluent"} if env.get("HUB_PUBLISHER") == "confluent" else set())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for e in sorted(extras) for r in project["optional-dependencies"][e]]
    wanted += [Requirement(r) for r in pyproject["build-system"]["requires"]]
    pins, full = read_lock(lock), lock_at(REPO / "constraints.txt")
    problems = [f"{r} is not locked" for r in wanted if normal(r.name) not in pins]
    problems += [f"installs {name} (dev)" for name in sorted(DEV_TOOLS & set(pins))]
    for name, pinned in pins.items():
        versions = {p.version for p in pinned}
        if versions != {p.version for p in full.get(name, [])}:
            problems.append(f"{name} {sorted(versions)}: not the version of constraints.txt")
        problems += [f"{name}: no hash" for p in pinned if not p.hashes]
    return problems


# --- the shipped files -------------------------------------------------------------


def test_the_file_follows_the_compose_specification() -> None:
    assert schema_problems(COMPOSE) == []


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (["servces"], {}, "'servces' does not match any of the regexes"),
        (
            ["services", "worker", "depends_on", "kafka", "condition"],
            "service_ready",
            "depends_on: {'kafka': {'condition': 'service_ready'}",
        ),
        (
            ["services", "worker", "healthcheck", "intervall"],
            "5s",
            "healthcheck: 'intervall' does not match any of the regexes",
        ),
    ],
)
def test_the_schema_check_finds_a_planted_mistake(
    tmp_path: Path, path: list[str], value: Any, fragment: str
) -> None:
    planted = tmp_path / "docker-compose.yml"
    planted.write_text(yaml.safe_dump(mutated(path, value)), encoding="utf-8")
    problems = schema_problems(planted)
    assert any(fragment in p for p in problems), problems


def test_every_hub_service_runs_a_real_hub_command() -> None:
    doc = load_compose()
    assert set(hub_services(doc)) == {"topics", "worker", "publisher"}
    assert command_problems(with_example(doc)) == []


def test_every_hub_variable_is_a_setting() -> None:
    assert environment_problems(with_example(load_compose())) == []


def test_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    assert mount_problems(load_compose()) == []


def test_grafana_loads_the_dashboards_from_the_provisioned_path() -> None:
    assert grafana_problems(load_compose()) == []


def test_prometheus_gets_its_config_and_rules() -> None:
    assert prometheus_problems(load_compose()) == []


def test_kafka_is_the_pom_version_on_the_hub_default_ports() -> None:
    assert kafka_problems(load_compose()) == []


def test_ports_are_the_settings_defaults_the_configs_scrape() -> None:
    assert port_problems(load_compose(), example()) == []


def test_worker_starts_after_kafka_answers_and_the_topics_exist() -> None:
    assert startup_problems(load_compose()) == []


def test_worker_state_on_a_volume_and_the_agreement_mounted() -> None:
    assert state_problems(load_compose()) == []


def test_no_secret_in_the_file() -> None:
    doc = load_compose()
    assert secret_problems({**doc["services"], **with_example(doc)}) == []


def test_dockerfile_installs_the_pinned_hub_with_the_extras_needed() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(), load_compose(), IMAGE_LOCK.read_text()) == []


# --- each check finds its mistake --------------------------------------------------


def mutated(path: Sequence[str], value: Any) -> Doc:
    """The shipped compose file with one value changed."""
    doc = copy.deepcopy(load_compose())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def hub_of(*change: Any) -> dict[str, dict[str, Any]]:
    return hub_services(mutated(*change))


def ports_of(*change: Any) -> list[str]:
    return port_problems(mutated(*change), example())


def dockerfile_with(old: str, new: str) -> list[str]:
    return dockerfile_problems(
        DOCKERFILE.read_text().replace(old, new), load_compose(), IMAGE_LOCK.read_text()
    )


def image_lock_with(old: str, new: str) -> list[str]:
    return image_lock_problems(IMAGE_LOCK.read_text().replace(old, new), load_compose())


WORKER, GRAFANA = ["services", "worker"], ["services", "grafana"]
GRAFANA_ENV = [*GRAFANA, "environment"]

MISTAKES: dict[str, Callable[[], list[str]]] = {
    "misspelt command": lambda: command_problems(hub_of([*WORKER, "command"], ["streams", "wrk"])),
    "group, no command": lambda: command_problems(hub_of([*WORKER, "command"], ["streams"])),
    "unknown option": lambda: command_problems(
        hub_of([*WORKER, "command"], ["streams", "worker", "--log-level", "info"])
    ),
    "misspelt variable": lambda: environment_problems(
        hub_of([*WORKER, "environment", "HUB_STOER"], "rocksdb://")
    ),
    "invalid value": lambda: environment_problems(
        hub_of([*WORKER, "environment", "HUB_METRICS_PORT"], "ninety")
    ),
    "missing path": lambda: mount_problems(mutated([*GRAFANA, "volumes"], ["./dash:/var/d"])),
    "undeclared volume": lambda: mount_problems(mutated([*WORKER, "volumes"], ["state:/var/s"])),
    "dashboards path": lambda: grafana_problems(
        mutated([*GRAFANA, "volumes"], ["./deploy/grafana/dashboards:/var/dashboards"])
    ),
    "anonymous viewers": lambda: grafana_problems(
        mutated([*GRAFANA_ENV, "GF_AUTH_ANONYMOUS_ENABLED"], "true")
    ),
    "prometheus writable": lambda: prometheus_problems(
        mutated(["services", "prometheus", "volumes"], ["./deploy/prometheus:/etc/prometheus"])
    ),
    "kafka version": lambda: kafka_problems(
        mutated(["services", "kafka", "image"], "apache/kafka:3.8.0")
    ),
    "metrics port": lambda: ports_of([*WORKER, "environment", "HUB_METRICS_PORT"], "9474"),
    "bridge network": lambda: ports_of([*GRAFANA, "network_mode"], "bridge"),
    "worker does not wait": lambda: startup_problems(mutated([*WORKER, "depends_on"], {})),
    "no health check": lambda: startup_problems(mutated([*WORKER, "healthcheck"], None)),
    "agreement not mounted": lambda: state_problems(mutated([*WORKER, "volumes"], [])),
    "memory store": lambda: state_problems(
        mutated([*WORKER, "environment", "HUB_STORE"], "memory://")
    ),
    "literal password": lambda: secret_problems(
        mutated([*GRAFANA_ENV, "GF_SECURITY_ADMIN_PASSWORD"], "admin")["services"]
    ),
    "default password": lambda: secret_problems(
        mutated([*GRAFANA_ENV, "GF_SECURITY_ADMIN_PASSWORD"], "${PW:-admin}")["services"]
    ),
    "report extra missing": lambda: image_lock_with("\nmatplotlib==", "\n# matplotlib=="),
    "dev package locked": lambda: image_lock_problems(
        (REPO / "constraints.txt").read_text(), load_compose()
    ),
    "another version": lambda: image_lock_with("\ncroniter==7.0.0", "\ncroniter==7.0.1"),
    "no hash": lambda: image_lock_with(" \\\n    --hash=", " #"),
    "hashes not required": lambda: dockerfile_with("--require-hashes ", ""),
    "editable hub": lambda: dockerfile_with("isolation .", "isolation -e ."),
    "root user": lambda: dockerfile_with("USER hub", "USER root"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_check_finds_its_mistake(mistake: str) -> None:
    assert MISTAKES[mistake](), mistake
