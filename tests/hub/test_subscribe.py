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
from datetime import UTC, date, datetime

from kafka import KafkaProducer

from hub.codec import Codec
from hub.models import TrendSnapshot
from hub.settings import HubSettings
from hub.subscribe import published_rows
from tests.conftest import hub, settings_env


def snapshot(
    period: date, value: str, count: int | None, revision: int = 0, measure: str = "events"
) -> TrendSnapshot:
    end = date(period.year + period.month // 12, period.month % 12 + 1, 1)
    return TrendSnapshot(
        partnership="example",
        publication="monthly",
        period_start=period,
        period_end=date.fromordinal(end.toordinal() - 1),
        measure=measure,
        dimension="risk_code",
        value=value,
        count=count,
        suppressed=count is None,
        revision=revision,
        published_at=datetime(2026, 11, 10, 9, tzinfo=UTC),
    )


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
            snapshot(SEP, "GROOMING", 20),
            snapshot(OCT, "GROOMING", 35),
            snapshot(OCT, "CYBERBULLYING", None),
            snapshot(OCT, "GROOMING", 40, revision=1),  # late data: a revision
        ],
    )
    done = hub(topics, "subscribe", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [
        (r["period_start"], r["value"], r["count"], r["suppressed"], r["revision"]) for r in rows
    ] == [
        ("2026-09-01", "GROOMING", "20", "False", "0"),
        ("2026-10-01", "CYBERBULLYING", "", "True", "0"),
        ("2026-10-01", "GROOMING", "40", "False", "1"),
    ]
    assert "3 published cells" in done.stderr

    recent = hub(topics, "subscribe", "--from", "2026-10", "--format", "jsonl")
    assert recent.returncode == 0, recent.stderr
    lines = [json.loads(line) for line in recent.stdout.splitlines()]
    assert {(r["value"], r["count"]) for r in lines} == {("CYBERBULLYING", None), ("GROOMING", 40)}

    api = published_rows(topics, since="2026Q4")
    assert [(r["value"], r["count"], r["revision"]) for r in api] == [
        ("CYBERBULLYING", None, 0),
        ("GROOMING", 40, 1),
    ]


def test_follow_prints_new_publications(topics: HubSettings) -> None:
    publish(topics, [snapshot(SEP, "GROOMING", 20)])
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
        publish(topics, [snapshot(OCT, "SEXTORTION", 15)])
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
