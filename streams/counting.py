"""Counting case records per risk code, exactly, across crashes, replays and corrections.

The only durable state is the record table (a Faust table backed by a
changelog topic): record key -> the current version's contribution (its
version, source partition, risk codes and linkage basis, or a tombstone once
withdrawn). Each event is one table write, so there is no moment when
"seen" and "counted" can disagree:

* the same version again (a replay, a retry, a re-export) changes nothing;
* a lower version than the one held (a late, superseded event) changes nothing;
* a higher version retracts the old contribution and adds the new one;
* a withdrawal retracts it and leaves a tombstone, so a late replay of an
  older version cannot bring it back.

The in-memory counts are a view of that table, rebuilt from it after every
rebalance or recovery for the partitions this worker owns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class RiskCounts:
    """Current case records per risk code, per partition, for the partitions this worker owns."""

    by_partition: dict[int, Counter[str]] = field(default_factory=dict)
    events: dict[int, int] = field(default_factory=dict)
    linkage: dict[int, Counter[str]] = field(default_factory=dict)

    def add(self, partition: int, codes: Iterable[str], basis: str) -> None:
        self.by_partition.setdefault(partition, Counter()).update(codes)
        self.linkage.setdefault(partition, Counter())[basis] += 1
        self.events[partition] = self.events.get(partition, 0) + 1

    def remove(self, partition: int, codes: Iterable[str], basis: str) -> None:
        self.by_partition.setdefault(partition, Counter()).subtract(codes)
        self.linkage.setdefault(partition, Counter())[basis] -= 1
        self.events[partition] = self.events.get(partition, 0) - 1

    def rebuild(self, contributions: Iterable[Mapping[str, Any]], partitions: set[int]) -> None:
        """Recompute from the dedup table's values, keeping only `partitions`."""
        by_partition: dict[int, Counter[str]] = {p: Counter() for p in partitions}
        linkage: dict[int, Counter[str]] = {p: Counter() for p in partitions}
        events = dict.fromkeys(partitions, 0)
        for contribution in contributions:
            p = int(contribution["p"])
            if p in partitions and contribution.get("live", True):
                by_partition[p].update(contribution["codes"])
                linkage[p][contribution["basis"]] += 1
                events[p] += 1
        self.by_partition, self.linkage, self.events = by_partition, linkage, events

    def snapshot(self) -> tuple[dict[str, int], dict[str, int], int]:
        """(events per risk code, events per linkage basis, distinct events), owned partitions."""
        return (
            _total(self.by_partition.values()),
            _total(self.linkage.values()),
            sum(list(self.events.values())),
        )


def _total(counters: Iterable[Counter[str]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counts in list(counters):
        total.update(counts)
    return dict(total)


def linkage_basis(record: Mapping[str, Any]) -> str:
    """How the event's subject was pseudonymised; NONE when it has no linkable subject."""
    subject = record.get("subject")
    return str(subject["basis"]) if subject else "NONE"


def contribution(
    partition: int, codes: Iterable[str], basis: str, version: int = 1, live: bool = True
) -> dict[str, Any]:
    """The record table value for a record's current version."""
    return {"p": partition, "codes": sorted(codes), "basis": basis, "v": version, "live": live}


Kind = Literal["new", "duplicate", "stale", "correction", "withdrawal"]


@dataclass(frozen=True)
class Change:
    """What one event does to the record table and the counts."""

    kind: Kind
    store: dict[str, Any] | None = None
    retract: Mapping[str, Any] | None = None
    add: Mapping[str, Any] | None = None


def apply_event(
    previous: Mapping[str, Any] | None, partition: int, record: Mapping[str, Any]
) -> Change:
    """The change an event makes, given what the table holds for its record."""
    version = int(record["record_version"])
    if previous is not None:
        held = int(previous.get("v", 1))
        if version == held:
            return Change("duplicate")
        if version < held:
            return Change("stale")
    withdrawn = record["event_type"] == "WITHDRAWN"
    current = contribution(
        partition, record["online_risks"], linkage_basis(record), version, live=not withdrawn
    )
    retract = previous if previous is not None and previous.get("live", True) else None
    if withdrawn:
        return Change("withdrawal", current, retract, None)
    return Change("new" if previous is None else "correction", current, retract, current)
