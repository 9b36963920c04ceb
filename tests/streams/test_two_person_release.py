"""Two-person release on a broker whose clients all log in (SASL_SSL, ACLs from the
agreement): the monthly publication needs an approver's approval.

Police exports go through the adapter and the worker as in production; a forced
release is staged, not published; nobody reading the trends topic sees it; the
principal that staged it cannot approve it, nor can anyone the agreement does not
list; a rejected release is never published; an approver killed with SIGKILL at any
moment of its approval leaves the release published once or not at all, and the
next approval publishes it exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from hub.agreement.model import Agreement
from hub.codec import Codec
from hub.ops.broker import Broker
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from tests.support.agreements import TEST_PARTNERS, agreement_of, write_agreement
from tests.support.processes import WorkerProcess, free_port, hub, settings_env
from tests.support.secured import (
    as_operator,
    as_principal,
    kafka_options,
    new_password,
    scram_user,
    secured_broker,
    set_up_partnership,
)
from tests.support.versioning import POLICE, write

APPROVER, OTHER_APPROVER = "User:ig-lead", "User:analyst-lead"
MONTH = date(2026, 10, 1)  # a month long ended
REASON = "board meeting brought forward"


@dataclass(frozen=True)
class Hub:
    broker: Broker
    operator: HubSettings
    agreement: Agreement
    passwords: dict[str, str]
    tmp: Path

    def login(self, principal: str) -> HubSettings:
        return as_principal(self.broker, scram_user(principal), self.passwords[principal])


@pytest.fixture(scope="module")
def secured_hub(
    broker_settings: HubSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("two-person")
    path = write_agreement(tmp / "agreement.yaml", TEST_PARTNERS)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for schedule in data["publication"]:
        if schedule["name"] == "monthly":
            schedule["approval"] = "two-person"
    # The operator approves too here, so that it may not approve what it staged itself.
    operator_principal = f"User:{broker_settings.broker_operator}"
    data["approval"] = {"approvers": [APPROVER, OTHER_APPROVER, operator_principal]}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    key_file = tmp / "partnership.key"
    write_key_file(key_file, KeyRing.generate("test"))
    base = broker_settings.model_copy(
        update={
            "topic_namespace": "twoperson.",
            "agreement": path,
            "case_partitions": 2,
            "worker_data": tmp / "worker",
            "metrics_port": free_port(),
            "key_file": key_file,
            "session_timeout": 8.0,
            "outbox": tmp / "outbox.sqlite",
        }
    )
    operator_password = new_password()
    broker = secured_broker(base, tmp / "broker", operator_password)
    broker.start(quiet=True)
    try:
        passwords = set_up_partnership(broker)
        operator = as_operator(broker)
        yield Hub(broker, operator, agreement_of(operator), passwords, tmp)
    finally:
        broker.stop()


def police_export(path: Path, rows: int) -> Path:
    given = ["Amy", "Ben", "Cara", "Dev", "Ella", "Finn", "Gina", "Hal", "Ivy", "Jon", "Kit"]
    return write(path, POLICE, [
        [f"OCC{n:04d}", "Crime", (MONTH + timedelta(days=n % 28)).strftime("%d/%m/%Y"),
         f"N{n:05d}", "Hart", given[n % len(given)], "04/05/2013", "F", "Victim", "Harassment",
         "Y"]
        for n in range(rows)
    ])  # fmt: skip


def trend_cells(settings: HubSettings) -> Counter[tuple[str, int]]:
    """Committed cells on the trends topic, as (period start, revision) -> cells."""
    return Counter((str(c["period_start"]), c["revision"]) for c in _committed(settings))


def _committed(settings: HubSettings, topic: str | None = None) -> list[dict[str, object]]:
    consumer = KafkaConsumer(isolation_level="read_committed", enable_auto_commit=False,
                             **kafka_options(settings))  # fmt: skip
    try:
        topic = topic or settings.trends_topic
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        values: list[bytes] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for batch in consumer.poll(timeout_ms=1000).values():
                values.extend(m.value for m in batch if m.value is not None)
    finally:
        consumer.close()
    if topic.endswith("trends.v1"):
        codec = Codec("trend_snapshot")
        return [codec.decode(v) for v in values]
    return [json.loads(v) for v in values]


def release_entries(operator: HubSettings) -> list[dict[str, object]]:
    listed = hub(operator, "audit", "--kind", "RELEASE", "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_a_staged_release_waits_for_a_second_principal(secured_hub: Hub) -> None:
    h = secured_hub
    police, publisher = h.login("User:police-adapter"), h.login("User:hub-publisher")
    worker = WorkerProcess(h.login("User:hub-workers"), h.tmp / "worker.log")
    quarantine = h.tmp / "quarantine"
    run = hub(police, "adapter", "run", "--profile", "police", "--quarantine", str(quarantine),
              str(police_export(h.tmp / "police.csv", 24)))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    worker.start()
    try:
        deadline = time.monotonic() + 90
        while worker.metrics().get("hub_events_counted") != 24 and time.monotonic() < deadline:
            time.sleep(0.5)
        staged = hub(publisher, "publish", "--now", "--period", "2026-10", "--reason", REASON)
    finally:
        worker.stop()
    assert staged.returncode == 0, staged.stdout + staged.stderr
    sid = "staged/monthly/2026-10-01/r0"
    assert f"`hub release approve {sid}`" in staged.stdout, staged.stdout
    # Nothing of it where readers look.
    assert trend_cells(h.operator)[("2026-10-01", 0)] == 0
    # Asked again with nothing changed: the same staged release, not a second one.
    again = hub(publisher, "publish", "--now", "--period", "2026-10", "--reason", REASON)
    assert again.returncode == 0 and sid in again.stdout, again.stdout + again.stderr
    stagings = [e for e in release_entries(h.operator) if e["release"]["status"] == "STAGED"]
    assert [e["release"]["staged_id"] for e in stagings] == [sid]
    assert stagings[0]["principal"] == "User:hub-publisher" and stagings[0]["reason"] == REASON
    shown = hub(h.login(APPROVER), "release", "list", "--cells")
    assert shown.returncode == 0, shown.stderr
    assert sid in shown.stdout and "staged by User:hub-publisher" in shown.stdout
    assert "events by total = all: 25" in shown.stdout  # 24, rounded to fives

    # A partner cannot even see what waits.
    peek = hub(h.login("User:police-adapter"), "release", "list")
    assert peek.returncode != 0 and "Traceback" not in peek.stderr
    assert "User:police-adapter may not read the staged releases" in peek.stderr, peek.stderr
    # Neither the principal that staged it nor one the agreement does not list approves it.
    for who in ("User:hub-publisher", "User:police-adapter"):
        refused = hub(h.login(who), "release", "approve", sid)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "is not one of the agreement's approvers" in refused.stderr, refused.stderr
    assert trend_cells(h.operator)[("2026-10-01", 0)] == 0

    # An approver SIGKILLed while approving: once or not at all, never half.
    cells = None
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.4, 3.0, 4.0, 6.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "release", "approve", sid],
            env=settings_env(h.login(APPROVER)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        now = trend_cells(h.operator)[("2026-10-01", 0)]
        if cells is None and now:
            cells = now
        assert now in (0, cells), f"a partial release after a kill at {delay} s"
        if now:
            break
    again = hub(h.login(OTHER_APPROVER), "release", "approve", sid)
    if cells is None:  # every attempt was killed before it committed
        assert again.returncode == 0, again.stdout + again.stderr
        cells = trend_cells(h.operator)[("2026-10-01", 0)]
    else:
        assert again.returncode != 0 and f"{sid} was approved by" in again.stderr, again.stderr
    assert cells and trend_cells(h.operator)[("2026-10-01", 0)] == cells
    published = [e for e in release_entries(h.operator) if e["release"]["status"] == "PUBLISHED"]
    assert len(published) == 1, published
    entry = published[0]
    assert entry["id"] == "release/monthly/2026-10-01/r0"
    assert entry["principal"] in (APPROVER, OTHER_APPROVER)
    assert entry["release"]["staged_by"] == "User:hub-publisher"
    assert entry["release"]["staged_id"] == sid and entry["reason"] == REASON
    assert hub(h.login(APPROVER), "release", "list").stdout.strip() == ""


def test_a_rejected_release_is_never_published(secured_hub: Hub) -> None:
    h = secured_hub
    # Forced by the operator, who is one of the approvers here: not of its own release.
    staged = hub(h.operator, "publish", "--now", "--period", "2026-09", "--reason", REASON)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    sid = "staged/monthly/2026-09-01/r0"
    assert sid in staged.stdout
    own = hub(h.operator, "release", "approve", sid)
    assert own.returncode != 0 and "Traceback" not in own.stderr
    assert f"{sid} was staged by User:{h.broker.settings.broker_operator}" in own.stderr
    rejected = hub(h.login(APPROVER), "release", "reject", sid, "--reason", "counts look wrong")
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    later = hub(h.login(OTHER_APPROVER), "release", "approve", sid)
    assert later.returncode != 0 and "was rejected by User:ig-lead" in later.stderr
    assert trend_cells(h.operator)[("2026-09-01", 0)] == 0
    # The board sees nothing of it either.
    rows = hub(h.operator, "subscribe", "--from", "2026-09", "--format", "jsonl")
    assert rows.returncode == 0, rows.stderr
    assert not [r for r in rows.stdout.splitlines() if '"2026-09-01"' in r]
    kinds = [
        e["release"]["status"]
        for e in release_entries(h.operator)
        if e["release"]["staged_id"] == sid
    ]
    assert sorted(kinds) == ["REJECTED", "STAGED"], kinds
    # The staged record, as approvers read it: rejected, with who and why.
    records = [r for r in _committed(h.operator, h.operator.staged_releases_topic)
               if r["id"] == sid]  # fmt: skip
    assert records[-1]["status"] == "REJECTED" and records[-1]["decided_by"] == APPROVER
    assert records[-1]["decision_reason"] == "counts look wrong"
    assert datetime.fromisoformat(str(records[-1]["decided_at"])) <= datetime.now(UTC)
