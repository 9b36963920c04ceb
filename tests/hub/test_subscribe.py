"""`hub subscribe` and `published_rows` against the real broker's trends topic."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

from kafka import KafkaProducer

from hub.agreement.model import load_agreement
from hub.codec import Codec
from hub.models import TrendSnapshot
from hub.report.pack import Pack
from hub.settings import HubSettings
from hub.subscribe import published_rows
from tests.support.processes import hub, settings_env
from tests.support.trends import monthly_snapshot


def publish(settings: HubSettings, snapshots: list[TrendSnapshot]) -> None:
    codec = Codec("trend_snapshot")
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for s in snapshots:
            key = f"monthly|{s.period_start}|{s.measure}|{s.dimension}|{s.value}".encode()
            producer.send(settings.trends_topic, key=key, value=codec.encode(s.to_avro()))
        producer.flush()
    finally:
        producer.close()


SEP, OCT = date(2026, 9, 1), date(2026, 10, 1)


def test_csv_shows_latest_revisions_and_suppression(topics: HubSettings) -> None:
    publish(
        topics,
        [
            monthly_snapshot(SEP, "GROOMING", 20),
            monthly_snapshot(OCT, "GROOMING", 35),
            monthly_snapshot(OCT, "CYBERBULLYING", None),
            monthly_snapshot(OCT, "SEXTORTION", 10),
            # Late data: October released again, whole, and without SEXTORTION.
            monthly_snapshot(OCT, "GROOMING", 40, revision=1),
            monthly_snapshot(OCT, "CYBERBULLYING", None, revision=1),
        ],
    )
    done = hub(topics, "subscribe", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [
        (r["period_start"], r["value"], r["count"], r["suppressed"], r["revision"]) for r in rows
    ] == [
        ("2026-09-01", "GROOMING", "20", "False", "0"),
        ("2026-10-01", "CYBERBULLYING", "", "True", "1"),
        ("2026-10-01", "GROOMING", "40", "False", "1"),
    ]
    assert "3 published cells" in done.stderr

    recent = hub(topics, "subscribe", "--from", "2026-10", "--format", "jsonl")
    assert recent.returncode == 0, recent.stderr
    lines = [json.loads(line) for line in recent.stdout.splitlines()]
    assert {(r["value"], r["count"]) for r in lines} == {("CYBERBULLYING", None), ("GROOMING", 40)}

    api = published_rows(topics, since="2026Q4")
    assert [(r["value"], r["count"], r["revision"]) for r in api] == [
        ("CYBERBULLYING", None, 1),
        ("GROOMING", 40, 1),
    ]
    # The board pack, handed the same rows, shows October's revision 1 and only its cells.
    pack = Pack(published_rows(topics), load_agreement(topics.agreement), "2026-10")
    assert pack.revision() == 1
    assert sorted((r["value"], r["count"]) for r in pack.period_rows()) == [
        ("CYBERBULLYING", None),
        ("GROOMING", 40),
    ]


def test_follow_prints_new_publications(topics: HubSettings) -> None:
    publish(topics, [monthly_snapshot(SEP, "GROOMING", 20)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "subscribe", "--format", "jsonl", "--follow"],
        env=settings_env(topics),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert (first["value"], first["count"]) == ("GROOMING", 20)
        time.sleep(1)
        publish(topics, [monthly_snapshot(OCT, "SEXTORTION", 15)])
        second = json.loads(proc.stdout.readline())
        assert (second["period_start"], second["value"], second["count"]) == (
            "2026-10-01",
            "SEXTORTION",
            15,
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)  # also closes the pipes
    assert proc.returncode == 0


def test_unknown_topic_is_a_clear_error(topics: HubSettings) -> None:
    done = hub(topics, "subscribe", "no.such.topic")
    assert done.returncode == 1
    assert "no topic no.such.topic" in done.stderr


#: A publisher that dies in the middle of a release: it sends two of the three cells
#: of October's revision 1 in a transaction and never commits.
DIES_MID_RELEASE = """
import sys, time
from datetime import date
from kafka import KafkaProducer
from hub.codec import Codec
from tests.support.trends import monthly_snapshot
bootstrap, topic, transactional_id = sys.argv[1:4]
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id)
producer.init_transactions()
producer.begin_transaction()
codec = Codec("trend_snapshot")
for value, count in (("GROOMING", 55), ("SEXTORTION", 30)):
    s = monthly_snapshot(date(2026, 10, 1), value, count, revision=1)
    key = f"monthly|{s.period_start}|{s.measure}|{s.dimension}|{s.value}".encode()
    producer.send(topic, key=key, value=codec.encode(s.to_avro()))
producer.flush()
print("sent", flush=True)
time.sleep(120)
"""


def test_a_release_is_seen_whole_or_not_at_all(topics: HubSettings) -> None:
    october = [("GROOMING", 40), ("SEXTORTION", 20), ("CYBERBULLYING", 10)]
    publish(topics, [monthly_snapshot(OCT, value, count) for value, count in october])
    transactional_id = f"{topics.topic_namespace}publisher"
    dying = subprocess.Popen(
        [sys.executable, "-c", DIES_MID_RELEASE]
        + [topics.bootstrap_servers, topics.trends_topic, transactional_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert dying.stdout is not None and dying.stdout.readline().strip() == "sent"
    finally:
        dying.kill()  # SIGKILL: the transaction stays open
        dying.communicate(timeout=30)

    def seen() -> list[tuple[str, int, int]]:
        return [(r["value"], r["count"], r["revision"]) for r in published_rows(topics)]

    whole_revision_0 = sorted((value, count, 0) for value, count in october)
    assert sorted(seen()) == whole_revision_0  # not two cells of revision 1 and one of 0

    # The publisher restarts under the same transactional id: the open release is aborted.
    producer = KafkaProducer(
        bootstrap_servers=topics.bootstrap_servers, transactional_id=transactional_id
    )
    producer.init_transactions()
    producer.close()
    assert sorted(seen()) == whole_revision_0
