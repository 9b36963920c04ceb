"""Every Prometheus metric of the stream worker, created on one injected registry.

Labels are bounded: a risk code (the taxonomy's fixed set), never a
pseudonym, case id or event id.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.counting import RiskCounts


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry, counts: RiskCounts) -> None:
        self.registry = registry
        self.consumed = Counter(
            "hub_events_consumed",
            "Case-event messages read by this worker process.",
            registry=registry,
        )
        self.duplicates = Counter(
            "hub_duplicates_dropped",
            "Messages dropped because their record version was already counted (replays, retries).",
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
        registry.register(_CountsCollector(counts))


class _CountsCollector(Collector):
    """Reads the current counts at scrape time."""

    def __init__(self, counts: RiskCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        by_code, by_basis, events = self._counts.snapshot()
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
            "Distinct case events by how their subject was pseudonymised; NONE: no linkable"
            " subject (counted, not hidden).",
            labels=["basis"],
        )
        for basis in sorted(by_basis):
            linkage.add_metric([basis], by_basis[basis])
        yield linkage
        yield GaugeMetricFamily(
            "hub_events_counted",
            "Distinct case events counted, in this worker's partitions.",
            value=events,
        )
        yield GaugeMetricFamily(
            "hub_worker_partitions",
            "Agency-topic partitions this worker owns.",
            value=len(self._counts.events),
        )
