"""Disclosure control (invariant 5): no published number reveals a count in 1..threshold.

The property tests carry their own attacker, written independently of
``hub.disclosure``: it rounds with ``decimal`` and finds what each published
cell can hide by enumeration, then propagates intervals through the one
equation a margin gives (hidden cells = true total - published cells).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.disclosure import DisclosureRule, ProtectedBreakdown, Suppression, protect_breakdown

NONE, PRIMARY, SECONDARY = Suppression.NONE, Suppression.PRIMARY, Suppression.SECONDARY
UNBOUNDED = 10**9


def half_up(count: int, step: int) -> int:
    return int((Decimal(count) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


def publication(count: int, rule: DisclosureRule) -> int:
    """What an unsuppressed count is published as: rounded, but never into 1..threshold."""
    rounded = half_up(count, rule.round_to)
    while 1 <= rounded <= rule.suppress_at_or_below:
        rounded += rule.round_to
    return rounded


def hidden_range(published: int, rule: DisclosureRule) -> tuple[int, int]:
    """Every true count the rule could have published as ``published``, by enumeration."""
    threshold, step = rule.suppress_at_or_below, rule.round_to
    possible = [
        n
        for n in range(0, published + step + 1)
        if publication(n, rule) == published and not 1 <= n <= threshold
    ]
    assert possible, f"{published} cannot be published under {rule}"
    return min(possible), max(possible)


def attack(
    result: ProtectedBreakdown, rule: DisclosureRule, true_total: int | None
) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    """Feasible ranges for each suppressed cell and for their sum.

    The attacker knows the rule, the published cells and, in the worst case,
    the true total (``None`` when it does not). Zeros are published, so a
    suppressed cell is at least 1 unless the whole breakdown is withheld.
    """
    floor = 0 if result.total is None else 1
    bounds = {
        cell.value: (floor, UNBOUNDED) if cell.count is None else hidden_range(cell.count, rule)
        for cell in result.cells
    }
    hidden = [cell.value for cell in result.cells if cell.count is None]
    low_all = sum(low for low, _ in bounds.values())
    high_all = sum(high for _, high in bounds.values())
    shown_low = sum(bounds[v][0] for v in bounds if v not in hidden)
    shown_high = sum(bounds[v][1] for v in bounds if v not in hidden)
    if true_total is None:
        return {v: bounds[v] for v in hidden}, (floor * len(hidden), UNBOUNDED)
    cells = {}
    for value in hidden:
        low, high = bounds[value]
        rest_low, rest_high = low_all - low, high_all - high
        cells[value] = (max(low, true_total - rest_high), min(high, true_total - rest_low))
    hidden_sum = (
        max(floor * len(hidden), true_total - shown_high),
        min(UNBOUNDED, true_total - shown_low),
    )
    return cells, hidden_sum


def rules() -> st.SearchStrategy[DisclosureRule]:
    return st.builds(
        DisclosureRule,
        suppress_at_or_below=st.integers(0, 10),
        round_to=st.integers(1, 10),
        secondary_suppression=st.booleans(),
    )


def breakdowns() -> st.SearchStrategy[dict[str, int]]:
    small_or_any = st.one_of(st.integers(0, 12), st.integers(0, 500))
    return st.lists(small_or_any, min_size=1, max_size=20).map(
        lambda counts: {f"R{i:02d}": n for i, n in enumerate(counts)}
    )


@given(breakdowns(), rules())
def test_published_numbers_are_rounded_and_never_small(
    counts: dict[str, int], rule: DisclosureRule
) -> None:
    result = protect_breakdown(counts, rule)
    threshold, step = rule.suppress_at_or_below, rule.round_to
    assert [cell.value for cell in result.cells] == list(counts)
    published = [cell.count for cell in result.cells if cell.count is not None]
    for count in [*published, *([result.total] if result.total is not None else [])]:
        assert not 1 <= count <= threshold
        assert count % step == 0
    if result.total is None:
        assert published == []
        small_total = 1 <= sum(counts.values()) <= threshold
        assert result.total_suppression is (PRIMARY if small_total else SECONDARY)
    else:
        assert result.total == sum(published)
        assert result.total_suppression is NONE
    assert result.total_incomplete == any(cell.count is None for cell in result.cells)
    for cell in result.cells:
        true = counts[cell.value]
        if cell.count is not None:
            assert cell.suppression is NONE
            assert cell.count == publication(true, rule)
        elif 1 <= true <= threshold:
            assert cell.suppression is PRIMARY
        else:
            assert cell.suppression is SECONDARY


@given(breakdowns(), rules())
def test_margins_never_pin_a_hidden_cell_into_the_suppressed_band(
    counts: dict[str, int], rule: DisclosureRule
) -> None:
    rule = rule.model_copy(update={"secondary_suppression": True})
    result = protect_breakdown(counts, rule)
    threshold = rule.suppress_at_or_below
    true_total = sum(counts.values())
    # A true total in 1..threshold is withheld here and, by the same rule,
    # everywhere else; any other total we assume the attacker knows exactly.
    known = None if 1 <= true_total <= threshold else true_total
    for total in {known, None}:
        cells, (sum_low, sum_high) = attack(result, rule, total)
        true_hidden = [counts[v] for v in cells]
        assert sum_low <= sum(true_hidden) <= sum_high
        if cells:
            assert not 1 <= sum_low <= sum_high <= threshold
        for value, (low, high) in cells.items():
            assert low <= counts[value] <= high
            assert not 1 <= low <= high <= threshold, (value, low, high)
            assert low < high, (value, low, high)


@given(breakdowns(), rules())
def test_secondary_suppression_only_adds_cells_above_the_threshold(
    counts: dict[str, int], rule: DisclosureRule
) -> None:
    primary_only = protect_breakdown(
        counts, rule.model_copy(update={"secondary_suppression": False})
    )
    full = protect_breakdown(counts, rule.model_copy(update={"secondary_suppression": True}))
    for without, with_secondary in zip(primary_only.cells, full.cells, strict=True):
        if without.count is None:
            assert with_secondary.count is None
        if with_secondary.suppression is SECONDARY and full.total is not None:
            assert counts[with_secondary.value] > rule.suppress_at_or_below
    if full.total is not None:
        assert sum(cell.count is None for cell in full.cells) != 1


@given(st.integers(0, 520), rules())
def test_the_rule_knows_exactly_what_a_published_count_can_hide(
    count: int, rule: DisclosureRule
) -> None:
    # The publisher's audit must credit the attacker with no less than the truth.
    if not 1 <= count <= rule.suppress_at_or_below:
        shown = rule.round(count)
        assert shown == publication(count, rule)
        assert rule.possible_true_counts(shown) == hidden_range(shown, rule)


@given(st.lists(st.integers(0, 500), min_size=1, max_size=20))
def test_the_disabled_rule_publishes_the_true_counts(counts: list[int]) -> None:
    breakdown = {f"R{i}": n for i, n in enumerate(counts)}
    result = protect_breakdown(breakdown, DisclosureRule(suppress_at_or_below=0, round_to=1))
    assert result.counts() == breakdown
    assert result.total == sum(counts)
    assert not result.total_incomplete
    assert {cell.suppression for cell in result.cells} == {NONE}


def published(result: ProtectedBreakdown) -> list[tuple[str, int | None, Suppression]]:
    return [(cell.value, cell.count, cell.suppression) for cell in result.cells]


def test_default_rule_example() -> None:
    # 3 is primary; alone it would be 55 - (10 + 40 + 0) give or take rounding,
    # so the next smallest non-zero cell (12) goes with it.
    result = protect_breakdown({"GROOMING": 3, "SEXTORTION": 12, "BULLYING": 40, "SCAMS": 0})
    assert published(result) == [
        ("GROOMING", None, PRIMARY),
        ("SEXTORTION", None, SECONDARY),
        ("BULLYING", 40, NONE),
        ("SCAMS", 0, NONE),
    ]
    assert (result.total, result.total_suppression, result.total_incomplete) == (40, NONE, True)


def test_default_rule_rounds_halves_up_and_keeps_exact_totals_out() -> None:
    result = protect_breakdown({"A": 8, "B": 12, "C": 13, "D": 102, "E": 0})
    assert result.counts() == {"A": 10, "B": 10, "C": 15, "D": 100, "E": 0}
    assert (result.total, result.total_incomplete) == (135, False)  # the true total is 135 too


def test_primary_cells_always_take_a_secondary() -> None:
    # Without rounding, a reader who knows the true total learns the hidden sum
    # exactly. 4 + 5 = 9 is above 7 and either cell could be 1..8, so the margins
    # alone would let the pair stand; but a pair of suppressed cells with nothing
    # above the threshold among them would tell a reader who knows the rule that
    # both are small, so the smallest other non-zero cell (20) joins them anyway.
    # 3 + 3 = 6 would put the pair in 1..7 too: the same 20 joins, and suffices.
    exact = DisclosureRule(round_to=1)
    assert published(protect_breakdown({"A": 4, "B": 5, "C": 20, "D": 100}, exact)) == [
        ("A", None, PRIMARY),
        ("B", None, PRIMARY),
        ("C", None, SECONDARY),
        ("D", 100, NONE),
    ]
    assert published(protect_breakdown({"A": 3, "B": 3, "C": 20, "D": 100}, exact)) == [
        ("A", None, PRIMARY),
        ("B", None, PRIMARY),
        ("C", None, SECONDARY),
        ("D", 100, NONE),
    ]


def test_equal_cells_are_suppressed_together_or_not_at_all() -> None:
    # Which of two equal cells to hide would have to go by label, and the label
    # order can tell a reader which suppressed cell is the small one.
    assert protect_breakdown({"A": 1, "B": 10, "C": 10}).counts() == dict.fromkeys("ABC")
    # Two 10s add up to more than one 15: the 15 goes, the 10s stay.
    assert protect_breakdown({"A": 1, "B": 10, "C": 10, "D": 15}).counts() == {
        "A": None,
        "B": 10,
        "C": 10,
        "D": None,
    }


def test_primaries_with_no_company_left_stand_when_they_cannot_be_narrowed() -> None:
    # Every non-zero cell is primary: 3 + 7 + 1 = 11 could be 9 + 1 + 1 with the 9
    # as the secondary, which publishes the same, so the zero stays visible.
    assert protect_breakdown({"A": 3, "B": 7, "C": 1, "D": 0}).counts() == {
        "A": None,
        "B": None,
        "C": None,
        "D": 0,
    }


@pytest.mark.parametrize(
    ("counts", "total_suppression"),
    [
        # The true total is 5: withhold all, zeros too, and the total is itself small.
        ({"A": 5, "B": 0, "C": 0}, PRIMARY),
        # Total 9, yet with the zero shown each non-zero cell is at most 7.
        ({"A": 3, "B": 3, "C": 3, "D": 0}, SECONDARY),
        # Two cells totalling 8: split as two non-zero counts, both are small, so
        # a withheld pair of that total must be able to hide a zero too.
        ({"A": 0, "B": 8}, SECONDARY),
        ({"A": 5, "B": 3}, SECONDARY),
        # A total of threshold + n - 1 = 10 over four cells: four suppressed cells
        # of that total with no zero among them are all small (1 + 1 + 1 + 7 ..),
        # so a table of that total whose non-zero cells are all small hides its
        # zero too, and four suppressed cells may always have held a zero.
        ({"A": 2, "B": 7, "C": 1, "D": 0}, SECONDARY),
    ],
)
def test_breakdowns_that_cannot_be_protected_are_withheld(
    counts: dict[str, int], total_suppression: Suppression
) -> None:
    result = protect_breakdown(counts)
    assert result.counts() == dict.fromkeys(counts)
    assert (result.total, result.total_suppression, result.total_incomplete) == (
        None,
        total_suppression,
        True,
    )
    assert [cell.suppression for cell in result.cells] == [
        PRIMARY if 1 <= n <= 7 else SECONDARY for n in counts.values()
    ]


def test_nothing_small_means_nothing_hidden() -> None:
    result = protect_breakdown({"A": 0, "B": 0})
    assert (result.counts(), result.total, result.total_incomplete) == ({"A": 0, "B": 0}, 0, False)


def test_bad_input_is_a_bug_not_a_record_error() -> None:
    with pytest.raises(ValueError, match="not the sum"):
        protect_breakdown({"A": 10, "B": 20}, total=31)
    with pytest.raises(ValueError, match="0 or more"):
        protect_breakdown({"A": -1})
    assert protect_breakdown({"A": 10, "B": 20}, total=30).total == 30
