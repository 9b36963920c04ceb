"""The adapter's store-and-forward outbox: SQLite in WAL mode, on the agency's machine.

An event is committed here before anything is sent, and marked sent only
after Kafka acknowledged it (acks=all, idempotent producer). So input keeps
being accepted while Kafka is down, a crash loses nothing, and a restart
sends only what was not acknowledged. Events are keyed by event id: reading
the same file twice stores each event once.

The same database keeps source watermarks (for incremental SQL sources), and
per source record what the adapter last sent of it (`RecordState`: its keyed
record key, version, a keyed digest of its content, whether it is live), so
that an export without a version column still yields corrections and
withdrawals (`adapters.versions`), and the keyed digests of the files already
ingested, so that a re-sent file changes nothing. Only pseudonymised, encoded
events, keyed digests and the agency's audit entries (`audit_item`: counts and
key ids) are stored here; raw rows never are.

Every SQLite or file-system error leaves this module as an `OutboxError` (a
`HubError`) naming the file and what to do: free space, fix permissions or the
mount, or, for a damaged file, restore it or move it aside (losing the events
in it that were not yet sent). Only a damaged outbox is beyond retrying.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from hub import audit
from hub.errors import OutboxError
from hub.settings import HubSettings

P = ParamSpec("P")
R = TypeVar("R")

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
CREATE TABLE IF NOT EXISTS records (
    agency     TEXT NOT NULL,
    record_key TEXT NOT NULL,
    grp        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    live       INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (agency, record_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_group ON records (agency, grp);
CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id   TEXT NOT NULL UNIQUE,
    topic      TEXT NOT NULL,
    key        BLOB NOT NULL,
    value      BLOB NOT NULL,
    created_at REAL NOT NULL,
    sent_at    REAL
);
CREATE INDEX IF NOT EXISTS audit_pending ON audit (seq) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS files (
    agency      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    name        TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    PRIMARY KEY (agency, digest)
);
"""


@dataclass(frozen=True)
class OutboxItem:
    event_id: str
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Pruned:
    """What one `Outbox.prune` deleted."""

    events: int
    audit_entries: int
    record_states: int
    file_digests: int

    def summary(self) -> str:
        return (
            f"{self.events} sent events, {self.audit_entries} audit entries,"
            f" {self.record_states} withdrawn record states and {self.file_digests} file"
            " digests past retention deleted"
        )


@dataclass(frozen=True)
class RecordState:
    """What the adapter last sent of one source record."""

    record_key: str
    group: str  # the record key of its record id alone (see adapters.mapping.Identity)
    version: int
    digest: str  # keyed digest of the content of that version
    live: bool
    event_id: str  # the event that carried it


#: SQLite's primary result codes -> the kind of `OutboxError`.
_KINDS = {5: "busy", 6: "busy", 8: "readonly", 10: "io", 11: "corrupt", 13: "full"}
_KINDS |= {14: "cantopen", 26: "corrupt"}
_ERRNO_KINDS = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EROFS: "readonly"}
_ERRNO_KINDS |= {errno.EACCES: "readonly", errno.EPERM: "readonly", errno.EIO: "io"}


def outbox_error(path: Path, exc: sqlite3.Error | OSError) -> OutboxError:
    """`exc` as an `OutboxError`: one line naming the outbox and what to do about it."""
    kind = "other"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        kind = _KINDS.get(code & 0xFF, "other") if isinstance(code, int) else "other"
        if kind == "other" and ("malformed" in str(exc) or "not a database" in str(exc)):
            kind = "corrupt"
    elif exc.errno is not None:
        kind = _ERRNO_KINDS.get(exc.errno, "cantopen")
    files = f"{path} (and its -wal and -shm files beside it)"
    advice = {
        "full": f"the disk holding the outbox {path} is full ({exc}). Free space on it: the"
        " adapter retries by itself and loses nothing it had accepted, but takes no new"
        " input until then.",
        "readonly": f"the outbox {files} cannot be written ({exc}). Give the adapter's user"
        " write permission on it and on its folder, or remount the disk read-write; the"
        " adapter retries by itself.",
        "cantopen": f"cannot open the outbox {path} ({exc}). Check that its folder exists and"
        " that the adapter's user may write there (HUB_OUTBOX names the file).",
        "io": f"the outbox {path} could not be read or written: a disk error ({exc}). Check"
        " the disk (free space, the system log); the adapter retries by itself.",
        "busy": f"the outbox {path} is locked by another process ({exc}); the adapter"
        " retries by itself. Is a second adapter using the same HUB_OUTBOX?",
        "corrupt": f"the outbox {files} is damaged ({exc}). Stop the adapter and restore the"
        " file from a backup, or move it aside and start again with a new one: the events in"
        " it not yet sent to Kafka are then lost, so run the exports (or have the providers"
        " push the requests) since the last successful send again.",
        "other": f"the outbox {path} failed: {exc}.",
    }[kind]
    return OutboxError(advice[0].upper() + advice[1:], str(path), kind)


def _guarded(
    method: Callable[Concatenate[Outbox, P], R],
) -> Callable[Concatenate[Outbox, P], R]:
    """The method, raising `OutboxError` for any SQLite error."""

    @wraps(method)
    def wrapper(self: Outbox, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise outbox_error(self.path, exc) from exc

    return wrapper


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise outbox_error(path, exc) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed event survives power loss, not only a process crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise outbox_error(path, exc) from exc

    def close(self) -> None:
        with suppress(sqlite3.Error):
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")  # a full disk can fail the commit itself
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error).
            if self._db.in_transaction:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise

    @_guarded
    def put(
        self,
        items: Iterable[OutboxItem],
        watermark: tuple[str, str] | None = None,
        states: tuple[str, Iterable[RecordState]] | None = None,
    ) -> int:
        """Store events durably in one transaction, with a source's new watermark and
        an agency's new record states if given.

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
            if states is not None:
                agency, changed = states
                db.executemany(
                    "INSERT OR REPLACE INTO records"
                    " (agency, record_key, grp, version, digest, live, event_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (agency, r.record_key, r.group, r.version, r.digest, r.live, r.event_id)
                        for r in changed
                    ],
                )
            if watermark is not None:
                db.execute(
                    "INSERT INTO watermarks (source, value) VALUES (?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET value = excluded.value",
                    watermark,
                )
            return added

    @_guarded
    def put_audit(self, items: Iterable[OutboxItem]) -> None:
        """Store audit entries (`audit_item`), sent once no event is waiting: after every
        event stored before them. Not counted among the events."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO audit (entry_id, topic, key, value, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(i.event_id, i.topic, i.key, i.value, now) for i in items],
            )

    @_guarded
    def pending(self, limit: int = 5000) -> list[OutboxItem]:
        """Events not yet acknowledged, oldest first; when there are none, audit entries."""
        for query in _PENDING:
            rows = self._db.execute(query, (limit,)).fetchall()
            if rows:
                return [OutboxItem(*row) for row in rows]
        return []

    @_guarded
    def mark_sent(self, event_ids: Iterable[str]) -> None:
        now = time.time()
        ids = list(event_ids)
        entries = [(now, e) for e in ids if is_audit(e)]
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET sent_at = ? WHERE event_id = ?",
                [(now, e) for e in ids if not is_audit(e)],
            )
            if entries:
                db.executemany("UPDATE audit SET sent_at = ? WHERE entry_id = ?", entries)

    @_guarded
    def prune(self, sent_before: float, forget_before: float) -> Pruned:
        """Delete what Kafka acknowledged and the outbox no longer needs; pending events are
        never touched. One transaction.

        - Sent events and audit entries acknowledged before `sent_before` (Unix time),
          except a live record's last event (a full export that drops the record withdraws
          it from that event) and a withdrawal acknowledged since `forget_before`;
        - the state of a withdrawn record whose withdrawal was acknowledged before
          `forget_before`, with that withdrawal: until then the state keeps the record's
          versions rising if it comes back;
        - the digests of files ingested before `sent_before`.
        """
        with self._transaction() as db:
            events = db.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?"
                " AND (event_id NOT IN (SELECT event_id FROM records)"
                " OR (sent_at < ? AND event_id IN (SELECT event_id FROM records WHERE live = 0)))",
                (sent_before, forget_before),
            ).rowcount
            entries = db.execute(
                "DELETE FROM audit WHERE sent_at IS NOT NULL AND sent_at < ?", (sent_before,)
            ).rowcount
            states = db.execute(
                "DELETE FROM records WHERE live = 0"
                " AND event_id NOT IN (SELECT event_id FROM outbox)"
            ).rowcount
            files = db.execute("DELETE FROM files WHERE ingested_at < ?", (sent_before,)).rowcount
        return Pruned(events, entries, states, files)

    @_guarded
    def oldest(self) -> dict[str, float | None]:
        """Unix time of the oldest thing of each kind held: a sent event, a live record's
        last event (kept while the record is live), a withdrawn record's state (by when its
        withdrawal was sent), a pending event, a sent audit entry, an ingested file's digest
        (None where there is none)."""
        queries = {
            "sent event": "SELECT MIN(sent_at) FROM outbox WHERE sent_at IS NOT NULL"
            " AND event_id NOT IN (SELECT event_id FROM records)",
            "live record's last event": "SELECT MIN(sent_at) FROM outbox"
            " WHERE sent_at IS NOT NULL"
            " AND event_id IN (SELECT event_id FROM records WHERE live = 1)",
            "withdrawn record's state": "SELECT MIN(sent_at) FROM outbox"
            " WHERE sent_at IS NOT NULL"
            " AND event_id IN (SELECT event_id FROM records WHERE live = 0)",
            "pending event": _OLDEST_PENDING,
            "sent audit entry": "SELECT MIN(sent_at) FROM audit WHERE sent_at IS NOT NULL",
            "ingested file digest": "SELECT MIN(ingested_at) FROM files",
        }
        found: dict[str, float | None] = {}
        for what, query in queries.items():
            row = self._db.execute(query).fetchone()
            found[what] = None if row is None or row[0] is None else float(row[0])
        return found

    @_guarded
    def counts(self) -> tuple[int, int]:
        """(pending, sent)."""
        pending, sent = self._db.execute(
            "SELECT COALESCE(SUM(sent_at IS NULL), 0), COALESCE(SUM(sent_at IS NOT NULL), 0)"
            " FROM outbox"
        ).fetchone()
        return int(pending), int(sent)

    @_guarded
    def oldest_pending(self) -> float | None:
        """Unix time the oldest event not yet acknowledged was stored (None: nothing pending)."""
        row = self._db.execute(_OLDEST_PENDING).fetchone()
        return None if row is None else float(row[0])

    # --- record states and files ---------------------------------------------
    @_guarded
    def states(self, agency: str, record_keys: Iterable[str]) -> dict[str, RecordState]:
        """The held state of each of `record_keys` that this agency has sent before."""
        rows = self._db.execute(
            "SELECT record_key, grp, version, digest, live, event_id FROM records"
            " WHERE agency = ?"
            " AND record_key IN (SELECT value FROM json_each(?))",
            (agency, json.dumps(list(record_keys))),
        ).fetchall()
        return {row[0]: _state(row) for row in rows}

    @_guarded
    def live_in_groups(self, agency: str, groups: Iterable[str]) -> list[RecordState]:
        """The live records of the given record ids (groups)."""
        rows = self._db.execute(
            "SELECT record_key, grp, version, digest, live, event_id FROM records"
            " WHERE agency = ? AND live"
            " AND grp IN (SELECT value FROM json_each(?))",
            (agency, json.dumps(list(groups))),
        ).fetchall()
        return [_state(row) for row in rows]

    def live_records(self, agency: str) -> Iterator[RecordState]:
        """Every record of the agency that is live (sent and not withdrawn)."""
        try:
            cursor = self._db.execute(
                "SELECT record_key, grp, version, digest, live, event_id FROM records"
                " WHERE agency = ? AND live",
                (agency,),
            )
            for row in cursor:
                yield _state(row)
        except sqlite3.Error as exc:
            raise outbox_error(self.path, exc) from exc

    @_guarded
    def event(self, event_id: str) -> OutboxItem | None:
        row = self._db.execute(
            "SELECT event_id, topic, key, value FROM outbox WHERE event_id = ?", (event_id,)
        ).fetchone()
        return None if row is None else OutboxItem(*row)

    @_guarded
    def file_ingested(self, agency: str, digest: str) -> tuple[str, float] | None:
        """(name, when) of an earlier file of this agency with the same content digest."""
        row = self._db.execute(
            "SELECT name, ingested_at FROM files WHERE agency = ? AND digest = ?",
            (agency, digest),
        ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    @_guarded
    def record_file(self, agency: str, digest: str, name: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO files (agency, digest, name, ingested_at)"
                " VALUES (?, ?, ?, ?)",
                (agency, digest, name, time.time()),
            )

    @_guarded
    def watermark(self, source: str) -> str | None:
        row = self._db.execute(
            "SELECT value FROM watermarks WHERE source = ?", (source,)
        ).fetchone()
        return None if row is None else str(row[0])


def _state(row: tuple[str, str, int, str, int, str]) -> RecordState:
    return RecordState(row[0], row[1], int(row[2]), row[3], bool(row[4]), row[5])


#: Pending events, then pending audit entries, each oldest first.
_PENDING = (
    "SELECT event_id, topic, key, value FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
    "SELECT entry_id, topic, key, value FROM audit WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
)
#: The oldest pending event by the pending index (stored in order), not a scan of them all.
_OLDEST_PENDING = "SELECT created_at FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 1"


def pending_count(path: Path) -> int:
    """Events at `path` not yet acknowledged by Kafka, on a short connection of its own.

    For a /metrics scrape from another thread or process: in WAL mode a reader
    never waits for the adapter's writes, and the count uses the pending index.
    """
    return pending_summary(path)[0]


def pending_summary(path: Path) -> tuple[int, float | None]:
    """(events not yet acknowledged, Unix time the oldest of them was stored or None), as
    `pending_count` reads them. `OutboxError` when the outbox cannot be read."""
    uri = f"{path.resolve().as_uri()}?mode=rw"  # never creates a missing outbox
    try:
        with closing(sqlite3.connect(uri, timeout=5, uri=True)) as db:
            (pending,) = db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()
            oldest = db.execute(_OLDEST_PENDING).fetchone()
    except sqlite3.Error as exc:
        raise outbox_error(path, exc) from exc
    return int(pending), None if oldest is None else float(oldest[0])


#: What the id of an audit entry in the outbox starts with (never an event id's start).
AUDIT_PREFIX = "audit-"


def is_audit(item_id: str) -> bool:
    return item_id.startswith(AUDIT_PREFIX)


def audit_item(settings: HubSettings, record: Mapping[str, Any]) -> OutboxItem:
    """An entry of the audit trail (`hub.audit`) as the forwarder sends it, to the audit
    topic."""
    key, value = audit.encode(record)
    return OutboxItem(f"{AUDIT_PREFIX}{record['id']}", audit.audit_topic(settings), key, value)


def audited(settings: HubSettings, record: Mapping[str, Any]) -> None:
    """Store one audit entry in the outbox at HUB_OUTBOX (opened and closed for it)."""
    outbox = Outbox(settings.outbox)
    try:
        outbox.put_audit([audit_item(settings, record)])
    finally:
        outbox.close()
