"""What a worker's record-versions changelog holds, and when a snapshot replaces it.

The changelog is a compacted topic. Each partition's messages are either
batches (the versions a batch of events changed) or snapshot chunks (every
record of the partition at one moment), each under a key written once and
never written again:

* a batch: ``<partition>:<writer>:<sequence>``;
* a snapshot chunk: ``<partition>:<writer>:s<sequence>:<chunk>``.

Once a partition's snapshot is on the broker (every chunk acknowledged), the
worker writes a tombstone for every key it wrote or recovered before the
snapshot began; compaction then deletes them. Nothing is ever overwritten,
so a crash at any point leaves either the old keys or the snapshot that
covers them, and merging whatever survives gives the state (merging is
idempotent and order-free: the highest version of each record wins). A
worker that has lost the partition (a zombie after a rebalance) cannot harm
the new owner: its snapshot chunks hold versions no newer than the
changelog's, and its tombstones name only keys its own snapshot covers.

A snapshot is due when the batches written since the last one reach its
size (or ``HUB_CHANGELOG_SNAPSHOT_BYTES``, whichever is larger), so the
changelog a new owner reads, and the publisher folds, is at most about twice
the partition's records rather than every version ever written.

Withdrawn records stay in the state and in every snapshot, as the version
that withdrew them: an older version of the record sent again (an agency's
re-export) must not bring it back. They leave only with the record's
retention.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from streams.records import RecordVersion, encode_batch

#: Versions per snapshot chunk: about 300 bytes each, well under the broker's
#: default 1 MB message limit.
CHUNK_VERSIONS = 1000


def partition_of(key: str) -> int:
    """The partition a changelog key was written for."""
    return int(key.split(":", 1)[0])


@dataclass
class PartitionLog:
    """One partition's changelog as its owner knows it."""

    #: Keys on the changelog that the next snapshot covers (batches, older chunks).
    keys: set[str] = field(default_factory=set)
    #: Per agency topic, the last offset of this partition whose version is written.
    read: dict[str, int] = field(default_factory=dict)
    written: int = 0  # bytes of batches written since the last snapshot
    snapshot: int = 0  # bytes of the last snapshot

    def wrote(self, key: str, size: int, read: Mapping[str, int]) -> None:
        """A batch of `size` bytes is on the changelog under `key`."""
        self.keys.add(key)
        self.written += size
        self._advance(read)

    def recovered(self, key: str, size: int, read: Mapping[str, int]) -> None:
        """`key` was read back from the changelog. It counts as written since the last
        snapshot: a new owner snapshots once what it read reaches the minimum, and so
        replaces the keys of the writers before it."""
        self.wrote(key, size, read)

    def replaced(self, snapshot: Snapshot, written: int) -> None:
        """`snapshot` is on the changelog and its tombstones sent; `written` bytes of
        batches were counted when it began (those written since are not covered)."""
        self.keys -= snapshot.covers
        self.keys.update(key for key, _ in snapshot.chunks)
        self.written -= written
        self.snapshot = snapshot.size

    def _advance(self, read: Mapping[str, int]) -> None:
        for topic, offset in read.items():
            if offset > self.read.get(topic, -1):
                self.read[topic] = offset

    def due(self, minimum: int) -> bool:
        return self.written >= max(self.snapshot, minimum)


@dataclass(frozen=True)
class Snapshot:
    """A partition's snapshot: its chunks, and the keys it covers."""

    chunks: list[tuple[str, bytes]]
    covers: frozenset[str]

    @property
    def size(self) -> int:
        return sum(len(value) for _, value in self.chunks)

    def tombstones(self) -> list[str]:
        """The keys to delete, in order, once every chunk is on the broker."""
        return sorted(self.covers)


def snapshot_of(
    partition: int,
    prefix: str,
    records: Sequence[RecordVersion],
    log: PartitionLog,
    chunk: int = CHUNK_VERSIONS,
) -> Snapshot:
    """Every record in `records` as chunks keyed ``<partition>:<prefix>:<n>``, each
    with the partition's read offsets, covering the keys `log` holds now.

    Takes what it needs from `log` at once, so batches written while the chunks
    are sent are not covered (they may hold newer versions)."""
    read = dict(log.read)
    chunks = [
        (f"{partition}:{prefix}:{n}", encode_batch(part, read))
        for n, part in enumerate(_parts(records, chunk))
    ]
    return Snapshot(chunks, frozenset(log.keys))


def _parts(records: Sequence[RecordVersion], size: int) -> Iterator[Sequence[RecordVersion]]:
    if not records:
        yield records  # an empty partition still records how far it is read
    for start in range(0, len(records), size):
        yield records[start : start + size]
