"""The record-versions changelog on the real broker: snapshots let compaction keep it to
about the records, whatever number of versions were written, and a worker SIGKILLed
after compaction recovers from what is left and counts every record exactly."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from adapters.synth.cases import OUTCOMES, child_pool, synth_rows, write_csv
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings
from tests.support.agreements import partner_ids
from tests.support.messages import by_code, wait_for
from tests.support.processes import WorkerProcess
from tests.support.publishing import ground_truth, publish_file

#: Re-exports of every row, each with its version raised and its outcome changed.
ROUNDS = 6


def changelog(settings: HubSettings) -> str:
    return f"{settings.worker_app_id}-record-versions-changelog"


def create_changelog(settings: HubSettings) -> None:
    """The changelog topic as the worker would have it, but compacted within seconds:
    segments roll after 500 ms and any dirty ratio is worth cleaning."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics(
            [
                NewTopic(
                    changelog(settings),
                    settings.case_partitions,
                    1,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "segment.ms": "500",
                        "min.cleanable.dirty.ratio": "0.01",
                        "min.compaction.lag.ms": "0",
                        "delete.retention.ms": "0",
                    },
                )
            ]
        )
    finally:
        admin.close()


def read_log(settings: HubSettings) -> list[tuple[str, bytes | None]]:
    """Every message on the changelog now, in partition order: (key, value)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        name = changelog(settings)
        parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[tuple[str, bytes | None]] = []
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=1000).values():
                out.extend((r.key.decode(), r.value) for r in records)
        return out
    finally:
        consumer.close()


def current(values: list[bytes]) -> dict[str, tuple[int, list[object]]]:
    """Record key -> (highest version, that version's fields), read as plain JSON."""
    held: dict[str, tuple[int, list[object]]] = {}
    for value in values:
        for fields in json.loads(value)["versions"]:
            key, version = fields[0], fields[1]
            if key not in held or version > held[key][0]:
                held[key] = (version, fields)
    return held


def surviving(log: list[tuple[str, bytes | None]]) -> dict[str, bytes]:
    """What compaction keeps: the last value of each key, none where it is a tombstone."""
    last: dict[str, bytes | None] = {}
    for key, value in log:
        last[key] = value
    return {k: v for k, v in last.items() if v is not None}


def versions_in(values: list[bytes]) -> int:
    return sum(len(json.loads(v)["versions"]) for v in values)


def rounds_of(rows: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    out = []
    for n in range(ROUNDS):
        out.append(
            [
                {
                    **row,
                    "record_version": str(int(row["record_version"] or 1) + n),
                    "outcome": OUTCOMES[(OUTCOMES.index(row["outcome"]) + n) % len(OUTCOMES)],
                }
                for row in rows
            ]
        )
    return out


def wait_counted(worker: WorkerProcess, records: int, timeout: float) -> dict[str, float]:
    wait_for(
        worker,
        lambda s: s.get("hub_events_counted") == records and not s.get("hub_worker_recovering"),
        f"counting {records} records",
        timeout,
    )
    time.sleep(2)  # anything still in flight would push the counts past the truth
    return worker.metrics()


def test_snapshots_bound_the_compacted_changelog_and_recovery_reads_it(
    topics: HubSettings, tmp_path: Path
) -> None:
    settings = topics.model_copy(update={"changelog_snapshot_bytes": 20_000})
    create_changelog(settings)
    pseudonymiser = Pseudonymiser.from_settings(settings)
    pool = child_pool(150)
    exports: dict[str, list[list[dict[str, str]]]] = {}
    everything: dict[str, Path] = {}
    for agency in partner_ids(settings):
        exports[agency] = rounds_of(synth_rows(agency, 500, seed=21, pool=pool))
        exports[agency].append(synth_rows(agency, 200, seed=22, pool=pool))  # new records
        everything[agency] = tmp_path / f"{agency}-all.csv"
        write_csv(everything[agency], [row for rows in exports[agency] for row in rows])
    truth = ground_truth(everything, pseudonymiser)

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        worker.start()
        for n in range(ROUNDS + 1):
            for agency, rounds in exports.items():
                path = tmp_path / f"{agency}-{n}.csv"
                write_csv(path, rounds[n])
                publish_file(settings, path, agency)
            time.sleep(1)  # each round rolls the changelog's segments (segment.ms 500)
        first = wait_counted(worker, truth.records, 180)
        assert first["hub_changelog_snapshots_written_total"] >= settings.case_partitions

        # Every record was sent in each round, its version raised (some are not countable).
        assert first["hub_events_consumed_total"] >= 4 * truth.records

        # Compaction keeps each key's last value: that alone must hold every record's
        # current version (the broker may have compacted some of the log already).
        written = read_log(settings)
        values = [v for _, v in written if v is not None]
        assert current(list(surviving(written).values())) == current(values)
        records = len(current(values))
        assert records >= truth.records

        # The broker's log cleaner deletes what the snapshots replaced: about one
        # version per record is left, not one per round.
        deadline = time.monotonic() + 120
        while True:
            on_broker = [v for _, v in read_log(settings) if v is not None]
            if versions_in(on_broker) <= 2 * records + 600:
                break
            assert time.monotonic() < deadline, (versions_in(on_broker), records)
            time.sleep(3)
        assert current(on_broker) == current(values)

        worker.kill()
        worker.start()
        again = wait_counted(worker, truth.records, 180)
    finally:
        worker.stop()
    assert again["hub_events_counted"] == truth.records
    assert by_code(again) == truth.by_code
    assert by_code(first) == truth.by_code
