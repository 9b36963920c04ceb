"""Where a worker keeps each record's current version: in memory, or on disk.

With the production store (``HUB_STORE=rocksdb://``) a partition's records
live in one local RocksDB database under ``HUB_WORKER_DATA``, so the
worker's memory holds the counts and not the records: about 460 bytes a
record as Python objects, nothing here. The database is scratch space. It
is emptied when the worker starts and a partition's records are dropped
when it leaves, because the changelog, not the disk, is what a worker
recovers from (``streams.app``); nothing is written ahead to a log either.

Each version is stored as MessagePack (``msgspec``), under its partition
(two bytes, big-endian) followed by its record key.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, cast

import msgspec
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

from hub.settings import HubSettings
from streams.records import RecordVersion

#: Memory RocksDB may use, whatever the number of records: its memtables and
#: its block cache.
WRITE_BUFFER = 8 * 1024 * 1024
BLOCK_CACHE = 16 * 1024 * 1024


class Records(Protocol):
    """A partition's records: record key -> current version."""

    def get(self, key: str) -> RecordVersion | None: ...

    def get_many(self, keys: Sequence[str]) -> list[RecordVersion | None]:
        """The versions of `keys`, in order (None: not held), in one read."""
        ...

    def put_many(self, versions: Mapping[str, RecordVersion]) -> None:
        """Hold each of `versions` under its key, in one write."""
        ...

    def __setitem__(self, key: str, version: RecordVersion) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def values(self) -> Iterator[RecordVersion]: ...


class MemoryRecords(dict[str, RecordVersion]):
    """The records as a dict (``HUB_STORE=memory://``, and tests)."""

    def values(self) -> Iterator[RecordVersion]:  # type: ignore[override]
        """The records now: a copy, so it can be read while records change."""
        return iter(list(super().values()))

    def get_many(self, keys: Sequence[str]) -> list[RecordVersion | None]:
        return [self.get(key) for key in keys]

    def put_many(self, versions: Mapping[str, RecordVersion]) -> None:
        self.update(versions)


class Disk:
    """The worker's RocksDB of records, every partition in one database."""

    def __init__(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)  # scratch: rebuilt from the changelog
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(WRITE_BUFFER)
        options.set_max_write_buffer_number(2)
        table = BlockBasedOptions()
        table.set_block_cache(Cache(BLOCK_CACHE))
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        self.db = Rdict(str(path), options)
        writes = WriteOptions()
        # A property at run time; rocksdict's stubs declare it a method.
        writes.disable_wal = True  # type: ignore[method-assign,assignment]
        self.db.set_write_options(writes)

    def partition(self, number: int) -> DiskRecords:
        return DiskRecords(self.db, number)

    def drop(self, number: int) -> None:
        """Delete a partition's records (it has gone to another worker)."""
        self.db.delete_range(_prefix(number), _prefix(number + 1))

    def close(self) -> None:
        self.db.close()


class DiskRecords:
    """One partition's records in the worker's RocksDB."""

    _encode = msgspec.msgpack.Encoder().encode
    _decode = msgspec.msgpack.Decoder(RecordVersion).decode

    def __init__(self, db: Rdict, partition: int) -> None:
        self.db = db
        self.prefix = _prefix(partition)

    def get(self, key: str) -> RecordVersion | None:
        value = self.db.get(self.prefix + key.encode())
        return None if value is None else self._decode(value)

    def get_many(self, keys: Sequence[str]) -> list[RecordVersion | None]:
        prefix, decode = self.prefix, self._decode
        values = cast(list[bytes | None], self.db.get([prefix + key.encode() for key in keys]))
        return [None if value is None else decode(value) for value in values]

    def put_many(self, versions: Mapping[str, RecordVersion]) -> None:
        prefix, encode = self.prefix, self._encode
        batch = WriteBatch(raw_mode=True)
        for key, version in versions.items():
            batch.put(prefix + key.encode(), encode(version))
        self.db.write(batch)

    def __setitem__(self, key: str, version: RecordVersion) -> None:
        self.db.put(self.prefix + key.encode(), self._encode(version))

    def __delitem__(self, key: str) -> None:
        self.db.delete(self.prefix + key.encode())

    def values(self) -> Iterator[RecordVersion]:
        cursor = self.db.iter()
        cursor.seek(self.prefix)
        while cursor.valid():
            if not cursor.key().startswith(self.prefix):
                return
            yield self._decode(cursor.value())
            cursor.next()


def open_disk(settings: HubSettings) -> Disk | None:
    """The worker's records database with the RocksDB store; None with ``memory://``."""
    if settings.store.startswith("rocksdb"):
        return Disk(settings.worker_data / "records")
    return None


def _prefix(partition: int) -> bytes:
    return partition.to_bytes(2, "big")
