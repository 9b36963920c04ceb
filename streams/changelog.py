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

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from streams.records import RecordVersion, encode_batch

#: Versions per snapshot chunk: about 300 bytes each, well under the broker's
#: default 1 MB message limit.
CHUNK_VERSIONS = 1000


def is_chunk(key: str) -> bool:
    """True for a snapshot chunk's key (``<partition>:<writer>:s<sequence>:<n>``)."""
    return key.count(":") == 3


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
        """`key` was read back from the changelog: a snapshot chunk counts towards the
        last snapshot's size, a batch as written since. The new owner's first snapshot
        replaces the keys of the writers before it."""
        if is_chunk(key):
            self.keys.add(key)
            self.snapshot += size
            self._advance(read)
        else:
            self.wrote(key, size, read)

    def replaced(self, snapshot: Snapshot, written: int) -> None:
        """`snapshot` is on the changelog and its tombstones sent; `written` bytes of
        batches were counted when it began (those written since are not covered)."""
        self.keys -= snapshot.covers
        self.keys.update(snapshot.keys)
        self.written -= written
        self.snapshot = snapshot.size

    def _advance(self, read: Mapping[str, int]) -> None:
        for topic, offset in read.items():
            if offset > self.read.get(topic, -1):
                self.read[topic] = offset

    def due(self, minimum: int) -> bool:
        return self.written >= max(self.snapshot, minimum)

    def snapshot_of(self, partition: int, prefix: str) -> Snapshot:
        """A snapshot of the partition under keys ``<partition>:<prefix>:<n>``, covering
        the keys held now and carrying the read offsets as they are now. Batches written
        while its chunks are sent are not covered: they may hold newer versions."""
        return Snapshot(f"{partition}:{prefix}", frozenset(self.keys), dict(self.read))


@dataclass
class Snapshot:
    """A partition's snapshot: the keys it covers, and its chunks as they are made."""

    prefix: str
    covers: frozenset[str]
    read: dict[str, int]
    keys: list[str] = field(default_factory=list)
    size: int = 0

    def chunks(
        self, records: Iterable[RecordVersion], chunk: int = CHUNK_VERSIONS
    ) -> Iterator[tuple[str, bytes]]:
        """`records` (every record of the partition, versions at least those of when the
        snapshot began) as changelog messages, one chunk at a time."""
        for n, part in enumerate(_parts(records, chunk)):
            key, value = f"{self.prefix}:{n}", encode_batch(part, self.read)
            self.keys.append(key)
            self.size += len(value)
            yield key, value

    def tombstones(self) -> list[str]:
        """The keys to delete, in order, once every chunk is on the broker."""
        return sorted(self.covers)


def _parts(records: Iterable[RecordVersion], size: int) -> Iterator[list[RecordVersion]]:
    part: list[RecordVersion] = []
    sent = False
    for record in records:
        part.append(record)
        if len(part) == size:
            yield part
            part, sent = [], True
    if part or not sent:  # an empty partition still records how far it is read
        yield part
