"""Every record's current version, and each period's counts kept as versions arrive.

``streams.aggregate.true_breakdowns`` computes a period from every record: it
links subjects over the whole history and looks back over every earlier
record for the agencies that know each child. The publisher keeps the
records in a ``RecordIndex`` instead, which maintains, as each version
arrives (the old version retracted, the new one added):

* the live records that a period counts (referrals and events with an online
  component), per calendar month of ``occurred_on``;
* the linkage between subject pseudonyms (``RecordVersion.previous``): groups
  of pseudonyms that stand for one child, joined and split as the records
  that link them come and go;
* per pseudonym, its live records (any type), for ``children`` by
  ``known_to_agencies`` (the agencies holding one dated up to the period's end);
* the ``Counts`` of every period asked for (``counts``, ``breakdowns``): computed
  once from the period's records, then kept. Before a change is applied, every
  contribution it can alter is taken out of the counts it reaches, as the index
  stands: the old version's own (events, referrals, subject bases), whether each
  pseudonym either version names as subject names an online event in the
  period, and the contribution (profile, known to two or more agencies) of the
  child of every linkage group holding a pseudonym either version names. After
  it, the same contributions are counted again. A contribution is a function of
  the index's records, so the counts stay the sum of the contributions of the
  records and children they hold.

Which periods a change reaches (``_reached``, found before it is applied):
those holding the months of both versions; then, when the change links or
unlinks pseudonyms, those holding any record of the linkage groups of every
pseudonym the two versions name (a group the change splits is one of them; a
group it joins is made of two of them); or, when it only moves a child's record
to another agency, date or subject, those holding the groups' records from the
month of the earlier date on (a period ending before that date sees neither
version; one holding it holds that version's month).

A release then costs its period's cells plus the changes since the last one,
whatever the length of the history; ``tests/streams/test_index.py`` checks
that the kept counts equal ``true_breakdowns`` after any sequence of versions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from hub.periods import add_months
from hub.taxonomy import Taxonomy
from streams.aggregate import (
    Breakdowns,
    Counts,
    Profile,
    breakdowns_from,
    bump,
    child_profile,
    count_profile,
    dimensions,
    event_profile,
    known_to,
)
from streams.records import RecordVersion, same_content, supersedes
from streams.retention import expired


class Linkage:
    """Groups of pseudonyms joined by links (each link counted as often as live records
    make it), kept as the links are added and removed. A group's id (``child_of``)
    is its smallest pseudonym, as ``streams.aggregate.linked_subjects`` has it."""

    def __init__(self) -> None:
        self._links: dict[str, Counter[str]] = {}  # pseudonym -> linked pseudonym -> records
        self._root: dict[str, str] = {}  # pseudonym in a group of two or more -> its group's id
        self._members: dict[str, set[str]] = {}  # group id -> its pseudonyms (two or more)

    def child_of(self, pseudonym: str) -> str:
        """The pseudonym that stands for the child (itself when not linked)."""
        return self._root.get(pseudonym, pseudonym)

    def group(self, pseudonym: str) -> Iterable[str]:
        """Every pseudonym of the child's group, ``pseudonym`` included."""
        root = self._root.get(pseudonym)
        return (pseudonym,) if root is None else self._members[root]

    def add(self, a: str, b: str) -> None:
        if a == b:
            return
        self._links.setdefault(a, Counter())[b] += 1
        self._links.setdefault(b, Counter())[a] += 1
        ra, rb = self.child_of(a), self.child_of(b)
        if ra == rb:
            return
        # The group's id is its smallest pseudonym, so it depends on the group alone (a
        # link removed and added again leaves it as it was); the smaller group joins the
        # larger, and the members whose id changes are relabelled.
        big, small = self._members.pop(ra, {ra}), self._members.pop(rb, {rb})
        if len(big) < len(small):
            (ra, big), (rb, small) = (rb, small), (ra, big)
        big |= small
        root = min(ra, rb)
        self._members[root] = big
        for member in small if root == ra else big:
            self._root[member] = root
        self._root[root] = root  # a group of one had no entry

    def remove(self, a: str, b: str) -> None:
        if a == b:
            return
        for x, y in ((a, b), (b, a)):
            links = self._links[x]
            links[y] -= 1
            if links[y] <= 0:
                del links[y]
            if not links:
                del self._links[x]
        if b in self._links.get(a, ()):
            return  # another record keeps the link
        old = self._members.pop(self._root[a])
        for member in old:
            del self._root[member]
        part = self._reach(a)
        for piece in (part, old - part):
            if len(piece) > 1:
                root = min(piece)
                self._members[root] = piece
                for member in piece:
                    self._root[member] = root

    def _reach(self, start: str) -> set[str]:
        seen = {start}
        todo = [start]
        while todo:
            for other in self._links.get(todo.pop(), ()):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen


@dataclass
class _Tally:
    """One period's ``Counts``, kept up to date as records change."""

    first: str  # ISO dates, both included
    last: str
    cell_of: Mapping[str, str]  # risk code -> 4Cs cell
    counts: Counts
    changes: int = 0  # changes that reached it so far

    def holds(self, day: str) -> bool:
        return self.first <= day <= self.last

    def count(self, r: RecordVersion, sign: int) -> None:
        """A record's own contribution: events, referrals, subject bases."""
        counts = self.counts
        if r.event_type == "REFERRAL":
            bump(counts.referrals, (r.agency, r.online), sign)
        if r.online == "YES":
            count_profile(counts.events, event_profile(r), sign, self.cell_of)
            bump(counts.bases, r.basis, sign)

    def count_child(self, contribution: tuple[Profile, bool], sign: int) -> None:
        """A child's contribution: its profile, and whether 2+ agencies know it."""
        count_profile(self.counts.children, contribution[0], sign, self.cell_of)
        bump(self.counts.known, known_to(contribution[1]), sign)


class RecordIndex:
    """Record key -> current version (``records``), and each period's counts."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.records: dict[str, RecordVersion] = {}
        self.linkage = Linkage()
        self._months: dict[str, dict[str, RecordVersion]] = {}  # YYYY-MM -> key -> counted
        self._days: Counter[str] = Counter()  # occurred_on of the live records
        self._of: dict[str, list[RecordVersion]] = {}  # pseudonym -> its live records
        self._tallies: dict[tuple[date, date], _Tally] = {}  # the periods kept up to date
        self._by_month: dict[str, list[_Tally]] = {}  # YYYY-MM -> the tallies holding it

    def merge(self, versions: Iterable[RecordVersion], since: str = "") -> int:
        """Fold versions in (any order, any number of times); how many changed a count.
        Versions shared before `since` have passed retention (``streams.retention``):
        left out."""
        changes = 0
        for version in versions:
            if since and expired(version, since):
                continue
            held = self.records.get(version.record_key)
            if not supersedes(version, held):
                continue
            self.records[version.record_key] = version
            if held is not None and same_content(version, held):
                if held.live:  # the same counts: only the version object is replaced
                    self._replace(held, version)
                continue
            changes += 1
            self._change(held if held is not None and held.live else None, version)
        return changes

    def expire(self, since: str) -> int:
        """Remove every record whose version was shared before `since`, as if withdrawn
        and forgotten; how many."""
        gone = [r for r in self.records.values() if expired(r, since)]
        for r in gone:
            del self.records[r.record_key]
            if r.live:
                self._change(r, None)
        return len(gone)

    def _change(self, old: RecordVersion | None, version: RecordVersion | None) -> None:
        """Replace the live version `old` (None: none) by `version` (None, or not live:
        nothing counts) in the counts of every kept period."""
        new = version if version is not None and version.live else None
        if not self._tallies:  # no period's counts are kept yet
            self._apply(old, new)
            return
        # Every contribution the change can alter is taken out as it stands, the
        # change applied, and the same contributions counted again: what a child or
        # a pseudonym contributes is a function of the index's records, so the counts
        # stay the sum of the contributions of the records and children they hold.
        tallies = self._reached(old, new)
        named = _named(old) | _named(new)
        subjects = {r.subject for r in (old, new) if r is not None and r.subject is not None}
        self._contribute(tallies, old, named, subjects, -1)
        self._apply(old, new)
        self._contribute(tallies, new, named, subjects, 1)
        for tally in tallies:
            tally.changes += 1

    def first_day(self) -> date | None:
        """When the earliest live record occurred."""
        return date.fromisoformat(min(self._days)) if self._days else None

    def in_period(self, start: date, end: date) -> Iterator[RecordVersion]:
        """The live records a period counts (referrals, online events), a little more at most."""
        for month in _months(start, end):
            yield from self._months.get(month, {}).values()

    def counts(self, start: date, end: date) -> Counts:
        """The period's counts, kept up to date from now on (computed once, from its records).

        The ``Counts`` object is the index's own: read it, do not change it.
        """
        tally = self._tallies.get((start, end))
        if tally is None:
            tally = self._tallies[start, end] = self._tally(start, end)
            for month in _months(start, end):
                self._by_month.setdefault(month, []).append(tally)
        return tally.counts

    def changes(self, start: date, end: date) -> int:
        """How many changes reached the period's counts so far: equal numbers, equal counts."""
        self.counts(start, end)
        return self._tallies[start, end].changes

    def breakdowns(self, start: date, end: date, partners: Sequence[str]) -> Breakdowns:
        """``streams.aggregate.true_breakdowns`` of every record, without reading them."""
        if start > end:
            raise ValueError(f"period starts ({start}) after it ends ({end})")
        return breakdowns_from(self.counts(start, end), self.taxonomy, partners)

    def _tally(self, start: date, end: date) -> _Tally:
        tally = _Tally(
            start.isoformat(),
            end.isoformat(),
            self.taxonomy.codes,
            Counts(dimensions(), dimensions(), Counter(), Counter(), Counter(), 0),
        )
        children: set[str] = set()
        pseudonyms: set[str] = set()
        for r in self.in_period(start, end):
            if tally.holds(r.occurred_on):
                tally.count(r, 1)
                if r.online == "YES" and r.subject is not None:
                    pseudonyms.add(r.subject)
                    children.add(self.linkage.child_of(r.subject))
        tally.counts.pseudonyms = len(pseudonyms)
        for child in children:
            contribution = self._contribution(child, tally)
            if contribution is not None:
                tally.count_child(contribution, 1)
        return tally

    def _contribution(self, child: str, tally: _Tally) -> tuple[Profile, bool] | None:
        """What a child contributes to a period: None when it has no online event in it."""
        records = [
            r
            for pseudonym in self.linkage.group(child)
            for r in self._of.get(pseudonym, ())
            if r.online == "YES" and tally.holds(r.occurred_on)
        ]
        if not records:
            return None
        return child_profile(records), self._many(child, tally.last)

    def _contribute(
        self,
        tallies: list[_Tally],
        record: RecordVersion | None,
        named: set[str],
        subjects: set[str],
        sign: int,
    ) -> None:
        """Count (``sign`` 1) or take out (-1) in ``tallies``, as the index stands: the
        record's own contribution, the children of the groups of ``named``, and whether
        each pseudonym of ``subjects`` names an online event in the period."""
        children = {self.linkage.child_of(p) for p in named}
        for tally in tallies:
            if record is not None and tally.holds(record.occurred_on):
                tally.count(record, sign)
            for subject in subjects:
                if any(
                    r.online == "YES" and tally.holds(r.occurred_on)
                    for r in self._of.get(subject, ())
                ):
                    tally.counts.pseudonyms += sign
            for child in children:
                contribution = self._contribution(child, tally)
                if contribution is not None:
                    tally.count_child(contribution, sign)

    def _many(self, child: str, last: str) -> bool:
        """True when live records from two or more agencies dated up to ``last`` name the
        child (any pseudonym of its group)."""
        first = None
        for pseudonym in self.linkage.group(child):
            for r in self._of.get(pseudonym, ()):
                if r.occurred_on <= last:
                    if first is None:
                        first = r.agency
                    elif r.agency != first:
                        return True
        return False

    def _apply(self, old: RecordVersion | None, new: RecordVersion | None) -> None:
        if old is not None:
            self._retract(old)
        if new is not None:
            self._add(new)

    def _add(self, r: RecordVersion) -> None:
        self._days[r.occurred_on] += 1
        if _counted(r):
            self._months.setdefault(r.month, {})[r.record_key] = r
        if r.subject is None:
            return
        held = self._of.get(r.subject)
        if held is None:
            self._of[r.subject] = [r]
        else:
            held.append(r)
        for other in r.previous:
            self.linkage.add(r.subject, other)

    def _retract(self, r: RecordVersion) -> None:
        bump(self._days, r.occurred_on, -1)
        if _counted(r):
            bucket = self._months[r.month]
            del bucket[r.record_key]
            if not bucket:
                del self._months[r.month]
        if r.subject is None:
            return
        held = self._of[r.subject]
        held.remove(r)  # the very object added (found by identity first)
        if not held:
            del self._of[r.subject]
        for other in r.previous:
            self.linkage.remove(r.subject, other)

    def _replace(self, held: RecordVersion, version: RecordVersion) -> None:
        bucket = self._months.get(held.month)
        if bucket is not None and held.record_key in bucket:
            bucket[held.record_key] = version
        if held.subject is not None:
            records = self._of[held.subject]
            records[next(i for i, r in enumerate(records) if r is held)] = version

    def _reached(self, old: RecordVersion | None, new: RecordVersion | None) -> list[_Tally]:
        """The kept periods whose counts the change can alter, found before it is applied.

        Those holding the months of both versions; then, when the change links
        or unlinks pseudonyms, those holding any record of the groups of every
        pseudonym either version names (a group split by the change is one of
        them; a group joined by it is made of two of them); otherwise, when it
        moves a child's record to another agency, date or subject, those holding
        the records of those groups from the month of the earlier date: a period
        ending before that date sees neither version, and one holding it holds
        that version's month.
        """
        months = {r.month for r in (old, new) if r is not None}
        if _links(old) != _links(new):
            since = ""
        elif _footprint(old) == _footprint(new):
            since = None  # same child, agency and date: only the record's own periods
        else:
            day = min(r.occurred_on for r in (old, new) if r is not None and r.subject)
            since = day[:7]
        if since is not None:
            touched: set[str] = set()
            for pseudonym in _named(old) | _named(new):
                touched.update(self.linkage.group(pseudonym))
            for pseudonym in touched:
                months.update(r.month for r in self._of.get(pseudonym, ()) if r.month >= since)
        tallies: dict[int, _Tally] = {}
        for month in months:
            for tally in self._by_month.get(month, ()):
                tallies[id(tally)] = tally
        return list(tallies.values())


def _counted(r: RecordVersion) -> bool:
    """A live record some period counts: a referral, or an event with an online component."""
    return r.event_type == "REFERRAL" or r.online == "YES"


def _links(r: RecordVersion | None) -> frozenset[tuple[str, str]]:
    """The links a live record makes: (its subject, another pseudonym of the child)."""
    if r is None or r.subject is None:
        return frozenset()
    return frozenset((r.subject, other) for other in r.previous)


def _footprint(r: RecordVersion | None) -> tuple[str, str, str] | None:
    """What ``known_to_agencies`` sees of a live record: its subject, agency and date."""
    return None if r is None or r.subject is None else (r.subject, r.agency, r.occurred_on)


def _named(r: RecordVersion | None) -> set[str]:
    if r is None or r.subject is None:
        return set()
    return {r.subject, *r.previous}


def _months(start: date, end: date) -> Iterator[str]:
    """YYYY-MM of every calendar month ``start..end`` touches."""
    month = date(start.year, start.month, 1)
    while month <= end:
        yield month.isoformat()[:7]
        month = add_months(month, 1)
