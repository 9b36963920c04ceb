"""Every Prometheus metric of the adapter, created on one injected registry.

Labels are bounded: the agency id, the kind of source (its `kind`, one of
`adapters.sources.base.SOURCE_KINDS`: never a file name, URL or query) and,
for rejects, the canonical field the record was rejected on (`SourceField`,
"record" for a whole-record problem, "other" for anything else, such as a
provider's own JSON key). Never a value from a row, an identifier, a
pseudonym or a reason text (a reason can quote a value).

The outbox forwarder's state (`ForwarderStatus`: sending, waiting for Kafka, an
outbox error, failed, stopped) and the age of the oldest event it has not sent
make `outbox_health`, behind the push endpoint's /health and the
`hub_adapter_forwarder_stalled` gauge.

Served by `serve` on HUB_ADAPTER_METRICS_PORT in the long-running modes
(`hub adapter run --watch/--serve`, `hub adapter drain --follow`) and on
`hub adapter run --metrics-port N`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapters.profile import SourceField
from adapters.sources.base import SOURCE_KINDS, SourceKind
from adapters.versions import CHANGES, Change
from hub.errors import HubError, RecordError

log = logging.getLogger(__name__)

#: The `field` label of a record rejected as a whole (RecordError field "*").
WHOLE_RECORD = "record"
#: The `field` label of a rejection naming no canonical field (a header of the source's own).
OTHER_FIELD = "other"
REJECT_FIELDS: tuple[str, ...] = (*get_args(SourceField), WHOLE_RECORD, OTHER_FIELD)

#: What the outbox forwarder is doing: `sending` (or nothing to send), `waiting_for_kafka`
#: (unreachable or not acknowledging; it retries), `outbox_error` (the outbox cannot be read
#: or written; it retries), `failed` (it cannot go on: a damaged outbox; the process exits),
#: `stopped` (not running).
ForwarderState = Literal["sending", "waiting_for_kafka", "outbox_error", "failed", "stopped"]
FORWARDER_STATES: tuple[ForwarderState, ...] = get_args(ForwarderState)


class ForwarderStatus:
    """The forwarder's state, what went wrong (one line) and since when; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: ForwarderState = "stopped"
        self._detail = "not started"
        self._since = time.time()

    def set(self, state: ForwarderState, detail: str = "") -> bool:
        """Record the state; True when it changed (the caller logs changes, not repeats)."""
        with self._lock:
            changed = state != self._state
            self._state, self._detail = state, detail
            if changed:
                self._since = time.time()
            return changed

    def read(self) -> tuple[ForwarderState, str, float]:
        """(state, detail, Unix time the state began)."""
        with self._lock:
            return self._state, self._detail, self._since


@dataclass(frozen=True)
class OutboxHealth:
    """The outbox and its forwarder, as /health and the metrics report them."""

    pending: int | None  # None: the outbox could not be read
    oldest_pending_seconds: float  # 0 with nothing pending
    state: ForwarderState | None  # None: no forwarder in this process
    detail: str
    since: float | None
    stalled: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "stalled" if self.stalled else "ok",
            "pending": self.pending,
            "oldest_pending_seconds": round(self.oldest_pending_seconds, 1),
            "forwarder": self.state,
            "forwarder_since": self.since,
            "detail": self.detail,
        }


def outbox_health(
    read: Callable[[], tuple[int, float | None]],
    status: ForwarderStatus | None,
    stale_after: float,
) -> OutboxHealth:
    """Stalled: the forwarder failed, or is not sending while an event has waited longer than
    `stale_after` seconds, or the outbox cannot be read at all."""
    state, detail, since = status.read() if status is not None else (None, "", None)
    try:
        pending, oldest = read()
    except (sqlite3.Error, HubError) as exc:
        return OutboxHealth(None, 0.0, state, f"{exc}", since, True)
    age = 0.0 if oldest is None or not pending else max(0.0, time.time() - oldest)
    stalled = state == "failed" or (
        state not in (None, "sending") and pending > 0 and age > stale_after
    )
    return OutboxHealth(pending, age, state, detail, since, stalled)


def source_kind(source: object) -> SourceKind:
    """The `source_kind` label: the source's own `kind`; "other" for a source that declares
    none, or one outside `SOURCE_KINDS`."""
    kind = getattr(source, "kind", "other")
    for known in SOURCE_KINDS:
        if kind == known:
            return known
    return "other"


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

    def watch_outbox(self, pending: Callable[[], int | tuple[int, float | None]]) -> None:
        """Serve the outbox's pending events from `pending` (called at scrape time): their
        number, or (number, Unix time the oldest was stored) as `outbox.pending_summary`."""
        self._outbox.pending = pending

    def watch_forwarder(self, status: ForwarderStatus, stale_after: float) -> None:
        """Serve the forwarder's state, and whether it is stalled (see `outbox_health`)."""
        self._outbox.status = status
        self._outbox.stale_after = stale_after


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
    """Reads the outbox's pending events, and the forwarder's state, at scrape time."""

    def __init__(self, agency: str) -> None:
        self.agency = agency
        self.pending: Callable[[], int | tuple[int, float | None]] | None = None
        self.status: ForwarderStatus | None = None
        self.stale_after = 30.0

    def _read(self) -> tuple[int, float | None]:
        if self.pending is None:
            return 0, None
        read = self.pending()
        return (read, None) if isinstance(read, int) else read

    def collect(self) -> Iterator[Metric]:
        if self.pending is None:
            return
        health = outbox_health(self._read, self.status, self.stale_after)
        if health.pending is None:  # a scrape must not fail on a busy or missing outbox
            log.warning("cannot read the outbox's pending events: %s", health.detail)
        else:
            yield self._gauge(
                "hub_adapter_outbox_pending",
                "Events held in the outbox, not yet acknowledged by Kafka.",
                health.pending,
            )
            yield self._gauge(
                "hub_adapter_outbox_oldest_pending_seconds",
                "Age of the oldest event in the outbox not yet acknowledged by Kafka (0: none).",
                health.oldest_pending_seconds,
            )
        if health.state is None:
            return
        states = GaugeMetricFamily(
            "hub_adapter_forwarder_state",
            "The outbox forwarder's state (1 for the current one): sending (or nothing to"
            " send), waiting_for_kafka, outbox_error, failed (cannot go on), stopped.",
            labels=["agency", "state"],
        )
        for state in FORWARDER_STATES:
            states.add_metric([self.agency, state], 1.0 if state == health.state else 0.0)
        yield states
        yield self._gauge(
            "hub_adapter_forwarder_stalled",
            "1 when the forwarder failed, or is not sending while an event has waited longer"
            " than HUB_FORWARDER_STALE_AFTER (the push endpoint's /health answers 503).",
            1.0 if health.stalled else 0.0,
        )

    def _gauge(self, name: str, documentation: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, documentation, labels=["agency"])
        family.add_metric([self.agency], value)
        return family


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
