"""Counting distinct case events per risk code, exactly, across crashes and replays.

The only durable state is the dedup table (a Faust table backed by a
changelog topic): event id -> the contribution that event made (its source
partition and risk codes). One table write per new event is the whole
update, so there is no moment when "seen" and "counted" can disagree. The
in-memory counts are a view of that table, rebuilt from it after every
rebalance or recovery for the partitions this worker owns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RiskCounts:
    """Distinct events per risk code, per partition, for the partitions this worker owns."""

    by_partition: dict[int, Counter[str]] = field(default_factory=dict)
    events: dict[int, int] = field(default_factory=dict)
    linkage: dict[int, Counter[str]] = field(default_factory=dict)

    def add(self, partition: int, codes: Iterable[str], basis: str) -> None:
        self.by_partition.setdefault(partition, Counter()).update(codes)
        self.linkage.setdefault(partition, Counter())[basis] += 1
        self.events[partition] = self.events.get(partition, 0) + 1

    def rebuild(self, contributions: Iterable[Mapping[str, Any]], partitions: set[int]) -> None:
        """Recompute from the dedup table's values, keeping only `partitions`."""
        by_partition: dict[int, Counter[str]] = {p: Counter() for p in partitions}
        linkage: dict[int, Counter[str]] = {p: Counter() for p in partitions}
        events = dict.fromkeys(partitions, 0)
        for contribution in contributions:
            p = int(contribution["p"])
            if p in partitions:
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


def contribution(partition: int, codes: Iterable[str], basis: str) -> dict[str, Any]:
    """The dedup table value for a newly seen event."""
    return {"p": partition, "codes": sorted(codes), "basis": basis}
