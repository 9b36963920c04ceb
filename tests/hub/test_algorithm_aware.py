"""Disclosure control against a reader who knows the algorithm (invariant 5).

``tests/support/brute_force.py`` runs the protection on every small true table
and groups the tables by what a reader sees; a suppressed cell that every table
of its group holds in ``1..threshold``, or at one value, is a finding. The
hub's rule gives none, with the published total and with the true total known;
weaker rules (no secondary suppression; secondaries only for a lone primary
or while the margins could pin one; ties broken by label) give some, so the
attacker can fail. The worked examples are those ``docs/disclosure-examples.md`` explains.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.disclosure import (
    DisclosureRule,
    ProtectedBreakdown,
    ProtectedCell,
    Suppression,
    protect_breakdown,
    suppressed_sum_range,
)
from tests.support.brute_force import (
    SMALL,
    BlackBox,
    BruteForce,
    ProtectFunction,
    Table,
    consistent_tables,
    cover,
)

DEFAULT = DisclosureRule()
#: (cells, largest true total): every table of that many cells up to that total.
DEFAULT_DOMAINS = [(2, 100), (3, 60), (4, 36), (5, 24), (6, 17), (7, 13)]
#: Other rules an agreement may set, on smaller domains.
OTHER_RULES = [
    DisclosureRule(round_to=1),
    DisclosureRule(suppress_at_or_below=10, round_to=10),
    DisclosureRule(suppress_at_or_below=5, round_to=3),
    DisclosureRule(suppress_at_or_below=3, round_to=10),  # 4 rounds to 0
    DisclosureRule(suppress_at_or_below=1, round_to=2),
]
OTHER_DOMAINS = [(2, 40), (3, 25), (4, 16), (5, 13)]


def sweep_both(rule: DisclosureRule, cells: int, max_total: int) -> None:
    """Both readers find nothing: one who sees the published total, one who knows the
    true total; the second shares what the black box published for the first."""
    box = BlackBox(rule)
    for true_total_known in (False, True):
        report = BruteForce(box, true_total_known=true_total_known).sweep(cells, max_total)
        assert report.findings == [], true_total_known
        assert report.groups > 0 and report.suppressed >= 2 * report.groups


@pytest.mark.parametrize(("cells", "max_total"), DEFAULT_DOMAINS)
def test_a_reader_who_knows_the_default_rule_learns_nothing_small(
    cells: int, max_total: int
) -> None:
    sweep_both(DEFAULT, cells, max_total)


@pytest.mark.parametrize(("cells", "max_total"), OTHER_DOMAINS)
@pytest.mark.parametrize(
    "rule", OTHER_RULES, ids=lambda r: f"{r.suppress_at_or_below}-{r.round_to}"
)
def test_nor_one_who_knows_another_agreed_rule(
    rule: DisclosureRule, cells: int, max_total: int
) -> None:
    sweep_both(rule, cells, max_total)


@given(
    st.lists(st.one_of(st.integers(0, 12), st.integers(0, 500)), min_size=2, max_size=20),
    st.builds(DisclosureRule, suppress_at_or_below=st.integers(0, 10), round_to=st.integers(1, 10)),
)
def test_larger_tables_have_a_cover_for_every_suppressed_cell(
    counts: list[int], rule: DisclosureRule
) -> None:
    # Beyond the sizes swept: the tables the argument in hub/disclosure.py builds
    # (a primary swapped with a secondary, a count moved off a withheld cell, the
    # suppressed sum gathered in one cell) publish the same with the same total.
    brute = BruteForce(BlackBox(rule), true_total_known=True)
    table = tuple(counts)
    shown, _ = brute.publication(table)
    for cell in (i for i, count in enumerate(shown) if count is None):
        assert cover(brute, table, cell) is not None, cell


# --- the attacker can fail: weaker rules ---------------------------------------------------
def derivable(counts: Mapping[str, int], hidden: Set[str], rule: DisclosureRule) -> bool:
    """The margins audit: could a reader knowing the true total pin a hidden cell, or
    their sum, into 1..threshold, or a hidden cell to one value?"""
    if not hidden:
        return False
    published = {v: None if v in hidden else rule.round(n) for v, n in counts.items()}
    low, high = suppressed_sum_range(published, sum(counts.values()), rule)
    cell_low = low if len(hidden) == 1 else 1
    cell_high = high - (len(hidden) - 1)
    return rule.is_small(high) or rule.is_small(cell_high) or cell_low >= cell_high


def label_order_rule(*, always_company: bool) -> ProtectFunction:
    """Secondaries one cell at a time, smallest first, ties by label. Without
    ``always_company``: only for a lone primary or while ``derivable``; with it,
    at least one whenever a cell is primary."""

    def protect(
        counts: Mapping[str, int], rule: DisclosureRule, *, total: int | None = None
    ) -> ProtectedBreakdown:
        if rule.is_small(sum(counts.values())):
            return withheld(counts)
        hidden = {v: Suppression.PRIMARY for v, n in counts.items() if rule.is_small(n)}
        candidates = sorted((n, v) for v, n in counts.items() if n > 0 and v not in hidden)
        first = always_company and bool(hidden)
        while first or len(hidden) == 1 or derivable(counts, hidden.keys(), rule):
            if not candidates:
                return withheld(counts)
            hidden[candidates.pop(0)[1]] = Suppression.SECONDARY
            first = False
        cells = tuple(
            ProtectedCell(
                v, None if v in hidden else rule.round(n), hidden.get(v, Suppression.NONE)
            )
            for v, n in counts.items()
        )
        shown = sum(cell.count for cell in cells if cell.count is not None)
        return ProtectedBreakdown(cells, shown, Suppression.NONE, bool(hidden))

    return protect


def withheld(counts: Mapping[str, int]) -> ProtectedBreakdown:
    """Every cell hidden (the labels do not matter to a reader)."""
    cells = tuple(ProtectedCell(v, None, Suppression.SECONDARY) for v in counts)
    return ProtectedBreakdown(cells, None, Suppression.SECONDARY, True)


def test_without_secondary_suppression_every_lone_suppressed_cell_is_known_small() -> None:
    weak = DisclosureRule(secondary_suppression=False)
    brute = BruteForce(BlackBox(weak))
    report = brute.sweep(3, 30)
    assert report.findings
    # 5, 10, 10: the 5 is suppressed alone, and only a primary is ever suppressed.
    assert brute.publication((5, 10, 10)) == ((None, 10, 10), 25)
    small = {(f.publication, f.cell) for f in report.findings if f.kind == SMALL}
    assert (((None, 10, 10), 25), 0) in small


def test_three_primaries_without_company_are_known_small() -> None:
    # Secondaries only for a lone primary or while the margins could pin one:
    # 7, 3 and 3 are primary and their sum (9..17, knowing the total 33 and the
    # two 10s) cannot be narrowed, so none is added. Three suppressed cells
    # without a secondary can only be three primaries.
    brute = BruteForce(BlackBox(DEFAULT, label_order_rule(always_company=False)))
    table = (7, 3, 11, 3, 9)
    publication = brute.publication(table)
    assert publication == ((None, None, 10, None, 10), 35)
    tables = consistent_tables(brute, publication, max_total=40)
    assert table in tables
    for cell in (0, 1, 3):
        assert {t[cell] for t in tables} <= set(range(1, 8)), cell
    # The sweep finds the same kind of leak in small tables: 1 and 7 suppressed
    # beside a published 10, total 17 published as 15.
    findings = brute.sweep(3, 25).findings
    assert any(f.publication == ((None, 10, None), 15) and f.kind == SMALL for f in findings)


def test_hidden_by_label_one_of_two_equal_cells_gives_the_small_one_away() -> None:
    # Every primary gets company, but of two 8s the first label goes: 8, 8, 1
    # publishes (suppressed, 10, suppressed). For the 1 to be a secondary instead
    # it would have to be smaller than the published cell (it comes after it) and
    # still above 7, and the total (15 shows 13..17) leaves no room for that.
    brute = BruteForce(BlackBox(DEFAULT, label_order_rule(always_company=True)))
    assert brute.publication((8, 8, 1)) == ((None, 10, None), 15)
    tables = consistent_tables(brute, ((None, 10, None), 15), max_total=20)
    assert {t[2] for t in tables} == {1}


# --- worked examples -------------------------------------------------------------------------
EXAMPLES: list[tuple[Table, tuple[int | None, ...], int]] = [
    # 1 is primary. The two 10s are the only other non-zero cells; hiding one of
    # them would go by label, so both go: nothing but the total is shown.
    ((1, 10, 10), (None, None, None), 20),
    # All three are primary and there is no other cell to add. Their sum (16)
    # cannot be narrowed into 1..7, and 1 + 1 + 14 (14 suppressed as the
    # secondary) publishes the same, so they are shown suppressed, total 15.
    ((5, 5, 6), (None, None, None), 15),
    # 2 is primary; the 8 adds up to less than the 10 and goes with it. The pair
    # (20 less 8..12 for the published 10) cannot be pinned.
    ((2, 10, 8), (None, 10, None), 20),
    # Nothing in 1..7, so nothing is suppressed: the 0 is published as 0.
    ((0, 8, 9, 12, 30), (0, 10, 10, 10, 30), 60),
    # 7, 3 and 3 are primary; the 9 (less than the 11) always goes with them,
    # even though the three alone could not be narrowed.
    ((7, 3, 11, 3, 9), (None, None, 10, None, None), 35),
    # Two 10s add up to more than one 15, so the 15 goes with the 1 instead.
    ((1, 10, 10, 15), (None, 10, 10, None), 35),
    # Two cells totalling 8: every split but 0 + 8 has both cells small, so this
    # one is withheld too, zero included.
    ((0, 8), (None, None), 10),
    # Every non-zero cell is primary and the total is threshold + n - 1 = 10:
    # withheld, zero included, since four suppressed cells of that total with
    # no zero among them would all be small.
    ((2, 7, 1, 0), (None, None, None, None), 10),
    # The same with a total of 11: 9 + 1 + 1 (9 as the secondary) publishes the
    # same, so the zero is shown.
    ((3, 7, 1, 0), (None, None, None, 0), 10),
    # 3 is primary; 12 is the smallest other non-zero cell. The 0 is never chosen:
    # it adds nothing to the suppressed sum.
    ((3, 12, 40, 0), (None, None, 40, 0), 55),
]


@pytest.mark.parametrize(("table", "cells", "total"), EXAMPLES, ids=lambda x: str(x))
def test_worked_examples(table: Table, cells: tuple[int | None, ...], total: int) -> None:
    counts = {f"c{i}": n for i, n in enumerate(table)}
    assert tuple(protect_breakdown(counts, total=sum(table)).counts().values()) == cells
    assert protect_breakdown({"all": sum(table)}).counts() == {"all": total}
    # Even knowing the true total, every suppressed cell could be above 7 or 0.
    brute = BruteForce(BlackBox(DEFAULT), true_total_known=True)
    tables = consistent_tables(brute, brute.publication(table), max_total=sum(table))
    assert table in tables
    for cell in (i for i, count in enumerate(cells) if count is None):
        assert any(not 1 <= t[cell] <= 7 for t in tables), cell
