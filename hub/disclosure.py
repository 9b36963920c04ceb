"""Statistical disclosure control for one published breakdown (invariant 5).

Pure functions: no Kafka, no I/O. The publisher hands in the true counts of one
breakdown (e.g. events per risk code for one period) and gets back what may be
published: each cell rounded or suppressed.

The rule (``DisclosureRule``, from the agreement's ``disclosure`` section; the
threshold is ``suppress_at_or_below``; n is the number of cells, zeros
included):

* **Primary suppression.** A count in ``1..threshold`` is withheld.
* **Rounding.** Every other count is rounded to the nearest ``round_to``,
  halves up (12 -> 10, 13 -> 15 with the default 5); one that would round
  into ``1..threshold`` goes up to the first multiple above it instead.
* **Zeros.** A true 0 is published as 0: it says nothing about any child, and
  hiding it would also hide "no cases", which the board needs to see. So a
  suppressed cell is known to be non-zero, and the audit below assumes so
  (except in a withheld breakdown, where zeros are hidden too).
* **Totals.** The total the hub publishes is not computed from the cells: it is
  the measure's ``total`` breakdown (``events`` / ``total`` / ``all``,
  ``children`` / ``total`` / ``all``), a one-cell breakdown protected on its
  own by this same function (``streams.aggregate.protect_cells``), so it is the
  true total rounded, or withheld when it is in ``1..threshold``. The audit
  below already assumes the reader knows the true total exactly, so
  publishing it rounded gives away nothing the audit has not granted.
  ``ProtectedBreakdown.total`` (the sum of the published cells, with
  ``total_incomplete`` when suppressed cells are left out of it) is for checks
  and tests; it is not published.
* **Small totals.** When the true total itself is in ``1..threshold`` the
  whole breakdown is withheld: the total and every cell, zeros included (a
  published 0 next to a small total says "all of these few children had X").
* **Totals only small cells can make up.** With secondary suppression on and
  a threshold above 0, when ``(n - 1) * threshold < total < threshold + n``
  the whole breakdown is withheld, zeros included, whatever its cells (with
  the default rule: two cells totalling 8, 0 and 8 too). At such a total
  every table with all n cells non-zero and suppressed has each of them in
  ``1..threshold`` (a count above the threshold would leave less than 1 for
  some other cell), and no table with a zero among them would otherwise be
  withheld (the other cells cannot all be small), so those are withheld too.
* **Secondary suppression.** We assume the worst case: the reader knows the
  *true* total exactly (another table may publish it, or the same population
  split another way), and knows this algorithm. Whenever a cell is primary,
  more cells are suppressed (unless the agreement turns
  ``secondary_suppression`` off: then only primaries are hidden, and a reader
  who knows that knows every suppressed cell is small). They are chosen among
  the unsuppressed non-zero cells (all above the threshold; zeros are never
  chosen: hiding a 0 adds nothing to the suppressed sum) by value only,
  never by label:

  1. The cells go a value at a time: every cell holding the value whose cells
     add up to the least (one cell of the smallest value, unless that value
     is shared: two cells of 10 add up to 20, so a single 15 goes first; the
     smaller value when two add up to the same). Equal cells are suppressed
     together, so which of them is hidden never depends on labels.
  2. One value always goes, even when the primaries alone could not be
     narrowed; then the next, while an attacker knowing the true total could
     pin a suppressed cell, or their sum, into ``1..threshold`` or pin a
     suppressed cell to a single value (``_derivable``). If the candidates
     run out first, the whole breakdown is withheld, zeros included.
  3. When there is no cell to choose (every non-zero cell is primary), the
     primaries are published as suppressed, zeros shown, if they cannot be
     narrowed and the total is not ``threshold + n - 1``; otherwise the whole
     breakdown is withheld, zeros included.

  Why a reader who knows the algorithm learns no more: the choices depend
  only on the values, so swapping the true counts of a primary cell and a
  secondary one changes nothing that is published; for every suppressed cell
  there is therefore a table with the same total publishing exactly the same
  in which that cell is above the threshold. Under step 3, the table with
  the suppressed cells' total less 1 for each of the others in one of them
  (above the threshold exactly when the primaries cannot be narrowed) and 1
  in the others publishes the same. A withheld breakdown hides its zeros,
  and the totals rules (above, and ``threshold + n - 1`` in step 3) make sure
  that a withheld breakdown of a known total could have held a zero, or a
  count above the threshold, in each of its cells: below ``threshold + n``
  no table with all n cells suppressed and non-zero has a count above the
  threshold in it. ``tests/hub/test_algorithm_aware.py`` checks all this
  with ``tests/support/brute_force.py``: every small table, and the tables
  this argument builds for larger ones.

Limits. A reader who knows the algorithm and the true total can still
learn: that a suppressed cell of a published breakdown is not 0 (zeros are
published); that at least one suppressed cell is above the threshold when a
non-zero cell is published beside them; that the suppressed cells together
could hold a count above the threshold beside 1 in each of the others (with
the default rule: they add up to at least the threshold plus their number);
and what the published numbers bound, which ``_derivable`` keeps out of
``1..threshold`` and off single values. A withheld total (any suppressed
one-cell breakdown) is known to be in ``1..threshold``, so every cell of its
breakdown is known to be in ``0..threshold``: the price of publishing zeros.
Cells above the threshold get no such protection: a suppressed one may be
bounded closely (though not, in the tables tried, to one value), and the
choice of secondaries says how they compare with the published cells (each
secondary value, summed over the cells holding it, is at most any published
value summed over the cells holding it). The audit reads the published
counts, not the PRIMARY / SECONDARY labels: a reader who sees that a cell is
PRIMARY already knows it is in ``1..threshold``, and one who also sees a
SECONDARY neighbour (so above the threshold) can sometimes narrow the pair
further (1 and 8, no rounding, true total 9 known: the PRIMARY cell is 1).
Show readers one "suppressed" marker; keep the split for the audit trail.
Each breakdown is protected on its own: what several breakdowns, periods or
revisions give away together is ``hub.linked``'s business, audited by linear
programming, not against a reader who knows both algorithms. Two-way tables
are not handled here yet: protect each published margin as its own
breakdown, and do not publish the inner cells of a cross-tabulation until a
table audit (row and column margins together) exists.
"""

from __future__ import annotations

from collections import Counter
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
    of it. Neither is published: the hub publishes a measure's total as its own
    one-cell breakdown (**Totals** in the module docstring).
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
        return _withheld(counts, rule, Suppression.PRIMARY)
    if rule.secondary_suppression and _only_small_cells_add_up(counts, rule):
        return _withheld(counts, rule, Suppression.SECONDARY)
    suppressed = {value: Suppression.PRIMARY for value, n in counts.items() if rule.is_small(n)}
    if rule.secondary_suppression and suppressed:
        secondary = _secondaries(counts, suppressed.keys(), rule)
        if secondary is None:
            return _withheld(counts, rule, Suppression.SECONDARY)
        suppressed.update(dict.fromkeys(secondary, Suppression.SECONDARY))
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


def _secondaries(
    counts: Mapping[str, int], primary: Set[str], rule: DisclosureRule
) -> set[str] | None:
    """The cells to suppress besides ``primary`` (the module docstring, steps 1 to 3),
    or None when the whole breakdown must be withheld."""
    left = Counter(n for value, n in counts.items() if value not in primary and n > 0)
    if not left:  # step 3: every non-zero cell is primary
        edge = sum(counts.values()) == rule.suppress_at_or_below + len(counts) - 1
        return None if edge or _derivable(counts, primary, rule) else set()
    chosen: set[str] = set()
    while left:
        cheapest = min(left, key=lambda n: (n * left[n], n))
        del left[cheapest]
        chosen.update(value for value, n in counts.items() if n == cheapest)
        if not _derivable(counts, primary | chosen, rule):
            return chosen
    return None


def _only_small_cells_add_up(counts: Mapping[str, int], rule: DisclosureRule) -> bool:
    """True when every table of ``len(counts)`` cells with this true total and every
    cell suppressed has each cell in ``1..threshold``: the total is too large for a
    zero among them (each other cell is at most the threshold) and too small for a
    count above the threshold (each other cell is at least 1)."""
    cells, threshold = len(counts), rule.suppress_at_or_below
    return threshold > 0 and (cells - 1) * threshold < sum(counts.values()) < threshold + cells


def _withheld(
    counts: Mapping[str, int], rule: DisclosureRule, total: Suppression
) -> ProtectedBreakdown:
    """Nothing published: small cells are PRIMARY, the rest (zeros included) SECONDARY."""
    cells = tuple(
        ProtectedCell(
            value, None, Suppression.PRIMARY if rule.is_small(n) else Suppression.SECONDARY
        )
        for value, n in counts.items()
    )
    return ProtectedBreakdown(cells, None, total, True)
