"""Disclosure control across releases (``hub.linked``), tried by an attacker written
independently of it (``tests.support.attacker``: interval arithmetic over every cell the
trends topic ever published, all publications and all revisions).

A finding of kind "zero" (a hidden cell shown to be exactly 0) is not a disclosure:
the rule publishes 0 openly wherever it is the count, so such a cell says no more
than a published 0 would. Findings within 1..threshold are what must never occur.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.disclosure import DisclosureRule, protect_breakdown
from hub.linked import Release, audit, secure_release
from tests.support.attacker import Finding, attack
from tests.support.releases import month, quarter, run
from tests.support.scenario import Scenario

RULE = DisclosureRule()
E = "events"
JAN, FEB, MAR = month(2026, 1), month(2026, 2), month(2026, 3)
Q1 = quarter(2026, 1)


def snapshots(*releases: Release) -> list[dict[str, Any]]:
    return [
        {
            "publication": r.publication,
            "period_start": r.start,
            "period_end": r.end,
            "measure": measure,
            "dimension": dimension,
            "value": value,
            "count": count,
            "suppressed": count is None,
            "revision": r.revision,
        }
        for r in releases
        for (measure, dimension, value), count in r.cells.items()
    ]


def small(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind != "zero"]


def outcomes(
    period: tuple[date, date], publication: str, revision: int, **cells: int | None
) -> Release:
    total = cells.pop("total")
    found = {(E, "outcome", value): count for value, count in cells.items()}
    return Release(publication, *period, revision, {**found, (E, "total", "all"): total})


def test_a_quarter_that_would_pin_a_suppressed_month_hides_more() -> None:
    # Jan 10, Feb suppressed, Mar 0 beside a quarter of 10: Feb is 1..4.
    months = [
        outcomes(JAN, "monthly", 0, NFA=10, OTHER=30, ADVICE=0, total=40),
        outcomes(FEB, "monthly", 0, NFA=None, OTHER=None, ADVICE=0, total=35),
        outcomes(MAR, "monthly", 0, NFA=0, OTHER=40, ADVICE=0, total=40),
    ]
    naive = outcomes(Q1, "board-quarterly", 0, NFA=10, OTHER=105, ADVICE=0, total=115)
    assert [str(e) for e in audit([*months, naive], RULE)] == [
        "events by outcome 'NFA' in 2026-02-01..2026-02-28: 1..4"
    ]
    assert small(attack(snapshots(*months, naive)).findings)  # the attacker sees it too

    secured = secure_release(naive, months, RULE)
    assert secured.release.cells[E, "outcome", "NFA"] is None
    assert secured.linked_suppressions and not secured.withheld
    assert secured.release.cells[E, "total", "all"] == 115  # the total still published
    assert audit([*months, secured.release], RULE) == []
    assert small(attack(snapshots(*months, secured.release)).findings) == []


def test_a_revision_that_differencing_would_undo_is_withheld() -> None:
    # Revision 1 hides a (late records) and c; c is taken as unchanged from revision 0.
    sex = "sex"
    first = Release(
        "monthly",
        *JAN,
        0,
        {(E, sex, "a"): 0, (E, sex, "b"): 20, (E, sex, "c"): 20, (E, "total", "all"): 40},
    )
    naive = Release(
        "monthly",
        *JAN,
        1,
        {(E, sex, "a"): None, (E, sex, "b"): 25, (E, sex, "c"): None, (E, "total", "all"): 45},
    )
    assert small(attack(snapshots(first, naive)).findings)
    assert audit([first, naive], RULE)

    secured = secure_release(naive, [first], RULE)
    assert audit([first, secured.release], RULE) == []
    assert small(attack(snapshots(first, secured.release)).findings) == []
    assert secured.release.cells[E, "total", "all"] == 45


def test_an_unchanged_release_is_left_alone() -> None:
    jan = outcomes(JAN, "monthly", 0, NFA=10, OTHER=None, ADVICE=None, total=25)
    again = outcomes(JAN, "monthly", 1, NFA=10, OTHER=None, ADVICE=None, total=25)
    secured = secure_release(again, [jan], RULE)
    assert secured.release == again and not secured.linked_suppressions


@pytest.mark.parametrize("seed", [11, 12])
def test_months_quarters_and_revisions_give_the_attacker_nothing(seed: int) -> None:
    """Six months of realistic data published monthly and quarterly, with late records,
    corrections and withdrawals re-released as revisions: protected breakdown by
    breakdown only, the attacker confines hidden cells; protected across releases, it
    confines none."""
    partners = ["camhs", "police", "spa"]
    alone = run(Scenario.create(partners, children=150, seed=seed), partners, RULE, linked=False)
    linked = run(Scenario.create(partners, children=150, seed=seed), partners, RULE, linked=True)
    assert small(attack(alone.snapshots).findings), "the scenario never tests the protection"
    revisions = [s for s in linked.snapshots if s["revision"] > 0]
    quarters = [s for s in linked.snapshots if s["publication"] == "board-quarterly"]
    assert revisions and quarters
    found = small(attack(linked.snapshots).findings)
    assert found == [], "\n".join(map(str, found[:20]))
    published = [s for s in linked.snapshots if not s["suppressed"]]
    assert len(published) > 0.5 * len(linked.snapshots)


counts = st.integers(min_value=0, max_value=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(counts, min_size=3, max_size=3), min_size=3, max_size=3))
def test_random_months_and_their_quarter(table: list[list[int]]) -> None:
    """Three months of a three-valued breakdown, each protected on its own, then the
    quarter protected against them: the attacker confines nothing."""
    released = []
    for period, row in zip((JAN, FEB, MAR), table, strict=True):
        released.append(_protected("monthly", period, row))
    quarter_row = [sum(column) for column in zip(*table, strict=True)]
    candidate = _protected("board-quarterly", Q1, quarter_row)
    before = small(attack(snapshots(*released)).findings)
    secured = secure_release(candidate, released, RULE)
    after = small(attack(snapshots(*released, secured.release)).findings)
    assert [f for f in after if f not in before] == []


def _protected(publication: str, period: tuple[date, date], row: list[int]) -> Release:
    cells = protect_breakdown({v: n for v, n in zip("abc", row, strict=True)}, RULE)
    total = protect_breakdown({"all": sum(row)}, RULE)
    found: dict[tuple[str, str, str], int | None] = {
        (E, "outcome", cell.value): cell.count for cell in cells.cells
    }
    found[E, "total", "all"] = total.cells[0].count
    return Release(publication, *period, 0, found)


def test_a_month_revised_after_its_quarter_is_read_with_the_quarters_other_months() -> None:
    # Q1 = Jan + Feb + Mar. Revised, January publishes NFA 10 where it hid it; with the
    # quarter (10) and March (0), February's hidden NFA would be 1..4.
    months = [
        outcomes(JAN, "monthly", 0, NFA=None, OTHER=None, ADVICE=0, total=40),
        outcomes(FEB, "monthly", 0, NFA=None, OTHER=None, ADVICE=0, total=35),
        outcomes(MAR, "monthly", 0, NFA=0, OTHER=40, ADVICE=0, total=40),
    ]
    q1 = outcomes(Q1, "board-quarterly", 0, NFA=10, OTHER=None, ADVICE=0, total=115)
    assert small(attack(snapshots(*months, q1)).findings) == []
    naive = outcomes(JAN, "monthly", 1, NFA=10, OTHER=30, ADVICE=0, total=40)
    assert small(attack(snapshots(*months, q1, naive)).findings)

    secured = secure_release(naive, [*months, q1], RULE)
    assert secured.release.cells[E, "outcome", "NFA"] is None
    assert small(attack(snapshots(*months, q1, secured.release)).findings) == []
