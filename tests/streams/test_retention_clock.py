"""Retention end to end, on clocks the test moves (libfaketime, preloaded into each `hub`
process): police exports shared 35 days and 1 day ago, a month released while every
record is within the agreement's 40 days, then a worker and the publisher six days on.

What a small counter over the exports' rows says must hold then:
* the released month keeps its published count (it is final: no revision);
* the month not yet released counts only the rows shared within the 40 days;
* the worker holds and counts only those rows;
* the changelog, as compaction leaves it (the latest message of each key), holds no
  version shared before the retention's first day.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from kafka import KafkaConsumer, TopicPartition

from hub.codec import Codec
from hub.settings import HubSettings
from tests.support.processes import WorkerProcess, hub
from tests.support.versioning import POLICE, write

DAYS = 40  # the agreement's case_events_days here
OLD, RECENT, LATER = -35, -1, 6  # days from now: two exports shared, and the clock moved on
GIVEN = ["Amy", "Ben", "Cara", "Dev", "Ella", "Finn", "Gina", "Hal", "Ivy", "Jon", "Kit"]
FAMILY = ["Ashe", "Boyd", "Cole", "Dunn", "Eyre", "Ford", "Gale", "Hart"]


def month_start(day: date) -> date:
    return day.replace(day=1)


def previous_month(start: date) -> date:
    return month_start(start - timedelta(days=1))


def row(n: int, occurred: date) -> list[str]:
    given, family = GIVEN[n % len(GIVEN)], FAMILY[n // len(GIVEN)]
    return [f"OCC{n:04d}", "Crime", occurred.strftime("%d/%m/%Y"), f"N{n:05d}", family, given,
            "04/05/2013", "F", "Victim", "Harassment", "Y"]  # fmt: skip


def with_retention(settings: HubSettings) -> None:
    """The test's agreement keeps case events 40 days."""
    path = Path(str(settings.agreement))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["retention"].update(case_events_days=DAYS, outbox_sent_days=10, quarantine_days=10)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def published(settings: HubSettings) -> dict[tuple[str, str, str, int], int | None]:
    """Every cell on the trends topic: (month, dimension, value, revision) -> count."""
    codec = Codec("trend_snapshot")
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    try:
        messages = _read_all(consumer, settings.trends_topic)
    finally:
        consumer.close()
    cells: dict[tuple[str, str, str, int], int | None] = {}
    for _, value in messages:
        cell = codec.decode(value)
        if cell["publication"] == "monthly" and cell["measure"] == "events":
            key = (str(cell["period_start"])[:7], cell["dimension"], cell["value"])
            cells[(*key, cell["revision"])] = cell["count"]
    return cells


def changelog_days(settings: HubSettings) -> Counter[str]:
    """The days the changelog's versions were shared, counted, as compaction leaves the
    topic: the latest message of each key, a tombstone removing it."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        messages = _read_all(consumer, f"{settings.worker_app_id}-record-versions-changelog")
    finally:
        consumer.close()
    latest = dict(messages)
    days: Counter[str] = Counter()
    for value in latest.values():
        if value is None:
            continue
        for version in json.loads(value)["versions"]:
            days[version[19] if len(version) > 19 else version[8]] += 1
    return days


def _read_all(consumer: KafkaConsumer, topic: str) -> list[tuple[bytes, bytes | None]]:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends = consumer.end_offsets(partitions)
    messages: list[tuple[bytes, bytes | None]] = []
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        for batch in consumer.poll(timeout_ms=1000).values():
            messages.extend((m.key, m.value) for m in batch)
    return messages


def wait_for(worker: WorkerProcess, counted: int, timeout: float = 90.0) -> dict[str, float]:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while True:
        metrics = worker.metrics()
        if metrics.get("hub_events_counted") == counted or datetime.now(UTC) > deadline:
            return metrics


def test_what_passed_retention_counts_nowhere_and_released_months_stand(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    settings = hub_settings
    with_retention(settings)
    applied = hub(settings, "topics", "apply")
    assert applied.returncode == 0, applied.stderr

    today = datetime.now(UTC).date()
    shared_old = today + timedelta(days=OLD)
    late_month = month_start(shared_old)  # released while its rows are within retention
    early_month = previous_month(late_month)  # released only after its old rows passed it
    old_rows = [row(n, early_month + timedelta(days=1)) for n in range(12)]
    old_rows += [row(n, late_month) for n in range(12, 22)]
    late_rows = [row(n, early_month + timedelta(days=2)) for n in range(22, 31)]
    # The ground truth: per month, the rows shared on each day.
    shared = {OLD: old_rows, RECENT: late_rows}
    truth: dict[tuple[str, int], int] = Counter(
        (r[2][6:] + "-" + r[2][3:5], when) for when, rows in shared.items() for r in rows
    )

    quarantine = tmp_path / "quarantine"
    first = write(tmp_path / "police-1.csv", POLICE, old_rows)
    run = hub(settings, "adapter", "run", "--profile", "police", "--quarantine", str(quarantine),
              str(first), days=OLD)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        # The whole year's occurrences again (a full export), with nine reported late.
        second = write(tmp_path / "police-2.csv", POLICE, old_rows + late_rows)
        run = hub(settings, "adapter", "run", "--profile", "police", "--quarantine",
                  str(quarantine), str(second), days=RECENT)  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        assert wait_for(worker, 31)["hub_events_counted"] == 31
        release = hub(settings, "publish", "--now", "--period", late_month.isoformat()[:7],
                      "--reason", "retention test")  # fmt: skip
        assert release.returncode == 0, release.stdout + release.stderr
    finally:
        worker.stop()
    late, early = late_month.isoformat()[:7], early_month.isoformat()[:7]
    assert truth[late, OLD] == 10
    assert published(settings)[late, "total", "all", 0] == 10

    # Six days on: the first export's rows were shared 41 days before.
    moved = WorkerProcess(settings, tmp_path / "worker-later.log", days=LATER)
    moved.start()
    try:
        metrics = wait_for(moved, truth[early, RECENT])
        assert metrics["hub_events_counted"] == truth[early, RECENT] == 9
        assert metrics["hub_versions_expired_total"] >= len(old_rows)
        for month in (late, early):
            release = hub(settings, "publish", "--now", "--period", month, "--reason",
                          "retention test", days=LATER)  # fmt: skip
            assert release.returncode == 0, release.stdout + release.stderr
        # What the worker removed is gone from the changelog once compacted.
        first_kept = (today + timedelta(days=LATER - DAYS + 1)).isoformat()
        days = changelog_days(settings)
        assert sum(days.values()) == 9 and min(days) >= first_kept, days
    finally:
        moved.stop()

    # The agency's next run, six days on: its outbox keeps only what the agreement lets it
    # (the live records' last events, to withdraw them later; nothing sent past 10 days).
    run = hub(settings, "adapter", "run", "--profile", "police", "--quarantine", str(quarantine),
              str(second), days=LATER)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = hub(settings, "retention", "report", "--no-topics", days=LATER)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "kept while the record is live" in report.stdout, report.stdout

    cells = published(settings)
    # Released before: its count stands, with no revision.
    assert cells[late, "total", "all", 0] == 10
    assert (late, "total", "all", 1) not in cells
    # Released after: only what was shared within 40 days counts (9, published as 10;
    # with the expired rows it would have been 21, published as 20).
    assert truth[early, OLD] + truth[early, RECENT] == 21
    assert cells[early, "total", "all", 0] == 10
