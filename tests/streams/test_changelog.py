"""The changelog's keys, snapshots and tombstones (``streams.changelog``): whatever point a
worker stops at, compaction keeps every record's current version."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.changelog import PartitionLog, partition_of
from streams.records import RecordVersion, decode_batch, encode_batch, merge
from tests.support.versions import version

Message = tuple[str, bytes | None]


def compacted(log: list[Message]) -> dict[str, RecordVersion]:
    """What a reader folds from the log after compaction: each key's last value."""
    last: dict[str, bytes | None] = {}
    for key, value in log:
        last[key] = value
    records: dict[str, RecordVersion] = {}
    for value in last.values():
        if value is not None:
            merge(records, decode_batch(value)[0])
    return records


def run(
    steps: list[tuple[int, int]], minimum: int, chunk: int
) -> tuple[list[Message], list[dict[str, RecordVersion]]]:
    """A writer applying `steps` (record, new version) in batches of two, writing each
    batch and the snapshots that fall due. The messages in order, and after each one
    the records it had written so far."""
    log: list[Message] = []
    durable: list[dict[str, RecordVersion]] = []
    records: dict[str, RecordVersion] = {}
    written: dict[str, RecordVersion] = {}
    kept = PartitionLog()
    sequence = 0

    def send(key: str, value: bytes | None) -> None:
        log.append((key, value))
        durable.append(dict(written))

    for start in range(0, len(steps), 2):
        batch = [version(f"r{r}", v, live=v % 5 != 0) for r, v in steps[start : start + 2]]
        merge(records, batch)
        sequence += 1
        key, value = f"0:w:{sequence}", encode_batch(batch, {"cases": start})
        merge(written, batch)
        send(key, value)
        kept.wrote(key, len(value), {"cases": start})
        if kept.due(minimum):
            sequence += 1
            snapshot = kept.snapshot_of(0, f"w:s{sequence}")
            for key, value in snapshot.chunks(records.values(), chunk):
                send(key, value)
            for key in snapshot.tombstones():
                send(key, None)
            kept.replaced(snapshot, kept.written)
    return log, durable


steps = st.lists(st.tuples(st.integers(0, 12), st.integers(1, 30)), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(steps, st.integers(1, 3000), st.integers(1, 4), st.data())
def test_compaction_after_a_stop_at_any_message_keeps_every_current_version(
    steps: list[tuple[int, int]], minimum: int, chunk: int, data: st.DataObject
) -> None:
    log, durable = run(steps, minimum, chunk)
    stop = data.draw(st.integers(1, len(log)))
    # A snapshot's chunks may sit beside the batches they repeat; never fewer versions.
    assert compacted(log[:stop]) == durable[stop - 1]


def test_the_log_stays_near_the_records_while_versions_keep_coming() -> None:
    steps = [(r, v) for v in range(1, 41) for r in range(10)]  # 10 records, 40 versions each
    log, _ = run(steps, 200, 3)
    last: dict[str, bytes | None] = {}
    for key, value in log:
        last[key] = value
    left = sum(len(decode_batch(v)[0]) for v in last.values() if v is not None)
    assert len(steps) == 400
    assert left <= 2 * 10 + 2  # a snapshot, and at most as much again in batches


def test_a_snapshot_covers_what_was_written_before_it_not_after() -> None:
    kept = PartitionLog()
    kept.wrote("3:a:1", 100, {"t": 5})
    kept.recovered("3:b:s2:0", 50, {"t": 7, "u": 1})
    assert kept.read == {"t": 7, "u": 1} and (kept.written, kept.snapshot) == (100, 50)
    snapshot = kept.snapshot_of(3, "c:s3")
    kept.wrote("3:c:4", 10, {"t": 8})  # written while the chunks are sent
    chunks = list(snapshot.chunks([version("r1"), version("r2")], 1))
    kept.replaced(snapshot, 100)
    assert snapshot.tombstones() == ["3:a:1", "3:b:s2:0"]
    assert kept.keys == {"3:c:s3:0", "3:c:s3:1", "3:c:4"}
    assert kept.written == 10 and kept.snapshot == snapshot.size == sum(len(v) for _, v in chunks)
    assert decode_batch(chunks[1][1]) == ([version("r2")], {"t": 7, "u": 1})
    assert [partition_of(key) for key, _ in chunks] == [3, 3]


def test_an_empty_partition_snapshot_still_says_how_far_it_is_read() -> None:
    kept = PartitionLog()
    kept.wrote("0:a:1", 10, {"t": 2})
    snapshot = kept.snapshot_of(0, "a:s2")
    assert [decode_batch(v) for _, v in snapshot.chunks([])] == [([], {"t": 2})]


def test_due_once_the_batches_reach_the_last_snapshot_or_the_minimum() -> None:
    kept = PartitionLog(written=999, snapshot=500)
    assert not kept.due(1000)
    kept.written = 1000
    assert kept.due(1000)
    kept.snapshot = 5000
    assert not kept.due(1000)


def test_what_a_new_owner_reads_back_counts_as_snapshot_or_batches() -> None:
    kept = PartitionLog()
    kept.recovered("1:a:s4:0", 300, {"t": 9})
    kept.recovered("1:a:s4:1", 200, {"t": 9})
    kept.recovered("1:a:5", 40, {"t": 11})
    assert (kept.snapshot, kept.written, kept.read) == (500, 40, {"t": 11})
    assert kept.keys == {"1:a:s4:0", "1:a:s4:1", "1:a:5"}
    assert not kept.due(100)  # not until the batches reach the snapshot's size
