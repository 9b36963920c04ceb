"""Every Prometheus metric of the adapter, created on one injected registry.

Labels are bounded: the agency id, the kind of source (`SourceKind`, never a
file name, URL or query) and, for rejects, the canonical field the record was
rejected on (`SourceField`, "record" for a whole-record problem, "other" for
anything else, such as a provider's own JSON key). Never a value from a row,
an identifier, a pseudonym or a reason text (a reason can quote a value).

Served by `serve` on HUB_ADAPTER_METRICS_PORT in the long-running modes
(`hub adapter run --watch/--serve`, `hub adapter drain --follow`) and on
`hub adapter run --metrics-port N`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.csv_source import CsvSource
from adapters.jsonl_source import JsonLinesSource
from adapters.profile import SourceField
from adapters.versions import CHANGES, Change
from hub.errors import HubError, RecordError

log = logging.getLogger(__name__)

SourceKind = Literal["csv", "tsv", "jsonl", "sql", "http", "other"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)
#: The `field` label of a record rejected as a whole (RecordError field "*").
WHOLE_RECORD = "record"
#: The `field` label of a rejection naming no canonical field (a header of the source's own).
OTHER_FIELD = "other"
REJECT_FIELDS: tuple[str, ...] = (*get_args(SourceField), WHOLE_RECORD, OTHER_FIELD)

#: Sources this module cannot import (they import the pipeline), by class name.
_KIND_OF_CLASS: dict[str, SourceKind] = {"SqlSource": "sql", "RequestSource": "http"}


def source_kind(source: object) -> SourceKind:
    """The kind of source, for the `source_kind` label."""
    if isinstance(source, CsvSource):
        return "tsv" if source.profile.delimiter == "\t" else "csv"
    if isinstance(source, JsonLinesSource):
        return "jsonl"
    return _KIND_OF_CLASS.get(type(source).__name__, "other")


def reject_field(error: RecordError) -> str:
    """The `field` label of a rejection: a canonical field name, "record" or "other"."""
    if error.field == "*":
        return WHOLE_RECORD
    return error.field if error.field in REJECT_FIELDS else OTHER_FIELD


class AdapterMetrics:
    """The adapter's metrics for one agency (the `agency` label), on `registry`."""

    def __init__(self, registry: CollectorRegistry, agency: str) -> None:
        self.registry = registry
        self.agency = agency
        self.rows_read = Counter(
            "hub_adapter_rows_read",
            "Records read from sources (accepted plus rejected), by kind of source.",
            ["agency", "source_kind"],
            registry=registry,
        )
        self.rows_accepted = Counter(
            "hub_adapter_rows_accepted",
            "Records mapped to a case event (repeats of an event already held included).",
            ["agency"],
            registry=registry,
        )
        self.rows_rejected = Counter(
            "hub_adapter_rows_rejected",
            "Records quarantined on this machine, by the canonical field they were rejected on"
            ' ("record": the record as a whole; "other": a field outside the profile).',
            ["agency", "field"],
            registry=registry,
        )
        self.events_stored = Counter(
            "hub_adapter_events_stored",
            "Events new to the outbox (an event id already held is not stored twice).",
            ["agency"],
            registry=registry,
        )
        self.events_sent = Counter(
            "hub_adapter_events_sent",
            "Events Kafka acknowledged and the outbox marked sent.",
            ["agency"],
            registry=registry,
        )
        self.send_failures = Counter(
            "hub_adapter_send_failures",
            "Attempts to send a batch from the outbox that did not deliver all of it (Kafka"
            " unreachable or not acknowledging); the events stay in the outbox.",
            ["agency"],
            registry=registry,
        )
        self.files_failed = Counter(
            "hub_adapter_files_failed",
            "Files a watched folder moved to failed/: unreadable (not a file of the profile's"
            " format, empty, a broken header) or without one usable row.",
            ["agency"],
            registry=registry,
        )
        self.records = Counter(
            "hub_adapter_records",
            "Accepted records by what the source did to them: new, corrected, withdrawn (a"
            " withdrawn row, or a record a full export no longer lists) or unchanged (a"
            " re-export or a re-sent file; nothing is sent).",
            ["agency", "change"],
            registry=registry,
        )
        self.withdrawals_refused = Counter(
            "hub_adapter_withdrawals_refused",
            "Full exports whose withdrawals were held back as a likely accident (too many,"
            " an empty or a damaged file) until confirmed with --accept-withdrawals.",
            ["agency"],
            registry=registry,
        )
        self.last_ingest = Gauge(
            "hub_adapter_last_ingest_timestamp_seconds",
            "Unix time the adapter last finished reading a source (a file, a query, a push).",
            ["agency"],
            registry=registry,
        )
        for kind in SOURCE_KINDS:
            self.rows_read.labels(agency, kind)
        for field in REJECT_FIELDS:
            self.rows_rejected.labels(agency, field)
        for counter in (self.rows_accepted, self.events_stored, self.events_sent):
            counter.labels(agency)
        self.send_failures.labels(agency)
        self.files_failed.labels(agency)
        self.withdrawals_refused.labels(agency)
        for change in CHANGES:
            self.records.labels(agency, change)
        self._outbox = _OutboxCollector(agency)
        registry.register(self._outbox)

    def tally(self, kind: SourceKind) -> IngestTally:
        """Counts one source's records as they are read; see `IngestTally`."""
        return IngestTally(self, kind)

    def ingested(self) -> None:
        self.last_ingest.labels(self.agency).set_to_current_time()

    def stored(self, new: int) -> None:
        self.events_stored.labels(self.agency).inc(new)

    def changed(self, counts: Mapping[Change, int]) -> None:
        for change, count in counts.items():
            self.records.labels(self.agency, change).inc(count)

    def refused_withdrawals(self) -> None:
        self.withdrawals_refused.labels(self.agency).inc()

    def sent(self, events: int) -> None:
        self.events_sent.labels(self.agency).inc(events)

    def file_failed(self) -> None:
        self.files_failed.labels(self.agency).inc()

    def send_failed(self) -> None:
        self.send_failures.labels(self.agency).inc()

    def watch_outbox(self, pending: Callable[[], int]) -> None:
        """Serve the outbox's pending events from `pending` (called at scrape time)."""
        self._outbox.pending = pending


class IngestTally:
    """Adds one source's progress to the counters: `update` with the running totals.

    Called every few thousand records rather than per record, so counting
    costs nothing next to mapping; a long file shows progress while it is read.
    """

    def __init__(self, metrics: AdapterMetrics, kind: SourceKind) -> None:
        agency = metrics.agency
        self._read = metrics.rows_read.labels(agency, kind)
        self._accepted = metrics.rows_accepted.labels(agency)
        self._rejected = metrics.rows_rejected
        self._agency = agency
        self._counted = (0, 0, 0)

    def update(self, read: int, accepted: int, rejected: Sequence[RecordError]) -> None:
        counted_read, counted_accepted, counted_rejected = self._counted
        self._read.inc(read - counted_read)
        self._accepted.inc(accepted - counted_accepted)
        fields = Tally(reject_field(e) for e in rejected[counted_rejected:])
        for field, count in fields.items():
            self._rejected.labels(self._agency, field).inc(count)
        self._counted = (read, accepted, len(rejected))


class _OutboxCollector(Collector):
    """Reads the outbox's pending count at scrape time."""

    def __init__(self, agency: str) -> None:
        self.agency = agency
        self.pending: Callable[[], int] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.pending is None:
            return
        try:
            pending = self.pending()
        except sqlite3.Error as exc:  # a scrape must not fail on a busy or missing outbox
            log.warning("cannot read the outbox's pending count: %s", exc)
            return
        family = GaugeMetricFamily(
            "hub_adapter_outbox_pending",
            "Events held in the outbox, not yet acknowledged by Kafka.",
            labels=["agency"],
        )
        family.add_metric([self.agency], pending)
        yield family


@contextmanager
def serve(registry: CollectorRegistry, host: str, port: int) -> Iterator[str]:
    """Serve `registry` at http://host:port/metrics until the block ends; yields the URL.

    `HubError` naming the settings to change when the port cannot be bound.
    """
    try:
        server, thread = start_http_server(port, host, registry)
    except OSError as exc:
        raise HubError(
            f"cannot serve adapter metrics on {host}:{port} ({exc}); choose another port with"
            " HUB_ADAPTER_METRICS_PORT or --metrics-port (0 turns metrics off), or the address"
            " with HUB_METRICS_HOST"
        ) from exc
    try:
        yield f"http://{host}:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class AgenciesMetrics(Collector):
    """Several agencies' adapter metrics as one exposition (one family per name), for a
    process that runs the adapter for more than one agency (`hub demo`)."""

    def __init__(self, agencies: Sequence[str]) -> None:
        self.by_agency = {
            agency: AdapterMetrics(CollectorRegistry(), agency) for agency in agencies
        }

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for metrics in self.by_agency.values():
            for family in metrics.registry.collect():
                held = families.get(family.name)
                if held is None:
                    held = Metric(family.name, family.documentation, family.type, family.unit)
                    families[family.name] = held
                held.samples.extend(family.samples)
        yield from families.values()
