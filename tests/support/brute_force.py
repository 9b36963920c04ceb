"""An attacker who knows the disclosure algorithm and tries every small true table.

The interval attacker in ``tests/hub/test_disclosure.py`` reads one published
breakdown and propagates what each number can hide. This one also uses the
algorithm: it runs the protection (a black box here: ``protect_breakdown`` or
any function with its signature, called only to see what a true table
publishes) on every small true table, groups the tables by what a reader would
see, and asks of each suppressed cell what every table that publishes the same
says about it. A pattern of suppressions that only small counts produce gives
those counts away even when the published numbers alone do not.

**What a reader sees.** For a true table ``(c0, .., c(n-1))``: the published
cell counts (``None`` for a suppressed cell) of ``protect({"c0": c0, ..},
rule, total=sum)``, and the published total. The hub publishes a measure's
total as its own one-cell breakdown, so the total seen is the only cell of
``protect({"all": sum}, rule)`` (``None`` when withheld). With
``true_total_known`` the reader knows the true total exactly instead, whenever
it is published at all (the audit's worst case: another table may give it
away); a withheld total stays unknown.

**Findings.** For each publication and each of its suppressed cells:
``SMALL`` when every table with that publication has the cell in
``1..threshold``; ``PINNED`` when every such table has the same value in it
(any value, 0 included, which only a withheld breakdown hides). The suppressed
cells' sum is checked for ``SMALL`` too when the total is seen (a withheld
total is in ``1..threshold`` by construction, known small by design).

**Completeness.** ``sweep`` enumerates every table of ``n`` cells whose sum is
at most ``max_total``. That is every table with a given publication as long as
none of them has a larger sum: a cell is never larger than its table's sum, so
no other bound is needed. A group is judged only when it is complete:

* with the true total known, every group (its true total is at most
  ``max_total`` by construction);
* with the published total, when no true total above ``max_total`` is
  published as the same total. Above the threshold the published total is the
  true one rounded: it never decreases as the true total grows, is never
  withheld, and is never below the 0 shown for a true 0. So a total shown
  both for a true total at most ``max_total`` and for one above
  ``max_total + 1`` is also shown for ``max_total + 1``: the totals shown for
  ``max_total + 1`` are exactly the ones whose groups may be incomplete. The
  ordering is checked through the black box over ``threshold + 1 ..
  max_total + 1`` (beyond that it is the rounding the attacker knows), and
  ``max_total`` must be above the threshold, or the sweep raises.

``consistent_tables`` answers the same question for one publication with
larger numbers: it enumerates the tables whose published cells could show what
was published on their own (a published cell is its true count rounded) and
whose total matches, and keeps those the black box publishes the same way; a
wrong guess about rounding could only miss tables, never add one.

``cover`` goes the other way, for tables of any size: it tries the few tables
the argument in ``hub/disclosure.py`` builds for one suppressed cell (the same
true total, the same publication, that cell above the threshold or 0). Finding
one shows the cell is not given away; not finding one proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise, product

from hub.disclosure import DisclosureRule, ProtectedBreakdown, protect_breakdown

Table = tuple[int, ...]
Cells = tuple[int | None, ...]
#: What a reader sees: the published cells, and the published (or known true) total.
Publication = tuple[Cells, int | None]
ProtectFunction = Callable[..., ProtectedBreakdown]

#: ``Finding.cell`` for the suppressed cells' sum.
SUM = -1
#: Every table with the publication has the cell (or the sum) in ``1..threshold``.
SMALL = "provably small"
#: Every table with the publication has the same value in the cell.
PINNED = "pinned"


class BlackBox:
    """The protection under attack, with what it publishes for each table remembered."""

    def __init__(self, rule: DisclosureRule, protect: ProtectFunction = protect_breakdown) -> None:
        self.rule = rule
        self._protect = protect
        self._cells: dict[Table, Cells] = {}
        self._alone: dict[int, int | None] = {}

    def cells(self, table: Table) -> Cells:
        """The published cells of ``table`` (``None`` where suppressed)."""
        shown = self._cells.get(table)
        if shown is None:
            counts = {f"c{i}": n for i, n in enumerate(table)}
            result = self._protect(counts, self.rule, total=sum(table))
            shown = self._cells[table] = tuple(cell.count for cell in result.cells)
        return shown

    def alone(self, count: int) -> int | None:
        """How a one-cell breakdown of ``count`` is published (the hub's totals)."""
        if count not in self._alone:
            self._alone[count] = self._protect({"all": count}, self.rule).cells[0].count
        return self._alone[count]


@dataclass(frozen=True)
class Finding:
    """A suppressed cell (its position, or ``SUM``) that every table with
    ``publication`` holds in ``low..high``; ``example`` is one of those tables."""

    publication: Publication
    cell: int
    low: int
    high: int
    kind: str
    example: Table


@dataclass
class Report:
    """One sweep: what was found, and how much was looked at."""

    findings: list[Finding] = field(default_factory=list)
    tables: int = 0
    groups: int = 0  # complete groups with at least one suppressed cell
    suppressed: int = 0  # (group, suppressed cell) pairs judged


@dataclass
class _Group:
    example: Table
    lows: list[int]
    highs: list[int]

    def add(self, values: Sequence[int]) -> None:
        for i, value in enumerate(values):
            self.lows[i] = min(self.lows[i], value)
            self.highs[i] = max(self.highs[i], value)


def tables(cells: int, max_total: int) -> Iterator[Table]:
    """Every table of ``cells`` non-negative counts summing to at most ``max_total``."""
    if cells == 1:
        yield from ((n,) for n in range(max_total + 1))
        return
    for first in range(max_total + 1):
        for rest in tables(cells - 1, max_total - first):
            yield (first, *rest)


def tables_summing_to(cells: int, total: int) -> Iterator[Table]:
    """Every table of ``cells`` non-negative counts summing to exactly ``total``."""
    if total < 0 or (cells == 0 and total > 0):
        return
    if cells <= 1:
        yield (total,) * cells
        return
    for first in range(total + 1):
        for rest in tables_summing_to(cells - 1, total - first):
            yield (first, *rest)


class BruteForce:
    """Groups every small table by its publication and reports what each group gives away."""

    def __init__(self, box: BlackBox, *, true_total_known: bool = False) -> None:
        self.box = box
        self.true_total_known = true_total_known

    def total_seen(self, total: int) -> int | None:
        """The total a reader knows: the published one, or the true one when published."""
        shown = self.box.alone(total)
        return total if self.true_total_known and shown is not None else shown

    def publication(self, table: Table) -> Publication:
        return self.box.cells(table), self.total_seen(sum(table))

    def sweep(self, cells: int, max_total: int) -> Report:
        """Every table of ``cells`` cells up to ``max_total``, judged group by group."""
        complete = self.complete_totals(max_total)
        groups: dict[Publication, _Group] = {}
        report = Report()
        for table in tables(cells, max_total):
            report.tables += 1
            seen = self.total_seen(sum(table))
            if seen not in complete:
                continue
            publication = (self.box.cells(table), seen)
            hidden = _hidden_values(table, publication)
            if not hidden:
                continue
            group = groups.get(publication)
            if group is None:
                groups[publication] = _Group(table, list(hidden), list(hidden))
            else:
                group.add(hidden)
        for publication, group in groups.items():
            report.groups += 1
            report.suppressed += publication[0].count(None)
            report.findings.extend(self._judge(publication, group))
        return report

    def complete_totals(self, max_total: int) -> set[int | None]:
        """The totals a reader may see whose every true total is at most ``max_total``
        (the module docstring); raises where that argument does not apply."""
        threshold = self.box.rule.suppress_at_or_below
        if max_total <= threshold:
            raise ValueError(f"the sweep must reach above the threshold ({threshold})")
        seen = [self.total_seen(total) for total in range(max_total + 2)]
        above = seen[threshold + 1 :]
        if not all(a is not None and b is not None and a <= b for a, b in pairwise(above)):
            raise AssertionError(f"totals above {threshold} are not published in order: {above}")
        return set(seen) - {seen[max_total + 1]}

    def _judge(self, publication: Publication, group: _Group) -> Iterator[Finding]:
        threshold = self.box.rule.suppress_at_or_below
        hidden = [i for i, count in enumerate(publication[0]) if count is None]
        positions = [*hidden, SUM] if publication[1] is not None else hidden
        for position, low, high in zip(positions, group.lows, group.highs, strict=True):
            if 1 <= low and high <= threshold:
                yield Finding(publication, position, low, high, SMALL, group.example)
            if low == high and position != SUM:
                yield Finding(publication, position, low, high, PINNED, group.example)


def _hidden_values(table: Table, publication: Publication) -> list[int]:
    """The suppressed cells' true values, then their sum when the total is seen."""
    values = [n for n, count in zip(table, publication[0], strict=True) if count is None]
    return [*values, sum(values)] if publication[1] is not None and values else values


def consistent_tables(brute: BruteForce, publication: Publication, max_total: int) -> list[Table]:
    """Every table with ``publication``, for a publication whose true totals are all at
    most ``max_total`` (raises otherwise: the answer would be incomplete)."""
    shown_cells, seen = publication
    if seen not in brute.complete_totals(max_total):
        raise ValueError(f"a true total above {max_total} could be behind {seen}")
    totals = [t for t in range(max_total + 1) if brute.total_seen(t) == seen]
    hidden = shown_cells.count(None)
    windows = [
        [n for n in range(max_total + 1) if brute.box.alone(n) == count]
        for count in shown_cells
        if count is not None
    ]
    found = []
    for shown in product(*windows):
        for total in totals:
            for rest in tables_summing_to(hidden, total - sum(shown)):
                table = _merge(shown_cells, shown, rest)
                if brute.box.cells(table) == shown_cells:
                    found.append(table)
    return found


def _merge(shown_cells: Cells, shown: Sequence[int], hidden: Sequence[int]) -> Table:
    values_shown, values_hidden = iter(shown), iter(hidden)
    return tuple(
        next(values_hidden) if count is None else next(values_shown) for count in shown_cells
    )


def cover(brute: BruteForce, table: Table, cell: int) -> Table | None:
    """A table with ``table``'s true total that publishes the same with ``cell`` above
    the threshold or 0, or None when none of those tried does.

    Tried, for tables of any size: ``table`` itself; ``cell``'s count swapped with
    another cell's; ``cell``'s count moved onto another cell, or spread 1 at a time
    over the other suppressed cells, or over all the others; and the suppressed
    cells' sum gathered in ``cell`` with 1 left in each other suppressed cell.
    """
    threshold = brute.box.rule.suppress_at_or_below
    publication = brute.publication(table)
    hidden = [i for i, count in enumerate(publication[0]) if count is None]
    tried: list[list[int]] = [list(table)]
    for other in range(len(table)):
        if other != cell:
            swapped, moved = list(table), list(table)
            swapped[cell], swapped[other] = table[other], table[cell]
            moved[cell], moved[other] = 0, table[other] + table[cell]
            tried += [swapped, moved]
    gathered = list(table)
    for other in hidden:
        gathered[other] = 1
    gathered[cell] = sum(table[i] for i in hidden) - (len(hidden) - 1)
    tried.append(gathered)
    for others in ([i for i in hidden if i != cell], [i for i in range(len(table)) if i != cell]):
        if others:
            spread = list(table)
            spread[cell] = 0
            for step in range(table[cell]):
                spread[others[step % len(others)]] += 1
            tried.append(spread)
    for candidate in map(tuple, tried):
        if not 1 <= candidate[cell] <= threshold and min(candidate) >= 0:
            if brute.publication(candidate) == publication:
                return candidate
    return None
