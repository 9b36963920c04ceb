"""Every Prometheus metric of the stream worker, created on one injected registry.

Labels are bounded: a risk code (the taxonomy's fixed set), never a
pseudonym, case id or event id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.records import Kind
from streams.state import WorkerState


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, state: WorkerState) -> None:
        self.registry = registry
        self.consumed = Counter(
            "hub_events_consumed",
            "Case-event messages read by this worker process.",
            registry=registry,
        )
        self.duplicates = Counter(
            "hub_duplicates_dropped",
            "Messages that changed no count: their record version was already counted"
            " (replays, retries), or they re-sent a record's counted content under a higher"
            " version (an adapter that lost its outbox).",
            registry=registry,
        )
        self.stale = Counter(
            "hub_stale_versions_dropped",
            "Events older than the version already counted for their record.",
            registry=registry,
        )
        self.corrections = Counter(
            "hub_corrections",
            "Higher record versions that replaced a counted version.",
            registry=registry,
        )
        self.withdrawals = Counter(
            "hub_withdrawals",
            "Records withdrawn: their contribution retracted.",
            registry=registry,
        )
        self.undecodable = Counter(
            "hub_undecodable_messages",
            "Messages that are not a readable case event (unknown schema, corrupt bytes).",
            registry=registry,
        )
        self.batches = Counter(
            "hub_version_batches_written",
            "Batches of changed record versions written to the changelog (each one is"
            " durable before its events are acknowledged).",
            registry=registry,
        )
        self._by_kind = {
            "duplicate": self.duplicates,
            "replay": self.duplicates,
            "stale": self.stale,
            "correction": self.corrections,
            "withdrawal": self.withdrawals,
        }
        self._collector = _StateCollector(state)
        registry.register(self._collector)

    def count(self, kind: Kind) -> None:
        counter = self._by_kind.get(kind)
        if counter is not None:
            counter.inc()

    def watch_lag(self, lag: Callable[[], Mapping[str, int]]) -> None:
        """Serve consumer lag per agency topic from `lag` (called at scrape time)."""
        self._collector.lag = lag


class _StateCollector(Collector):
    """Reads the worker's state at scrape time."""

    def __init__(self, state: WorkerState) -> None:
        self._state = state
        self.lag: Callable[[], Mapping[str, int]] | None = None

    def collect(self) -> Iterator[Metric]:
        by_code, by_basis, events, multi = self._state.totals()
        family = GaugeMetricFamily(
            "hub_events_by_risk_code",
            "Case records (current version) carrying each online-risk code, in this worker's"
            " partitions.",
            labels=["risk_code"],
        )
        for code in sorted(by_code):
            family.add_metric([code], by_code[code])
        yield family
        linkage = GaugeMetricFamily(
            "hub_events_by_linkage",
            "Current case records by how their subject was pseudonymised; NONE: no linkable"
            " subject (counted, not hidden).",
            labels=["basis"],
        )
        for basis in sorted(by_basis):
            linkage.add_metric([basis], by_basis[basis])
        yield linkage
        yield GaugeMetricFamily(
            "hub_events_counted",
            "Current case records (distinct records, withdrawn ones excluded), in this worker's"
            " partitions.",
            value=events,
        )
        yield GaugeMetricFamily(
            "hub_worker_partitions",
            "Agency-topic partitions this worker owns.",
            value=len(self._state.partitions),
        )
        yield GaugeMetricFamily(
            "hub_children_known_to_multiple_agencies",
            "Children (distinct subject pseudonyms) with current records from two or more"
            " agencies, in this worker's partitions.",
            value=multi,
        )
        if self.lag is not None:
            lag = GaugeMetricFamily(
                "hub_consumer_lag",
                "Messages on each agency topic not yet read by this worker (its partitions).",
                labels=["topic"],
            )
            for topic, behind in sorted(self.lag().items()):
                lag.add_metric([topic], behind)
            yield lag
