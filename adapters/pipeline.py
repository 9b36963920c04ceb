"""The adapter, top to bottom.

read (a Source) -> map (validate, minimise, pseudonymise; adapters.mapping)
-> version (new, corrected, withdrawn or unchanged; adapters.versions)
-> encode (Avro) -> outbox (durable, on this machine) -> forward (Kafka).

Two rows of one source that are the same record under the profile's
``record_identity`` are refused (the later one, naming the earlier row). At
the end of a source come the withdrawals it implies without listing them (a
withdrawn row's other records; for a full export, every live record it no
longer lists), all in the outbox's transactions with the record states.

A rejected record stays here: its source, row, field and reason go to the
quarantine report (``<quarantine>/<source name>.rejects.csv``), and the rest
of the source carries on. Nothing reaches Kafka except through the outbox,
and only encoded, pseudonymised events enter the outbox.

With `AdapterMetrics`, every stage counts into them (rows read, accepted,
rejected by field; events stored, sent; failed sends): see `adapters.metrics`.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.mapping import MappedRow, RowMapper
from adapters.metrics import AdapterMetrics, IngestTally, source_kind
from adapters.outbox import Outbox, OutboxItem
from adapters.profile import Profile
from adapters.publisher import KafkaUnavailable, Publisher, partition_key
from adapters.source import Source, SourceRecord
from adapters.versions import CHANGES, Change, Resolved, SnapshotCheck, Versioner
from hub.codec import Codec
from hub.errors import RecordError
from hub.minimise import Minimiser
from hub.models import EventType
from hub.pseudonymise import Pseudonymiser
from hub.taxonomy import Taxonomy

log = logging.getLogger(__name__)
BATCH = 2000


@dataclass
class RunSummary:
    """What one source did: rows read, and of the accepted ones how many were new
    records, corrections, withdrawals and unchanged; rejects; events stored."""

    source: str
    read: int = 0
    accepted: int = 0
    changes: Counter[Change] = field(default_factory=Counter)
    stored: int = 0  # events new to the outbox
    unlinked: int = 0
    rejected: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    #: Why the withdrawals a full export implies were held back (None: not held back).
    refused: str | None = None
    #: (name, when) of the identical file already ingested, when this one is a re-send.
    resent: tuple[str, float] | None = None

    @property
    def new(self) -> int:
        return self.changes["new"]

    def reasons(self) -> list[tuple[str, int]]:
        return Counter(f"{e.field}: {e.reason}" for e in self.rejected).most_common()

    def line(self) -> str:
        detail = "; ".join(f"{n} x {r}" for r, n in self.reasons())
        rejected = f"{len(self.rejected)} rejected" + (f" ({detail})" if detail else "")
        counts = ", ".join(f"{self.changes[c]} {c}" for c in CHANGES)
        return (
            f"{self.source}: {self.read} rows read; {counts}, {rejected};"
            f" {self.unlinked} with no linkable subject"
        )


class Adapter:
    """Turns one agency's source into outbox events."""

    def __init__(
        self,
        profile: Profile,
        topic: str,
        pseudonymiser: Pseudonymiser,
        outbox: Outbox | None,
        quarantine: Path | None = None,
        minimiser: Minimiser | None = None,
        taxonomy: Taxonomy | None = None,
        agency: str | None = None,
        metrics: AdapterMetrics | None = None,
        snapshot_check: SnapshotCheck | None = None,
    ) -> None:
        self.profile = profile
        self.topic = topic
        self.pseudonymiser = pseudonymiser
        self.outbox = outbox
        self.quarantine = quarantine
        self.minimiser = minimiser
        self.taxonomy = taxonomy
        self.agency = agency
        self.metrics = metrics
        self.snapshot_check = snapshot_check or SnapshotCheck()
        self.codec = Codec("case_event")
        self.versioner = Versioner(
            pseudonymiser, outbox, agency or profile.agency, profile.versioned, self.codec
        )

    def mapper(self, source_name: str) -> RowMapper:
        return RowMapper(
            self.profile,
            self.pseudonymiser,
            source_name,
            self.minimiser,
            self.taxonomy,
            self.agency,
        )

    def ingest(
        self,
        source: Source,
        progress: Callable[[int], None] | None = None,
        watermark: Callable[[SourceRecord], str] | None = None,
        snapshot: bool = False,
        accept_withdrawals: bool = False,
        resent: tuple[str, float] | None = None,
    ) -> RunSummary:
        """Read, map and store every record of `source`; with no outbox, a dry run.

        `watermark`, for incremental sources, gives the value to store with each
        batch so that the source resumes after the last stored record. With
        `snapshot` the source is a full export: the live records it does not list
        are withdrawn, unless `SnapshotCheck` refuses and `accept_withdrawals` is
        not given. With `resent` (an identical file was ingested before) nothing is
        stored: every row it lists is unchanged.
        """
        summary = RunSummary(source.name, resent=resent)
        tally = None if self.metrics is None else self.metrics.tally(source_kind(source))
        run = _Ingest(self, source.name, summary, watermark, store=resent is None)
        try:
            run.read(source, tally, progress)
            run.finish(snapshot and resent is None, accept_withdrawals)
        finally:
            _count(tally, summary)
        self._write_quarantine(source.name, summary.rejected, summary.warnings)
        if self.metrics is not None:
            self.metrics.changed(summary.changes)
            if summary.refused is not None:
                self.metrics.refused_withdrawals()
            self.metrics.ingested()
        return summary

    def store(
        self,
        resolved: Iterable[Resolved],
        source: str,
        mark: str | None,
    ) -> int:
        """Store the events and the record states of `resolved` in one transaction."""
        items: list[OutboxItem] = []
        states = []
        for r in resolved:
            if r.event is not None:
                value = self.codec.encode(r.event.to_avro())
                items.append(
                    OutboxItem(r.event.event_id, self.topic, partition_key(r.event), value)
                )
            if r.state is not None:
                states.append(r.state)
        if self.outbox is None or (not items and not states and mark is None):
            return 0
        new = self.outbox.put(
            items,
            None if mark is None else (source, mark),
            (self.versioner.agency, states),
        )
        if self.metrics is not None:
            self.metrics.stored(new)
        return new

    def _write_quarantine(
        self, source: str, rejected: list[RecordError], warnings: list[RecordError]
    ) -> None:
        if self.quarantine is None or not (rejected or warnings):
            return
        self.quarantine.mkdir(parents=True, exist_ok=True)
        name = Path(source).name or "source"
        with (self.quarantine / f"{name}.rejects.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["source", "row", "field", "reason", "outcome"])
            for error, outcome in [
                *((e, "rejected") for e in rejected),
                *((w, "kept") for w in warnings),
            ]:
                writer.writerow([error.source, error.row, error.field, error.reason, outcome])


class _Ingest:
    """One source read through the adapter: rows in batches, then what the end implies."""

    def __init__(
        self,
        adapter: Adapter,
        name: str,
        summary: RunSummary,
        watermark: Callable[[SourceRecord], str] | None,
        store: bool,
    ) -> None:
        self.adapter = adapter
        self.name = name
        self.summary = summary
        self.watermark = watermark
        self.storing = store
        self.mapper = adapter.mapper(name)
        #: record key (and version, where the export has them) -> the row that listed it
        #: and the start of its content digest
        self.seen: dict[str, tuple[int, str]] = {}
        self.listed: set[str] = set()  # the record keys this source lists
        self.withdrawn_groups: set[str] = set()
        self.unidentified = 0  # rows that could not be told apart from any record

    def read(
        self,
        source: Source,
        tally: IngestTally | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        summary = self.summary
        batch: list[tuple[MappedRow, str]] = []
        mark: str | None = None
        for item in source.records():
            if summary.read % BATCH == 0:  # progress for a long source, while it is read
                _count(tally, summary)
            summary.read += 1
            if progress is not None:
                progress(1)
            if isinstance(item, RecordError):
                summary.rejected.append(item)
                self.unidentified += 1
                continue
            row = self._map(item)
            if row is None:
                continue
            batch.append(row)
            if self.watermark is not None:
                mark = self.watermark(item)
            if len(batch) >= BATCH:
                self._resolve(batch, mark)
                batch = []
        self._resolve(batch, mark)

    def _map(self, item: SourceRecord) -> tuple[MappedRow, str] | None:
        """The mapped row and its content digest, or None when it is rejected (counted as
        such) or repeats a row already listed (counted as unchanged)."""
        summary = self.summary
        try:
            row = self.mapper.map_row(item.row, item.values)
        except RecordError as exc:
            summary.rejected.append(exc)
            self._note_identity(item)
            return None
        finally:
            summary.warnings.extend(self.mapper.take_notes())
        digest = self.adapter.versioner.digest(row.event)
        key = row.identity.key
        self.listed.add(key)
        if self.adapter.profile.versioned:  # an export may list several versions of a record
            key = f"{key}/{row.event.record_version}"
        first, first_digest = self.seen.setdefault(key, (item.row, digest[:16]))
        if first != item.row:
            if first_digest == digest[:16]:  # the same line twice: one record, listed twice
                summary.accepted += 1
                summary.changes["unchanged"] += 1
                return None
            fields = " + ".join(self.adapter.profile.record_identity)
            summary.rejected.append(
                RecordError(
                    self.name,
                    item.row,
                    "record_id",
                    f"the same record ({fields}) as row {first} with other content: the"
                    " profile's record_identity cannot tell them apart; add the column that does",
                )
            )
            return None
        summary.accepted += 1
        summary.unlinked += row.event.subject is None
        if row.event.event_type is EventType.WITHDRAWN:
            self.withdrawn_groups.add(row.identity.group)
        return row, digest

    def _note_identity(self, item: SourceRecord) -> None:
        """A rejected row's record is still listed: a full export must not withdraw it."""
        try:
            identity = self.mapper.identify(item.row, item.values)
        except RecordError:
            self.unidentified += 1
            return
        self.listed.add(identity.key)

    def _resolve(self, batch: list[tuple[MappedRow, str]], mark: str | None) -> None:
        if not self.storing:
            self.summary.changes["unchanged"] += len(batch)
            return
        resolved = self.adapter.versioner.resolve(batch)
        self.summary.changes.update(r.change for r in resolved)
        self.summary.stored += self.adapter.store(resolved, self.name, mark)

    def finish(self, snapshot: bool, accept_withdrawals: bool) -> None:
        """Withdraw what the source implies without listing it.

        The summary counts a withdrawn row once, whatever else of its record id it
        withdraws, and each record a full export no longer lists once: so its
        counts add up to the rows accepted plus the records no longer listed.
        """
        adapter, versioner, outbox = self.adapter, self.adapter.versioner, self.adapter.outbox
        if outbox is None or not self.storing:
            return
        gone = [
            s
            for s in outbox.live_in_groups(versioner.agency, self.withdrawn_groups)
            if s.record_key not in self.listed
        ]
        implied = {s.record_key for s in gone}  # by a withdrawn row: counted with that row
        if snapshot:
            live = list(outbox.live_records(versioner.agency))
            absent = [s for s in live if s.record_key not in self.listed]
            refusal = adapter.snapshot_check.refusal(
                len(absent), len(live), len(self.listed), self.unidentified
            )
            if refusal is None or accept_withdrawals:
                gone += [s for s in absent if s.record_key not in implied]
            else:
                self.summary.refused = (
                    f"{self.name}: {len(absent)} live records this full export does not list were"
                    f" NOT withdrawn: {refusal}. If they really were deleted, run it again with"
                    " --accept-withdrawals."
                )
        for start in range(0, len(gone), BATCH):
            resolved = versioner.withdraw(gone[start : start + BATCH])
            self.summary.changes["withdrawn"] += sum(
                1 for r in resolved if r.event is not None and r.event.record_key not in implied
            )
            self.summary.stored += adapter.store(resolved, self.name, None)


def _count(tally: IngestTally | None, summary: RunSummary) -> None:
    if tally is not None:
        tally.update(summary.read, summary.accepted, summary.rejected)


class Forwarder:
    """Sends what the outbox holds, marking each event sent only once Kafka acknowledged it."""

    def __init__(
        self, outbox: Outbox, publisher: Publisher, metrics: AdapterMetrics | None = None
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.metrics = metrics

    def drain(
        self,
        timeout: float | None = None,
        retry_every: float = 2.0,
        stop: threading.Event | None = None,
    ) -> int:
        """Send until the outbox is empty; retry while Kafka is down, up to `timeout` seconds.

        Returns the number sent. Raises `KafkaUnavailable` when the time runs out with
        events still held (they stay in the outbox for the next run). A set `stop`
        ends it between batches, so no acknowledged batch is left unmarked.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        sent = 0
        while stop is None or not stop.is_set():
            items = self.outbox.pending()
            if not items:
                return sent
            try:
                acknowledged = self.publisher.send(items)
            except KafkaUnavailable as exc:
                self._failed()
                if deadline is not None and time.monotonic() >= deadline:
                    pending, _ = self.outbox.counts()
                    raise KafkaUnavailable(
                        f"{exc}. {pending} events are held in the outbox {self.outbox.path}"
                        " and will be sent by the next run once Kafka is reachable."
                    ) from exc
                log.warning("Kafka unavailable (%s); retrying in %.0f s", exc, retry_every)
                time.sleep(retry_every)
                continue
            self.outbox.mark_sent(acknowledged)
            sent += len(acknowledged)
            if self.metrics is not None:
                self.metrics.sent(len(acknowledged))
            if len(acknowledged) < len(items):
                self._failed()
                time.sleep(retry_every)
        return sent

    def _failed(self) -> None:
        if self.metrics is not None:
            self.metrics.send_failed()

    def follow(self, stop: threading.Event, poll: float = 2.0) -> None:
        """Keep the outbox drained until `stop` is set, waiting out Kafka outages."""
        while not stop.is_set():
            try:
                self.drain(timeout=0, stop=stop)
            except KafkaUnavailable as exc:
                log.warning("%s", exc)
            stop.wait(poll)


def summarise(summaries: Iterable[RunSummary]) -> str:
    """One line over several sources."""
    items = list(summaries)
    read = sum(s.read for s in items)
    changes: Counter[Change] = Counter()
    for s in items:
        changes.update(s.changes)
    rejected = sum(len(s.rejected) for s in items)
    counts = ", ".join(f"{changes[c]} {c}" for c in CHANGES)
    return f"{len(items)} source(s): {read} rows read; {counts}, {rejected} rejected"
