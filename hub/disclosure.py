"""Statistical disclosure control for one published breakdown (invariant 5).

Pure functions: no Kafka, no I/O. The publisher hands in the true counts of one
breakdown (e.g. events per risk code for one period) and gets back what may be
published: each cell rounded or suppressed, and a total recomputed from the
published cells only.

The rule (``DisclosureRule``, from the agreement's ``disclosure`` section):

* **Primary suppression.** A count in ``1..suppress_at_or_below`` is withheld.
* **Rounding.** Every other count is rounded to the nearest ``round_to``,
  halves up (12 -> 10, 13 -> 15 with the default 5); one that would round
  into ``1..threshold`` goes up to the first multiple above it instead.
* **Zeros.** A true 0 is published as 0: it says nothing about any child, and
  hiding it would also hide "no cases", which the board needs to see. So a
  suppressed cell is known to be non-zero, and the audit below assumes so
  (except in a withheld breakdown, where zeros are hidden too).
* **Totals.** The published total is the sum of the published (rounded,
  unsuppressed) cells, never the true total, so it adds nothing an analyst could
  subtract from. ``total_incomplete`` says when suppressed cells are left out.
* **Small totals.** When the true total itself is in ``1..threshold`` the
  whole breakdown is withheld: the total and every cell, zeros included (a
  published 0 next to a small total says "all of these few children had X").
* **Secondary suppression.** We assume the worst case: the reader knows the
  *true* total exactly (another table may publish it, or the same population
  split another way). Knowing it, the suppressed cells' combined value is the
  true total minus the published cells, fuzzed only by their rounding. While
  exactly one cell is suppressed (it is the total less the others, and the
  rounding noise that hides it may be narrowed by other tables), or while an
  attacker could pin a suppressed cell, or their sum, into ``1..threshold`` or
  pin a suppressed cell to a single value (see ``_derivable``), the next
  smallest unsuppressed non-zero cell is suppressed too (smallest first: it
  costs the board the least information; ties by value label, so the result
  is deterministic). Zeros are never chosen: hiding a 0 adds nothing to the
  suppressed sum, so it cannot lift it above the threshold. If no candidate
  is left, the whole breakdown is withheld, zeros included, so no hidden cell
  is known to be non-zero.

Limits. The audit reads the published counts, not the PRIMARY / SECONDARY
labels: a reader who sees that a cell is PRIMARY already knows it is in
``1..threshold``, and one who also sees a SECONDARY neighbour (so above the
threshold) can sometimes narrow the pair further (1 and 8, no rounding, true
total 9 known: the PRIMARY cell is 1). Show readers one "suppressed" marker;
keep the split for the audit trail. Two-way tables are not handled here yet:
protect each published margin as its own breakdown, and do not publish the
inner cells of a cross-tabulation until a table audit (row and column margins
together) exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Suppression(StrEnum):
    """Why a cell is withheld: kept for the audit trail, never published.

    A published "primary" marker alone would tell a reader the value is in
    1..threshold, so the trend snapshot carries only `suppressed`.
    """

    NONE = "NONE"
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


class DisclosureRule(BaseModel):
    """The agreement's disclosure rule; the defaults are the partnership's standard."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suppress_at_or_below: int = Field(default=7, ge=0)
    round_to: int = Field(default=5, ge=1)
    secondary_suppression: bool = True

    def is_small(self, count: int) -> bool:
        """True for a count that must never be published: ``1..suppress_at_or_below``."""
        return 1 <= count <= self.suppress_at_or_below

    def round(self, count: int) -> int:
        """Round to the nearest ``round_to``, halves up (Python's ``round`` goes to even).

        A count above the threshold that would round into ``1..threshold`` (9 to
        the nearest 4 is 8, with a threshold of 8) goes up to the first multiple
        above the threshold instead: a published small number reads as a small count.
        """
        step = self.round_to
        rounded = step * ((2 * count + step) // (2 * step))
        return self._first_safe_multiple() if self.is_small(rounded) else rounded

    def _first_safe_multiple(self) -> int:
        return self.round_to * (self.suppress_at_or_below // self.round_to + 1)

    def possible_true_counts(self, published: int) -> tuple[int, int]:
        """The inclusive range of true counts an unsuppressed cell published as ``published``
        can hide, knowing this rule (rounding window minus the suppressed band)."""
        step, threshold = self.round_to, self.suppress_at_or_below
        low, high = max(0, published - step // 2), published + (step + 1) // 2 - 1
        if published == 0:
            # 0 is exact, or a count above the threshold that rounded down to 0.
            return (0, high if high > threshold else 0)
        if published == self._first_safe_multiple() and step <= threshold:
            # Also every count above the threshold that rounded into the band.
            return (threshold + 1, high)
        return (max(low, threshold + 1), high)


@dataclass(frozen=True)
class ProtectedCell:
    """One cell as it may be published: ``count`` is None when suppressed."""

    value: str
    count: int | None
    suppression: Suppression


@dataclass(frozen=True)
class ProtectedBreakdown:
    """A breakdown ready to publish.

    ``total`` is the sum of the published cells (None when the breakdown is
    withheld); ``total_incomplete`` is True when suppressed cells are left out
    of it, so a reader never mistakes it for the true total.
    """

    cells: tuple[ProtectedCell, ...]
    total: int | None
    total_suppression: Suppression
    total_incomplete: bool

    def counts(self) -> dict[str, int | None]:
        return {cell.value: cell.count for cell in self.cells}


def protect_breakdown(
    counts: Mapping[str, int], rule: DisclosureRule | None = None, *, total: int | None = None
) -> ProtectedBreakdown:
    """Apply ``rule`` to one additive breakdown (value -> true count).

    ``total`` is the breakdown's true total; it must equal the sum of the cells
    (a non-additive dimension such as multi-valued risk codes needs its own
    protection of the total). Cells keep the order of ``counts``.
    """
    if rule is None:
        rule = DisclosureRule()
    if any(count < 0 for count in counts.values()):
        raise ValueError("disclosure control needs counts of 0 or more")
    true_total = sum(counts.values())
    if total is not None and total != true_total:
        raise ValueError(
            f"breakdown total {total} is not the sum of its cells ({true_total}); "
            "only additive breakdowns can be protected"
        )
    if rule.is_small(true_total):
        return _withheld(counts, Suppression.PRIMARY)
    suppressed = {value: Suppression.PRIMARY for value, n in counts.items() if rule.is_small(n)}
    if rule.secondary_suppression:
        candidates = sorted(
            (n, value) for value, n in counts.items() if n > 0 and value not in suppressed
        )
        # A lone hidden cell is the total less the others: always give it company,
        # even when rounding noise alone would hide it (another table may narrow it).
        while len(suppressed) == 1 or _derivable(counts, suppressed.keys(), rule):
            if not candidates:
                # Every non-zero cell is hidden and still derivable: hide the zeros
                # too, so no hidden cell is known to be non-zero.
                return _withheld(counts, Suppression.SECONDARY)
            suppressed[candidates.pop(0)[1]] = Suppression.SECONDARY
    cells = tuple(
        ProtectedCell(value, None, suppressed[value])
        if value in suppressed
        else ProtectedCell(value, rule.round(n), Suppression.NONE)
        for value, n in counts.items()
    )
    published_total = sum(cell.count for cell in cells if cell.count is not None)
    return ProtectedBreakdown(cells, published_total, Suppression.NONE, bool(suppressed))


def suppressed_sum_range(
    published: Mapping[str, int | None], true_total: int, rule: DisclosureRule
) -> tuple[int, int]:
    """What a reader who knows the true total can derive about the suppressed cells' sum.

    Each published cell hides a true count in ``rule.possible_true_counts``;
    each suppressed cell is non-zero (zeros are published). Returns the
    inclusive range of the suppressed cells' combined true count.
    """
    low = high = 0
    for count in published.values():
        if count is not None:
            cell_low, cell_high = rule.possible_true_counts(count)
            low, high = low + cell_low, high + cell_high
    hidden = sum(1 for count in published.values() if count is None)
    return (max(hidden, true_total - high), true_total - low)


def _derivable(counts: Mapping[str, int], hidden: Set[str], rule: DisclosureRule) -> bool:
    """True when a reader knowing the true total could pin a suppressed cell, or the
    suppressed cells' sum, into ``1..threshold``, or pin a suppressed cell to one value."""
    if not hidden:
        return False
    published = {v: None if v in hidden else rule.round(n) for v, n in counts.items()}
    sum_low, sum_high = suppressed_sum_range(published, sum(counts.values()), rule)
    # One hidden cell is the whole sum; with more, any one can be as small as 1
    # and as large as the sum less 1 for each of the others.
    cell_low = sum_low if len(hidden) == 1 else 1
    cell_high = sum_high - (len(hidden) - 1)
    return rule.is_small(sum_high) or rule.is_small(cell_high) or cell_low >= cell_high


def _withheld(counts: Mapping[str, int], total: Suppression) -> ProtectedBreakdown:
    """Nothing published: small cells are PRIMARY, the rest (zeros included) SECONDARY."""
    cells = tuple(
        ProtectedCell(value, None, Suppression.PRIMARY if n else Suppression.SECONDARY)
        for value, n in counts.items()
    )
    return ProtectedBreakdown(cells, None, total, True)
