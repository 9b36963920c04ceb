"""What a stream worker holds for each agency-topic partition it owns.

Per partition (agency topics share one partition count and are keyed by
subject pseudonym, so a partition holds every event of its children):

* ``records``: record key -> its current version (``streams.records``), the dedup
  state, in memory or on the worker's local disk (``streams.store``). Replays
  and older versions are dropped; a higher version retracts the old
  contribution and adds the new; a withdrawal retracts and stays as a
  tombstone so an older version cannot come back.
* records whose version has passed the agreement's retention are removed
  (``expire``) and never merged back (``streams.retention``).
* the live view derived from it: current records per risk code and per linkage
  basis, and per subject the agencies that know the child, giving the number
  of children known to two or more agencies.

Nothing here is durable by itself. The worker writes each batch of changed
versions to its changelog topic before it acknowledges the batch's events;
after a crash or rebalance the new owner merges every batch of the partition
back in (``merge`` is idempotent and order-free), then re-reads the events
that were not acknowledged. See ``streams.app``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.records import Kind, RecordVersion, classify, supersedes
from streams.retention import expired
from streams.store import Disk, MemoryRecords, Records


@dataclass
class PartitionState:
    records: Records = field(default_factory=MemoryRecords)
    by_code: Counter[str] = field(default_factory=Counter)
    by_basis: Counter[str] = field(default_factory=Counter)
    live: int = 0
    agencies_of: dict[str, Counter[str]] = field(default_factory=dict)
    multi_agency: int = 0  # subjects with live records from two or more agencies

    def apply(self, version: RecordVersion) -> Kind:
        """Apply one event's version; what it did."""
        held = self.records.get(version.record_key)
        kind = classify(version, held)
        if kind in ("duplicate", "stale"):
            return kind
        self._replace(held, version, kind)
        self.records[version.record_key] = version
        return kind

    def _replace(self, held: RecordVersion | None, version: RecordVersion, kind: Kind) -> None:
        """Move the counts from `held` to `version`, which supersedes it."""
        if kind == "replay":  # the same content under a higher version: counted already
            return
        if held is not None and held.live:
            self._count(held, -1)
        if version.live:
            self._count(version, 1)

    def merge(self, versions: Iterable[RecordVersion], since: str = "") -> int:
        """Fold versions from the changelog in; any order, any number of times. Versions
        shared before `since` have passed retention (``streams.retention``): left out;
        how many were.

        The highest version of each record among `versions` is found first; the
        records' held versions are then read, and the ones superseded written, in one
        step each. The same as applying them one by one: the counts depend only on
        the version held before and the one held after."""
        left = 0
        newest: dict[str, RecordVersion] = {}
        for version in versions:
            if since and expired(version, since):
                left += 1
            elif supersedes(version, newest.get(version.record_key)):
                newest[version.record_key] = version
        if not newest:
            return left
        changed: dict[str, RecordVersion] = {}
        for version, held in zip(newest.values(), self.records.get_many(list(newest)), strict=True):
            if supersedes(version, held):
                self._replace(held, version, classify(version, held))
                changed[version.record_key] = version
        self.records.put_many(changed)
        return left

    def expire(self, since: str) -> int:
        """Remove every record whose version was shared before `since`; how many."""
        gone = [v for v in self.records.values() if expired(v, since)]
        for version in gone:
            if version.live:
                self._count(version, -1)
            del self.records[version.record_key]
        return len(gone)

    def _count(self, version: RecordVersion, sign: int) -> None:
        self.live += sign
        self.by_basis[version.basis] += sign
        for code in version.codes:
            self.by_code[code] += sign
        if version.subject is None:
            return
        agencies = self.agencies_of.get(version.subject)
        if agencies is None:
            agencies = self.agencies_of[version.subject] = Counter()
        before = len(agencies)
        agencies[version.agency] += sign
        if agencies[version.agency] <= 0:
            del agencies[version.agency]
        after = len(agencies)
        if not agencies:
            del self.agencies_of[version.subject]
        self.multi_agency += (after >= 2) - (before >= 2)


@dataclass
class WorkerState:
    """Every owned partition's state; read by the metrics thread at scrape time."""

    partitions: dict[int, PartitionState] = field(default_factory=dict)
    #: Where the records are kept (``HUB_STORE=rocksdb://``); None: in memory.
    disk: Disk | None = None
    #: Versions shared before this day (ISO) have passed retention (``streams.retention``);
    #: empty: none yet worked out.
    since: str = ""

    def partition(self, number: int) -> PartitionState:
        state = self.partitions.get(number)
        if state is None:
            records = MemoryRecords() if self.disk is None else self.disk.partition(number)
            state = self.partitions[number] = PartitionState(records)
        return state

    def keep_only(self, numbers: set[int]) -> None:
        for number in list(self.partitions):
            if number not in numbers:
                del self.partitions[number]
                if self.disk is not None:
                    self.disk.drop(number)

    def totals(self) -> tuple[dict[str, int], dict[str, int], int, int]:
        """(records per risk code, per linkage basis, live records, children known to 2+)."""
        by_code: Counter[str] = Counter()
        by_basis: Counter[str] = Counter()
        live = multi = 0
        for state in list(self.partitions.values()):
            by_code.update(state.by_code)
            by_basis.update(state.by_basis)
            live += state.live
            multi += state.multi_agency
        return (
            {k: v for k, v in by_code.items() if v},
            {k: v for k, v in by_basis.items() if v},
            live,
            multi,
        )
