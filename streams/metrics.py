"""Every Prometheus metric of the stream worker, created on one injected registry.

Labels are bounded: a risk code (the taxonomy's fixed set), never a
pseudonym, case id or event id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.checks import REASONS, Reason
from streams.records import Kind
from streams.state import WorkerState

#: Lag per agency topic: (this worker's partitions, the whole consumer group's),
#: and the deferred events waiting for `hub streams replay-deferred`.
LagReport = tuple[Mapping[str, int] | None, Mapping[str, int], int]


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
        self.expired = Counter(
            "hub_versions_expired",
            "Record versions past the agreement's retention (case_events_days from the day"
            " they were shared): arriving already past it, never counted, or removed from the"
            " state and the changelog when it passed.",
            registry=registry,
        )
        self.undecodable = Counter(
            "hub_undecodable_messages",
            "Messages not counted as a case event for any reason but deduplication: every"
            " rejected message (hub_events_rejected_total) and every deferred one"
            " (hub_events_deferred_total).",
            registry=registry,
        )
        self.rejected = Counter(
            "hub_events_rejected",
            "Messages refused and acknowledged, by reason: tombstone (null value),"
            " undecodable, implausible (a date or version no real record has), wrong_agency"
            " (the body names another agency than its topic). Never counted as cases.",
            ["reason"],
            registry=registry,
        )
        for reason in REASONS:
            self.rejected.labels(reason)
        self.deferred = Counter(
            "hub_events_deferred",
            "Events written with a schema this worker does not ship (a newer one), copied to"
            " the deferred topic for `hub streams replay-deferred`, not counted yet.",
            registry=registry,
        )
        self.batches = Counter(
            "hub_version_batches_written",
            "Batches of changed record versions written to the changelog (each one is"
            " durable before its events are acknowledged).",
            registry=registry,
        )
        self.snapshots = Counter(
            "hub_changelog_snapshots_written",
            "Snapshots of a partition's records written to the changelog, each replacing"
            " the batches and snapshot before it (compaction then deletes those).",
            registry=registry,
        )
        self.rereads = Counter(
            "hub_worker_rereads",
            "Times an event of a partition came before one of its earlier offsets had been"
            " applied, and the partition was read again from that offset (streams.consumer"
            " .InOrder): nothing was lost, but Faust had skipped an event.",
            registry=registry,
        )
        self._by_kind = {
            "duplicate": self.duplicates,
            "replay": self.duplicates,
            "stale": self.stale,
            "correction": self.corrections,
            "withdrawal": self.withdrawals,
            "expired": self.expired,
        }
        self._collector = _StateCollector(state)
        registry.register(self._collector)

    def count(self, kind: Kind) -> None:
        counter = self._by_kind.get(kind)
        if counter is not None:
            counter.inc()

    def reject(self, reason: Reason) -> None:
        self.rejected.labels(reason).inc()
        self.undecodable.inc()

    def defer(self) -> None:
        self.deferred.inc()
        self.undecodable.inc()

    def watch_lag(self, lag: Callable[[], LagReport | None]) -> None:
        """Serve consumer lag from `lag` (called at scrape time; None: broker unreachable)."""
        self._collector.lag = lag

    def watch_recovery(self, recovering: Callable[[], bool]) -> None:
        """While `recovering()`, the live counts are incomplete and are not served."""
        self._collector.recovering = recovering


class _StateCollector(Collector):
    """Reads the worker's state at scrape time."""

    def __init__(self, state: WorkerState) -> None:
        self._state = state
        self.lag: Callable[[], LagReport | None] | None = None
        self.recovering: Callable[[], bool] = lambda: False

    def collect(self) -> Iterator[Metric]:
        recovering = self.recovering()
        yield GaugeMetricFamily(
            "hub_worker_recovering",
            "1 while the worker reads its partitions' state back from the changelog (at start"
            " and after each rebalance); the live counts are then not served, rather than"
            " served incomplete.",
            value=int(recovering),
        )
        yield GaugeMetricFamily(
            "hub_worker_partitions",
            "Agency-topic partitions this worker owns.",
            value=len(self._state.partitions),
        )
        yield from self._lag()
        if recovering:
            return
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
            "hub_children_known_to_multiple_agencies",
            "Children (distinct subject pseudonyms) with current records from two or more"
            " agencies, in this worker's partitions.",
            value=multi,
        )

    def _lag(self) -> Iterator[Metric]:
        report = self.lag() if self.lag is not None else None
        if report is None:
            return
        mine, group, deferred = report
        if mine is not None:
            lag = GaugeMetricFamily(
                "hub_consumer_lag",
                "Messages on each agency topic not yet processed in this worker's partitions:"
                " from the group's committed offsets (or this worker's position, when ahead);"
                " absent until the worker has partitions.",
                labels=["topic"],
            )
            for topic, behind in sorted(mine.items()):
                lag.add_metric([topic], behind)
            yield lag
        whole = GaugeMetricFamily(
            "hub_consumer_group_lag",
            "Messages on each agency topic after the workers' group's committed offsets, all"
            " partitions (every worker reports the same; take max, not sum).",
            labels=["topic"],
        )
        for topic, behind in sorted(group.items()):
            whole.add_metric([topic], behind)
        yield whole
        yield GaugeMetricFamily(
            "hub_events_deferred_waiting",
            "Events on the deferred topic not yet replayed (`hub streams replay-deferred`):"
            " written with a schema newer than the worker's.",
            value=deferred,
        )
