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
from adapters.metrics import (
    AdapterMetrics,
    ForwarderState,
    ForwarderStatus,
    IngestTally,
    source_kind,
)
from adapters.outbox import Outbox, OutboxItem, is_audit
from adapters.profile import Profile
from adapters.publishers.base import KafkaUnavailable, Publisher, partition_key
from adapters.publishers.factory import make_publisher
from adapters.sources.base import Source, SourceRecord
from adapters.versions import CHANGES, Change, Resolved, SnapshotCheck, Versioner
from hub.agreement.model import ShareableField
from hub.areas import Areas
from hub.codec import Codec
from hub.errors import HubError, OutboxError, RecordError
from hub.minimise import Minimiser
from hub.models import EventType
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings
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
        areas: Areas | None = None,
        share: tuple[ShareableField, ...] | None = None,
    ) -> None:
        self.profile = profile
        self.topic = topic
        self.share = share  # the shareable fields sent (adapters.profile.sharing_scope)
        self.pseudonymiser = pseudonymiser
        self.outbox = outbox
        self.quarantine = quarantine
        self.minimiser = minimiser
        self.taxonomy = taxonomy
        self.areas = areas  # the agreement's areas: what an area cell may name
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
            self.areas,
            self.share,
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
            self.mapper.take_notes()  # a rejected row's warnings are not kept
            summary.rejected.append(exc)
            self._note_identity(item)
            return None
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


class _ClientFailed(KafkaUnavailable):
    """The publisher raised something other than `KafkaUnavailable`; it was discarded."""


class Backoff:
    """Seconds between retries: `first`, doubling after each failure in a row up to `cap`."""

    def __init__(self, first: float = 1.0, cap: float = 30.0) -> None:
        self.first = first
        self.cap = max(first, cap)
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Forwarder:
    """Sends what the outbox holds, marking each event sent only once Kafka acknowledged it.

    Supervised: every failure of the publisher (Kafka away, a timeout, a client that
    fails even to close) or of the outbox (a full disk, a read-only file) is retried
    with `backoff`, and the `status` says what it is waiting for; each change of state
    is logged once. A publisher that failed is discarded and, given `new_publisher`, a
    fresh one made. Ids Kafka acknowledged stay in memory until the outbox has marked
    them sent, so a failed mark does not send them again (if the process dies first,
    they are sent once more: the hub drops duplicates by event id). Only a damaged
    outbox stops it: `OutboxError` with `fatal` set.

    `outbox` may be a function that opens one: then it is opened (and retried) in the
    forwarder's own thread, and closed by `close`.
    """

    def __init__(
        self,
        outbox: Outbox | Callable[[], Outbox],
        publisher: Publisher | None,
        metrics: AdapterMetrics | None = None,
        *,
        new_publisher: Callable[[], Publisher] | None = None,
        status: ForwarderStatus | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._outbox = outbox if isinstance(outbox, Outbox) else None
        self._open_outbox = None if isinstance(outbox, Outbox) else outbox
        self.publisher = publisher
        self.new_publisher = new_publisher
        self.metrics = metrics
        self.status = status or ForwarderStatus()
        self.backoff = backoff or Backoff()
        #: Ids Kafka acknowledged that the outbox has not marked sent yet.
        self.acknowledged: list[str] = []
        #: Events marked sent by this forwarder.
        self.sent = 0
        self._made_publisher = False

    @classmethod
    def from_settings(
        cls,
        settings: HubSettings,
        outbox: Outbox | Callable[[], Outbox],
        metrics: AdapterMetrics | None = None,
        status: ForwarderStatus | None = None,
        client_id: str = "hub-adapter",
        publisher: Publisher | None = None,
    ) -> Forwarder:
        """A forwarder that makes its publishers from `settings` (HUB_PUBLISHER), with the
        backoff of HUB_FORWARDER_BACKOFF and HUB_FORWARDER_BACKOFF_MAX."""
        return cls(
            outbox,
            publisher,
            metrics,
            new_publisher=lambda: make_publisher(settings, client_id),
            status=status,
            backoff=Backoff(settings.forwarder_backoff, settings.forwarder_backoff_max),
        )

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            if self._open_outbox is None:  # never: one of the two is always given
                raise TypeError("a Forwarder needs an outbox")
            self._outbox = self._open_outbox()
        return self._outbox

    def close(self) -> None:
        """Close the outbox this forwarder opened and the publisher it made, if any."""
        if self._made_publisher:
            self._discard_publisher()
        if self._open_outbox is not None and self._outbox is not None:
            self._outbox.close()
            self._outbox = None

    # --- one step -----------------------------------------------------------------
    def _step(self) -> bool:
        """Mark what Kafka acknowledged, or else send one batch and mark it. False when
        nothing is left to send or mark. Raises `KafkaUnavailable` for any failure of the
        publisher, and `OutboxError` (or anything else) for the outbox."""
        outbox = self.outbox
        missing, batch = 0, len(self.acknowledged)
        if not self.acknowledged:
            items = outbox.pending()
            if not items:
                return False
            self.acknowledged = self._send(items)
            missing, batch = len(items) - len(self.acknowledged), len(items)
        if self.acknowledged:
            outbox.mark_sent(self.acknowledged)
            # Events only: the outbox's audit entries (`is_audit`) are not counted.
            done = sum(1 for i in self.acknowledged if not is_audit(i))
            self.acknowledged = []
            self.sent += done
            if self.metrics is not None:
                self.metrics.sent(done)
        if missing:
            self._failed()
            raise KafkaUnavailable(
                f"Kafka did not acknowledge {missing} of {batch} events; they stay in the outbox"
            )
        return True

    def _send(self, items: list[OutboxItem]) -> list[str]:
        try:
            if self.publisher is None:
                if self.new_publisher is None:
                    raise KafkaUnavailable("no Kafka client to send with")
                self.publisher = self.new_publisher()
                self._made_publisher = True
            return list(self.publisher.send(items))
        except KafkaUnavailable:
            self._failed()
            raise
        except Exception as exc:  # the client itself failed: its state is unknown
            self._failed()
            self._discard_publisher()
            raise _ClientFailed(
                f"the Kafka client failed ({type(exc).__name__}: {exc}); a new one will connect"
            ) from exc

    def _discard_publisher(self) -> None:
        """Close the publisher (whatever its close raises) and make a new one next time."""
        if self.new_publisher is None:  # nothing to replace it with: keep it
            return
        publisher, self.publisher = self.publisher, None
        self._made_publisher = False
        if publisher is not None:
            try:
                publisher.close()
            except Exception as exc:
                log.info("a failed Kafka client did not close cleanly (%s); discarded", exc)

    def _failed(self) -> None:
        if self.metrics is not None:
            self.metrics.send_failed()

    # --- state ----------------------------------------------------------------------
    def _trouble(self, exc: Exception) -> None:
        """Note a failure (logged when the state changes); raise it when it is fatal."""
        if isinstance(exc, OutboxError) and exc.fatal:
            self.status.set("failed", str(exc))
            log.error("the outbox forwarder cannot go on: %s", exc)
            raise exc
        state: ForwarderState = (
            "waiting_for_kafka" if isinstance(exc, KafkaUnavailable) else "outbox_error"
        )
        # A failure no HubError explains is logged with its traceback (once).
        unexpected = exc.__cause__ if isinstance(exc, _ClientFailed) else exc
        if isinstance(exc, HubError) and not isinstance(exc, _ClientFailed):
            unexpected = None
        detail = str(exc) if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
        if self.status.set(state, detail):
            log.warning(
                "outbox forwarder %s (retrying, at most every %g s, until it works): %s",
                state.replace("_", " "),
                self.backoff.cap,
                detail,
                exc_info=unexpected,
            )
        else:
            log.debug("still %s: %s", state, detail)

    def _working(self) -> None:
        previous = self.status.read()[0]
        self.backoff.reset()
        if self.status.set("sending") and previous not in ("stopped", "sending"):
            log.warning("outbox forwarder sending again (was %s)", previous.replace("_", " "))

    # --- the loops --------------------------------------------------------------------
    def drain(
        self,
        timeout: float | None = None,
        retry_every: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Send until the outbox is empty, retrying failures up to `timeout` seconds (with
        the backoff, or every `retry_every` seconds).

        Returns the number sent. When the time runs out with events still held (they stay
        in the outbox for the next run) raises `KafkaUnavailable`, or the `OutboxError`; a
        damaged outbox at once. A set `stop` ends it between batches, so no acknowledged
        batch is left unmarked.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = self.backoff if retry_every is None else Backoff(retry_every, retry_every)
        before = self.sent
        while stop is None or not stop.is_set():
            try:
                more = self._step()
            except Exception as exc:
                self._trouble(exc)
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._gave_up(exc) from exc
                delay = backoff.next()
                if deadline is not None:
                    delay = min(delay, max(0.0, deadline - time.monotonic()))
                time.sleep(delay)
                continue
            self._working()
            backoff.reset()
            if not more:
                break
        return self.sent - before

    def _gave_up(self, exc: Exception) -> HubError:
        unmarked = ""
        if self.acknowledged:
            unmarked = (
                f" {len(self.acknowledged)} events Kafka acknowledged could not be marked sent:"
                " the next run sends them again (the hub drops the duplicates)."
            )
        if isinstance(exc, OutboxError):
            return OutboxError(f"{exc}{unmarked}", exc.path, exc.kind)
        if not isinstance(exc, KafkaUnavailable):
            return HubError(f"the outbox forwarder failed: {type(exc).__name__}: {exc}{unmarked}")
        try:
            held = f"{self.outbox.counts()[0]} events are held"
        except HubError:
            held = "The events are held"
        return KafkaUnavailable(
            f"{exc}. {held} in the outbox {self.outbox.path} and will be sent by the next run"
            f" once Kafka is reachable.{unmarked}"
        )

    def follow(self, stop: threading.Event, poll: float = 2.0) -> None:
        """Keep the outbox drained until `stop` is set, through any outage or disk error.

        Raises `OutboxError` only when the outbox is damaged (the state is then `failed`).
        """
        self.status.set("sending", "starting")
        try:
            while not stop.is_set():
                try:
                    more = self._step()
                except Exception as exc:
                    self._trouble(exc)
                    stop.wait(self.backoff.next())
                    continue
                self._working()
                if not more:
                    stop.wait(poll)
            self._mark_before_stopping()
        finally:
            if self.status.read()[0] != "failed":
                self.status.set("stopped", "stopped")

    def _mark_before_stopping(self) -> None:
        if not self.acknowledged:
            return
        try:
            self.outbox.mark_sent(self.acknowledged)
        except Exception as exc:
            log.error(
                "%d events Kafka acknowledged could not be marked sent (%s): the next start"
                " sends them again (the hub drops the duplicates)",
                len(self.acknowledged),
                exc,
            )
            return
        self.sent += len(self.acknowledged)
        if self.metrics is not None:
            self.metrics.sent(len(self.acknowledged))
        self.acknowledged = []


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
