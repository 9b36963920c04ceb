"""The whole path through the CLI, each step as the principal that does it in production.

`Roles` says which settings (and so which principal, protocol and CA) each step's `hub`
process gets: the operator applies the topics (and, on a secured broker, stores the
principals' passwords and applies the agreement's ACLs), each partner runs its adapter,
two stream workers count, the publisher releases closed months and a reader subscribes.
`run_path` drives one such run and returns what the reader saw; on a plain broker every
role is the same unauthenticated client.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from hub.agreement.model import Agreement
from hub.kafka.client import admin_client
from hub.kafka.security import client_config
from hub.settings import HubSettings
from tests.support.processes import WorkerProcess, free_port, hub, settings_env

#: What makes two published cells the same cell with the same value (not when it was sent).
CELL_FIELDS = (
    "publication",
    "period_start",
    "period_end",
    "measure",
    "dimension",
    "value",
    "count",
    "suppressed",
)
Cell = tuple[Any, ...]


def user_of(principal: str) -> str:
    """The SCRAM user name of a principal (``User:analysts`` -> ``analysts``)."""
    kind, _, name = principal.partition(":")
    assert kind == "User" and name, principal
    return name


def over_sasl_ssl(settings: HubSettings, user: str, password: str, cafile: Path) -> HubSettings:
    """`settings` for a client that logs in as `user` over SASL_SSL, trusting `cafile` only
    (no client certificate, and no operator password in its environment)."""
    return settings.model_copy(
        update={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user,
            "sasl_password": SecretStr(password),
            "ssl_cafile": cafile,
            "ssl_certfile": None,
            "ssl_keyfile": None,
            "broker_operator_password": None,
        }
    )


@dataclass(frozen=True)
class Roles:
    """The settings each step runs with; `passwords` (user -> password) are the ones the
    operator stores first (none on a plain broker)."""

    operator: HubSettings
    partners: dict[str, HubSettings]
    workers: HubSettings
    publisher: HubSettings
    reader: HubSettings
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def plain(cls, settings: HubSettings, agreement: Agreement) -> Roles:
        """Every step as the same unauthenticated client (PLAINTEXT)."""
        partners = {partner.id: settings for partner in agreement.partners}
        return cls(settings, partners, settings, settings, settings)

    @classmethod
    def secured(
        cls, settings: HubSettings, agreement: Agreement, operator_password: str, cafile: Path
    ) -> Roles:
        """Each step as its own principal of `agreement` over SASL_SSL, with a fresh
        password each; the operator as the broker's super user (HUB_BROKER_OPERATOR)."""
        passwords: dict[str, str] = {}

        def login(principal: str) -> HubSettings:
            user = user_of(principal)
            passwords[user] = secrets.token_urlsafe(18)
            return over_sasl_ssl(settings, user, passwords[user], cafile)

        (reader,) = agreement.readers
        return cls(
            operator=over_sasl_ssl(settings, settings.broker_operator, operator_password, cafile),
            partners={partner.id: login(partner.principal) for partner in agreement.partners},
            workers=login(agreement.services.workers.principal),
            publisher=login(agreement.services.publisher.principal),
            reader=login(reader.principal),
            passwords=passwords,
        )


@dataclass
class PathRun:
    """What one run did: the reader's cells, each adapter's summary lines and the wall
    time of each step."""

    cells: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, list[str]] = field(default_factory=dict)
    releases: list[str] = field(default_factory=list)
    #: The audit trail as the operator reads it (`hub audit --format jsonl`).
    audit: list[dict[str, Any]] = field(default_factory=list)
    worker_logs: list[Path] = field(default_factory=list)
    worker_metrics: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def cell_set(self) -> set[Cell]:
        return {tuple(cell[name] for name in CELL_FIELDS) for cell in self.cells}


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Adds the wall time of the block to `timings[name]`."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.monotonic() - started


def hub_ok(settings: HubSettings, *args: str, input: str | None = None) -> str:
    """`hub ARGS...` that must succeed; its stdout. A failure names the command, its
    principal and the end of its output."""
    result = hub(settings, *args, input=input)
    output = result.stdout + result.stderr
    who = settings.sasl_username or "PLAINTEXT"
    command = f"`hub {' '.join(args)}` as {who}"
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, f"{command}:\n{output[-4000:]}"
    return result.stdout


def start_workers(workers: list[WorkerProcess]) -> None:
    """Start the workers at once: each spawns, then waits until it serves /metrics."""
    errors: list[BaseException] = []

    def start(worker: WorkerProcess) -> None:
        try:
            worker.start()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def run_adapters(
    roles: Roles, exports: dict[str, Path], folder: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each partner's `hub adapter run --profile <id> FILE`, as that partner, all at once
    (each on its own machine in production: its own outbox and quarantine)."""
    running: dict[str, subprocess.Popen[str]] = {}
    for agency, export in exports.items():
        settings = roles.partners[agency].model_copy(
            update={"outbox": folder / f"outbox-{agency}.sqlite"}
        )
        quarantine = folder / f"quarantine-{agency}"
        args = ["adapter", "run", "--profile", agency, "--quarantine", str(quarantine)]
        running[agency] = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", *args, str(export)],
            env=settings_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for agency, process in running.items():
            out, err = process.communicate(timeout=180)
            done[agency] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    return done


def ready(workers: list[WorkerProcess], partitions: int, timeout: float = 90.0) -> None:
    """Until the workers share the `partitions` partitions of the case topics, each owning
    some and each done reading its state back: the group is formed before data flows."""
    deadline = time.monotonic() + timeout
    while True:
        samples = [worker.metrics() for worker in workers]
        owned = [sample.get("hub_worker_partitions", 0) for sample in samples]
        if (
            all(sample.get("hub_worker_recovering") == 0 for sample in samples)
            and all(owned)
            and sum(owned) == partitions
        ):
            return
        assert time.monotonic() < deadline, f"the workers own {owned} partitions of {partitions}"
        time.sleep(0.2)


def wait_committed(operator: HubSettings, topics: list[str], timeout: float = 60.0) -> None:
    """Until the workers' group has committed the end of every partition of `topics`, as
    the operator reads the group's offsets."""
    config = client_config(operator).kafka_python()
    admin = admin_client(operator, "hub-test")
    consumer = KafkaConsumer(
        bootstrap_servers=operator.bootstrap_servers, enable_auto_commit=False, **config
    )
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while True:
            group = operator.worker_app_id
            offsets = admin.list_group_offsets({group: partitions}).get(group) or {}
            committed = {tp: max(0, meta.offset) for tp, meta in offsets.items() if meta}
            behind = {
                f"{tp.topic}[{tp.partition}]": end - committed.get(tp, 0)
                for tp, end in ends.items()
            }
            if not any(behind.values()):
                return
            assert time.monotonic() < deadline, f"not committed after {timeout:.0f} s: {behind}"
            time.sleep(0.5)
    finally:
        consumer.close()
        admin.close()


def counted(samples: list[dict[str, float]]) -> int:
    """The current records the workers hold, all partitions."""
    return int(sum(sample["hub_events_counted"] for sample in samples))


def run_path(
    roles: Roles,
    exports: dict[str, Path],
    months: Iterable[str],
    folder: Path,
) -> PathRun:
    """The whole path once: (passwords and ACLs), topics, two workers, every partner's
    adapter, a forced release of each month in `months`, then the reader's cells, and
    the workers' metrics once their group has committed every case event."""
    folder.mkdir(parents=True, exist_ok=True)
    run = PathRun()
    operator = roles.operator
    with timed(run.timings, "topics"):
        hub_ok(operator, "topics", "apply")
    if roles.passwords:
        with timed(run.timings, "passwords and ACLs"):
            for user, password in roles.passwords.items():
                hub_ok(operator, "security", "set-password", user, input=password + "\n")
            hub_ok(operator, "security", "acls", "--apply")

    workers = [
        WorkerProcess(
            roles.workers.model_copy(
                update={
                    "metrics_port": free_port(),
                    "worker_data": folder / f"worker-{name}",
                    # Stopped only once all is committed: nothing left to wait for.
                    "shutdown_timeout": 10.0,
                }
            ),
            folder / f"worker-{name}.log",
        )
        for name in ("one", "two")
    ]
    run.worker_logs = [worker.log for worker in workers]
    topics = [roles.workers.case_topic(agency) for agency in exports]
    try:
        with timed(run.timings, "workers start"):
            start_workers(workers)
            ready(workers, roles.workers.case_partitions)
        with timed(run.timings, "adapters"):
            adapters = run_adapters(roles, exports, folder)
        for agency, result in adapters.items():
            output = result.stdout + result.stderr
            assert result.returncode == 0, f"{agency}'s adapter:\n{output[-4000:]}"
            assert "Traceback" not in output, f"{agency}'s adapter:\n{output[-4000:]}"
            run.summaries[agency] = [
                line.split(": ", 1)[1] for line in result.stdout.splitlines() if ": " in line
            ]
        with timed(run.timings, "publish"):
            for month in months:
                released = hub_ok(
                    roles.publisher,
                    "publish",
                    "--now",
                    "--period",
                    month,
                    "--wait",
                    "120",
                    "--reason",
                    "test release",
                )
                run.releases.append(released.strip())
        with timed(run.timings, "subscribe"):
            listed = hub_ok(roles.reader, "subscribe", "--format", "jsonl")
        run.cells = [json.loads(line) for line in listed.splitlines() if line.strip()]
        trail = hub_ok(operator, "audit", "--format", "jsonl")
        run.audit = [json.loads(line) for line in trail.splitlines() if line.strip()]
        with timed(run.timings, "committed"):
            wait_committed(operator, topics)
        run.worker_metrics = [worker.metrics() for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    return run
