"""The adapter's store-and-forward outbox: SQLite in WAL mode, on the agency's machine.

An event is committed here before anything is sent, and marked sent only
after Kafka acknowledged it (acks=all, idempotent producer). So input keeps
being accepted while Kafka is down, a crash loses nothing, and a restart
sends only what was not acknowledged. Events are keyed by event id: reading
the same file twice stores each event once.

The same database keeps source watermarks (for incremental SQL sources).
Only pseudonymised, encoded events are stored here; raw rows never are.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    key        BLOB NOT NULL,
    value      BLOB NOT NULL,
    created_at REAL NOT NULL,
    sent_at    REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS watermarks (
    source TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxItem:
    event_id: str
    topic: str
    key: bytes
    value: bytes


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed event survives power loss, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, items: Iterable[OutboxItem], watermark: tuple[str, str] | None = None) -> int:
        """Store events durably in one transaction, with a source's new watermark if given.

        Returns how many were new (an event id already here is not stored twice).
        """
        now = time.time()
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO outbox (event_id, topic, key, value, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i.event_id, i.topic, i.key, i.value, now) for i in items],
            )
            added = db.total_changes - before
            if watermark is not None:
                db.execute(
                    "INSERT INTO watermarks (source, value) VALUES (?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET value = excluded.value",
                    watermark,
                )
            return added

    def pending(self, limit: int = 5000) -> list[OutboxItem]:
        rows = self._db.execute(
            "SELECT event_id, topic, key, value FROM outbox WHERE sent_at IS NULL"
            " ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def mark_sent(self, event_ids: Iterable[str]) -> None:
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET sent_at = ? WHERE event_id = ?", [(now, e) for e in event_ids]
            )

    def counts(self) -> tuple[int, int]:
        """(pending, sent)."""
        pending, sent = self._db.execute(
            "SELECT COALESCE(SUM(sent_at IS NULL), 0), COALESCE(SUM(sent_at IS NOT NULL), 0)"
            " FROM outbox"
        ).fetchone()
        return int(pending), int(sent)

    def watermark(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT value FROM watermarks WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])


def pending_count(path: Path) -> int:
    """Events at `path` not yet acknowledged by Kafka, on a short connection of its own.

    For a /metrics scrape from another thread or process: in WAL mode a reader
    never waits for the adapter's writes, and the count uses the pending index.
    """
    uri = f"{path.resolve().as_uri()}?mode=rw"  # never creates a missing outbox
    with closing(sqlite3.connect(uri, timeout=5, uri=True)) as db:
        (pending,) = db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(pending)
