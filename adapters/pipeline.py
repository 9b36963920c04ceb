"""The adapter, top to bottom.

read (a Source) -> map (validate, minimise, pseudonymise; adapters.mapping)
-> encode (Avro) -> outbox (durable, on this machine) -> forward (Kafka).

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

from adapters.mapping import RowMapper
from adapters.metrics import AdapterMetrics, IngestTally, source_kind
from adapters.outbox import Outbox, OutboxItem
from adapters.profile import Profile
from adapters.publisher import KafkaUnavailable, Publisher, partition_key
from adapters.source import Source, SourceRecord
from hub.codec import Codec
from hub.errors import RecordError
from hub.minimise import Minimiser
from hub.pseudonymise import Pseudonymiser
from hub.taxonomy import Taxonomy

log = logging.getLogger(__name__)
BATCH = 2000


@dataclass
class RunSummary:
    source: str
    read: int = 0
    accepted: int = 0
    new: int = 0
    unlinked: int = 0
    rejected: list[RecordError] = field(default_factory=list)

    def reasons(self) -> list[tuple[str, int]]:
        return Counter(f"{e.field}: {e.reason}" for e in self.rejected).most_common()

    def line(self) -> str:
        detail = "; ".join(f"{n} x {r}" for r, n in self.reasons())
        rejected = f"{len(self.rejected)} rejected" + (f" ({detail})" if detail else "")
        return (
            f"{self.source}: {self.read} rows read, {self.accepted} accepted"
            f" ({self.new} new to the outbox), {rejected},"
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
        self.codec = Codec("case_event")

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
    ) -> RunSummary:
        """Read, map and store every record of `source`; with no outbox, a dry run.

        `watermark`, for incremental sources, gives the value to store with each
        batch so that the source resumes after the last stored record.
        """
        summary = RunSummary(source.name)
        tally = None if self.metrics is None else self.metrics.tally(source_kind(source))
        try:
            self._read(source, summary, tally, progress, watermark)
        finally:
            _count(tally, summary)
        self._write_quarantine(source.name, summary.rejected)
        if self.metrics is not None:
            self.metrics.ingested()
        return summary

    def _read(
        self,
        source: Source,
        summary: RunSummary,
        tally: IngestTally | None,
        progress: Callable[[int], None] | None,
        watermark: Callable[[SourceRecord], str] | None,
    ) -> None:
        mapper = self.mapper(source.name)
        batch: list[OutboxItem] = []
        mark: str | None = None
        for item in source.records():
            if summary.read % BATCH == 0:  # progress for a long source, while it is read
                _count(tally, summary)
            summary.read += 1
            if progress is not None:
                progress(1)
            if isinstance(item, RecordError):
                summary.rejected.append(item)
                continue
            try:
                event = mapper.map(item.row, item.values)
            except RecordError as exc:
                summary.rejected.append(exc)
                continue
            summary.accepted += 1
            summary.unlinked += event.subject is None
            value = self.codec.encode(event.to_avro())
            batch.append(OutboxItem(event.event_id, self.topic, partition_key(event), value))
            if watermark is not None:
                mark = watermark(item)
            if len(batch) >= BATCH:
                summary.new += self._store(batch, source.name, mark)
                batch = []
        summary.new += self._store(batch, source.name, mark)

    def _store(self, batch: list[OutboxItem], source: str, mark: str | None) -> int:
        if self.outbox is None or (not batch and mark is None):
            return 0
        new = self.outbox.put(batch, None if mark is None else (source, mark))
        if self.metrics is not None:
            self.metrics.stored(new)
        return new

    def _write_quarantine(self, source: str, rejected: list[RecordError]) -> None:
        if self.quarantine is None or not rejected:
            return
        self.quarantine.mkdir(parents=True, exist_ok=True)
        name = Path(source).name or "source"
        with (self.quarantine / f"{name}.rejects.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["source", "row", "field", "reason"])
            for error in rejected:
                writer.writerow([error.source, error.row, error.field, error.reason])


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
    accepted = sum(s.accepted for s in items)
    rejected = sum(len(s.rejected) for s in items)
    return f"{len(items)} source(s): {read} rows read, {accepted} accepted, {rejected} rejected"
