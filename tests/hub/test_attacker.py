"""The independent attacker (``tests.support.attacker``) on hand-built publications: it
finds the leaks it is meant to (month against quarter, revision against revision, within
a release, children against events), reports nothing on safe ones, falls back to one
variable per revision when the unchanged assumption fails, and its ranges always hold
the true values of publications built from known counts."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date
from typing import Any

import pytest

from tests.support.attacker import (
    UNBOUNDED,
    AttackResult,
    CellRef,
    Finding,
    attack,
    published_as,
    true_values,
)

Span = tuple[date, date]
Snapshot = dict[str, Any]
#: (measure, dimension, value) -> a true count.
Truth = dict[tuple[str, str, str], int]

JAN: Span = (date(2026, 1, 1), date(2026, 1, 31))
FEB: Span = (date(2026, 2, 1), date(2026, 2, 28))
MAR: Span = (date(2026, 3, 1), date(2026, 3, 31))
Q1: Span = (date(2026, 1, 1), date(2026, 3, 31))
NFA, POLICE, CSC = "NO_FURTHER_ACTION", "POLICE_REFERRAL", "CSC_REFERRAL"


def cells(
    span: Span,
    measure: str,
    dimension: str,
    counts: Mapping[str, int | None],
    publication: str = "monthly",
    revision: int = 0,
) -> list[Snapshot]:
    """Published cells of one breakdown of one release (None: suppressed)."""
    return [
        {
            "publication": publication,
            "period_start": span[0],
            "period_end": span[1],
            "measure": measure,
            "dimension": dimension,
            "value": value,
            "count": count,
            "suppressed": count is None,
            "revision": revision,
        }
        for value, count in counts.items()
    ]


def breakdown(
    span: Span,
    dimension: str,
    counts: Mapping[str, int | None],
    total: int | None,
    measure: str = "events",
    publication: str = "monthly",
    revision: int = 0,
) -> list[Snapshot]:
    """A breakdown of `measure` and the measure's total, in one release."""
    return [
        *cells(span, measure, dimension, counts, publication, revision),
        *cells(span, measure, "total", {"all": total}, publication, revision),
    ]


def found(result: AttackResult, value: str, measure: str = "events") -> list[Finding]:
    return [f for f in result.findings if f.value == value and f.measure == measure]


def ref(
    span: Span,
    dimension: str,
    value: str,
    measure: str = "events",
    publication: str = "monthly",
    revision: int = 0,
) -> CellRef:
    return CellRef(publication, span[0], revision, measure, dimension, value)


# --- the publication function ----------------------------------------------------------


@pytest.mark.parametrize(
    ("true", "published"),
    [(0, 0), (1, None), (7, None), (8, 10), (9, 10), (12, 10), (13, 15), (17, 15), (18, 20)],
)
def test_what_a_true_count_publishes_as(true: int, published: int | None) -> None:
    assert published_as(true) == published


@pytest.mark.parametrize(
    ("count", "window"), [(0, (0, 0)), (10, (8, 12)), (15, (13, 17)), (45, (43, 47))]
)
def test_what_a_published_count_says(count: int, window: tuple[int, int]) -> None:
    assert true_values(count) == window


def test_a_published_5_is_impossible() -> None:
    lo, hi = true_values(5)
    assert lo > hi


# --- leaks it must find -----------------------------------------------------------------


def month_and_quarter(with_quarter: bool) -> list[Snapshot]:
    """Jan NFA 10, Feb suppressed, Mar 0 (true 8, 3, 0: each month's total consistent)."""
    snapshots = [
        *breakdown(JAN, "outcome", {NFA: 10, POLICE: 20}, 30),
        *breakdown(FEB, "outcome", {NFA: None, POLICE: 15}, 20),
        *breakdown(MAR, "outcome", {NFA: 0, POLICE: 10}, 10),
    ]
    if with_quarter:  # true 11, 45, 56
        snapshots += breakdown(
            Q1, "outcome", {NFA: 10, POLICE: 45}, 55, "events", "board-quarterly"
        )
    return snapshots


def test_month_against_quarter_is_found() -> None:
    result = attack(month_and_quarter(with_quarter=True))
    assert not result.split_revisions and not result.inconsistent
    [finding] = found(result, NFA)
    assert finding.cell == ref(FEB, "outcome", NFA)
    assert (finding.lo, finding.hi, finding.kind) == (1, 4, "range")
    assert "2026-01-01..2026-03-31 against" in finding.why


def test_the_months_alone_do_not_give_it_away() -> None:
    result = attack(month_and_quarter(with_quarter=False))
    assert result.findings == []
    assert result.ranges == {ref(FEB, "outcome", NFA): (1, 9)}


def revisions(first: bool = True) -> list[Snapshot]:
    """Revision 0: a=0, b=20, c=20 of 40; revision 1: a and c suppressed, b=25 of 45."""
    earlier = breakdown(JAN, "role", {"a": 0, "b": 20, "c": 20}, 40)
    later = breakdown(JAN, "role", {"a": None, "b": 25, "c": None}, 45, revision=1)
    return [*earlier, *later] if first else later


def test_revision_against_revision_is_found() -> None:
    result = attack(revisions())
    assert not result.split_revisions
    [finding] = result.findings
    assert finding.cell == ref(JAN, "role", "a", revision=1)
    # c unchanged (20: 18..22), so a = 45 - 25 - c is 43-27-22..47-23-18, and at least 1.
    assert (finding.lo, finding.hi) == (1, 6)
    assert result.ranges[ref(JAN, "role", "c", revision=1)] == (18, 22)


def test_the_later_revision_alone_does_not_give_it_away() -> None:
    result = attack(revisions(first=False))
    assert result.findings == []
    assert result.ranges[ref(JAN, "role", "a", revision=1)] == (1, 23)


def test_a_cell_beside_a_known_total_is_found() -> None:
    result = attack(breakdown(JAN, "outcome", {NFA: None, POLICE: 10, CSC: 10}, 20))
    [finding] = result.findings
    assert finding.cell == ref(JAN, "outcome", NFA)
    assert (finding.lo, finding.hi) == (1, 6)  # 18-12-12 .. 22-8-8
    assert "add up to the events total" in finding.why


def test_children_are_at_most_the_events() -> None:
    events = breakdown(JAN, "outcome", {NFA: None, POLICE: 10, CSC: 10}, 20)
    children = breakdown(JAN, "outcome", {NFA: None, POLICE: 10}, 15, "children")
    alone = attack(children)
    assert alone.findings == []
    assert alone.ranges[ref(JAN, "outcome", NFA, "children")] == (1, 9)

    [finding] = found(attack([*events, *children]), NFA, "children")
    assert (finding.lo, finding.hi) == (1, 6)
    assert "children outcome/NO_FURTHER_ACTION at most the events" in finding.why


def test_a_withheld_breakdown_shown_to_be_zero_is_found() -> None:
    events = breakdown(JAN, "role", {"VICTIM": 0, "PERPETRATOR": 20}, 20)
    children = breakdown(JAN, "role", {"VICTIM": None, "PERPETRATOR": None}, 15, "children")
    result = attack([*events, *children])
    [finding] = result.findings
    assert finding.cell == ref(JAN, "role", "VICTIM", "children")
    assert (finding.lo, finding.hi, finding.kind) == (0, 0, "zero")
    assert result.ranges[ref(JAN, "role", "PERPETRATOR", "children")] == (13, 17)


def test_referrals_not_assessed_and_not_recorded_are_within_the_referrals() -> None:
    dimension = "agency"
    snapshots = [
        *cells(JAN, "referrals", dimension, {"camhs": 10, "police": 20}),
        *cells(JAN, "referrals_online_not_assessed", dimension, {"camhs": 10, "police": None}),
        *cells(JAN, "referrals_online_not_recorded", dimension, {"camhs": None, "police": 15}),
    ]
    result = attack(snapshots)
    # camhs: not recorded <= 12 - 8; police: not assessed <= 22 - 13.
    assert result.ranges[ref(JAN, dimension, "camhs", "referrals_online_not_recorded")] == (1, 4)
    assert result.ranges[ref(JAN, dimension, "police", "referrals_online_not_assessed")] == (1, 9)
    assert [f.value for f in result.findings] == ["camhs"]


def test_a_finding_reads_as_a_sentence() -> None:
    [finding] = attack(month_and_quarter(with_quarter=True)).findings
    text = str(finding)
    assert text.startswith("suppressed monthly 2026-02-01 r0 events/outcome/NO_FURTHER_ACTION")
    assert "is 1..4" in text and "at least 1" in text and "at most 4" in text


# --- nothing to find ----------------------------------------------------------------


def test_two_suppressed_cells_beside_a_total_stay_wide() -> None:
    result = attack(breakdown(JAN, "outcome", {NFA: None, POLICE: None, CSC: 30}, 40))
    assert result.findings == []
    # a + b is 38-32..42-28 = 6..14, each at least 1.
    assert result.ranges == {
        ref(JAN, "outcome", NFA): (1, 13),
        ref(JAN, "outcome", POLICE): (1, 13),
    }


def quarter_of_published_months(quarter_nfa: int | None) -> list[Snapshot]:
    return [
        *breakdown(JAN, "outcome", {NFA: 10, POLICE: 20}, 30),
        *breakdown(FEB, "outcome", {NFA: 15, POLICE: 20}, 35),
        *breakdown(MAR, "outcome", {NFA: 20, POLICE: 20}, 40),
        *breakdown(Q1, "outcome", {NFA: quarter_nfa, POLICE: 60}, 105, "events", "board-quarterly"),
    ]


def test_a_quarter_of_published_months_leaks_nothing() -> None:
    result = attack(quarter_of_published_months(45))
    assert result.findings == [] and result.ranges == {}
    assert not result.split_revisions and not result.inconsistent


def test_a_large_quarter_cell_derived_from_the_months_is_no_finding() -> None:
    result = attack(quarter_of_published_months(None))
    assert result.findings == []
    # Months: 39..51; the quarter's total less its police referrals: 41..49.
    assert result.ranges == {ref(Q1, "outcome", NFA, publication="board-quarterly"): (41, 49)}


def test_a_month_without_the_breakdown_breaks_the_link() -> None:
    """February publishes no outcomes (true: 5 no further action, 20 police referrals), so
    the quarter's 25 less January's 10 (11..19) is not March's (which would be 11..14)."""
    snapshots = [
        *breakdown(JAN, "outcome", {NFA: 10, POLICE: 20}, 30),
        *cells(FEB, "events", "total", {"all": 25}),
        *breakdown(MAR, "outcome", {NFA: None, POLICE: 20}, 30),  # true 10
        *breakdown(Q1, "outcome", {NFA: 25, POLICE: 60}, 85, "events", "board-quarterly"),
    ]
    result = attack(snapshots)
    assert not result.split_revisions and result.findings == []
    assert result.ranges == {ref(MAR, "outcome", NFA): (6, 14)}


def test_a_withheld_breakdown_gives_nothing_away() -> None:
    counts: dict[str, int | None] = {NFA: None, POLICE: None, CSC: None}
    alone = attack(cells(JAN, "events", "outcome", counts))
    assert alone.findings == []
    assert set(alone.ranges.values()) == {(0, UNBOUNDED)}

    beside_total = attack(breakdown(JAN, "outcome", counts, 20))
    assert beside_total.findings == []
    assert set(beside_total.ranges.values()) == {(0, 22)}


def test_a_cell_absent_from_a_revision_changed_there() -> None:
    """Area A is absent from revision 1 (a true 0): it changed, so revision 0 (6..14) and
    revision 2 (1..9) are not taken for one value (6..9); B (10 throughout) is."""
    snapshots = [
        *breakdown(JAN, "area", {"A": None, "B": 10}, 20),  # true 7, 12
        *breakdown(JAN, "area", {"B": 10}, 10, revision=1),  # true 12
        *breakdown(JAN, "area", {"A": None, "B": 10}, 15, revision=2),  # true 3, 12
    ]
    result = attack(snapshots)
    assert not result.split_revisions and result.findings == []
    assert result.ranges == {
        ref(JAN, "area", "A"): (6, 14),
        ref(JAN, "area", "A", revision=2): (1, 9),
    }


def test_a_month_whose_latest_revision_lacks_a_cell_adds_0_to_the_quarter() -> None:
    """January's area A was suppressed, then absent: the quarter's 10 (8..12) less
    February's 10 (8..12) leaves March 1..4 (January at least 1 would say 1..3)."""
    snapshots = [
        *breakdown(JAN, "area", {"A": None, "B": 20}, 25),
        *breakdown(JAN, "area", {"B": 25}, 25, revision=1),
        *breakdown(FEB, "area", {"A": 10, "B": 20}, 30),
        *breakdown(MAR, "area", {"A": None, "B": 20}, 25),
        *breakdown(Q1, "area", {"A": 10, "B": 65}, 75, "events", "board-quarterly"),
    ]
    result = attack(snapshots)
    assert not result.split_revisions and not result.inconsistent
    [finding] = [f for f in result.findings if f.period_start == MAR[0]]
    assert (finding.value, finding.lo, finding.hi) == ("A", 1, 4)


# --- when the model does not hold -----------------------------------------------------


def test_an_inconsistent_revision_pair_splits_the_revisions() -> None:
    """NFA published 25, then suppressed while the total (45, unchanged) less police
    referrals (10) puts it at 31..39: it changed after all."""
    sex = {"F": None, "M": 20, "U": 25}
    snapshots = [
        *breakdown(JAN, "outcome", {NFA: 25, POLICE: 20}, 45),
        *cells(JAN, "events", "sex", sex),
        *breakdown(JAN, "outcome", {NFA: None, POLICE: 10}, 45, revision=1),
        *cells(JAN, "events", "sex", sex, revision=1),
    ]
    result = attack(snapshots)
    assert result.split_revisions and result.split_because
    assert not result.inconsistent
    assert result.ranges[ref(JAN, "outcome", NFA, revision=1)] == (31, 39)
    # Per revision, F is 45 - 20 - 25 give or take: 43-22-27..47-18-23, at least 1.
    assert [(f.cell, f.lo, f.hi) for f in result.findings] == [
        (ref(JAN, "sex", "F", revision=revision), 1, 6) for revision in (0, 1)
    ]


def test_publications_that_contradict_the_model_are_reported_not_raised() -> None:
    snapshots = [
        *breakdown(JAN, "outcome", {NFA: 30, POLICE: 30, CSC: None}, 10),
        *cells(FEB, "events", "outcome", {NFA: 5, POLICE: None}),
    ]
    result = attack(snapshots)
    assert result.split_revisions
    assert len(result.inconsistent) >= 2
    assert any("published 5" in line for line in result.inconsistent)


# --- sound on publications of known counts --------------------------------------------

OUTCOMES = (NFA, POLICE, CSC, "EARLY_HELP")
RISKS = ("GROOMING", "SEXTORTION", "CYBERBULLYING")
AGENCIES = ("camhs", "police")


def small(rng: random.Random, most: int = 30) -> int:
    """Often 0, often 1..9, otherwise up to `most`."""
    return rng.choice((0, rng.randint(1, 9), rng.randint(0, most)))


def true_month(rng: random.Random) -> Truth:
    truth: Truth = {}
    for outcome in OUTCOMES:
        events = truth["events", "outcome", outcome] = small(rng)
        truth["children", "outcome", outcome] = rng.randint(0, events)
    _totals(truth)
    truth["pseudonyms", "total", "all"] = rng.randint(
        truth["children", "total", "all"], truth["events", "total", "all"]
    )
    for risk in RISKS:
        truth["events", "risk_code", risk] = rng.randint(0, truth["events", "total", "all"])
    for agency in AGENCIES:
        referrals = truth["referrals", "agency", agency] = small(rng)
        assessed = truth["referrals_online_not_assessed", "agency", agency] = rng.randint(
            0, referrals
        )
        truth["referrals_online_not_recorded", "agency", agency] = rng.randint(
            0, referrals - assessed
        )
    return truth


def _totals(truth: Truth) -> None:
    for measure in ("events", "children"):
        truth[measure, "total", "all"] = sum(
            truth[measure, "outcome", outcome] for outcome in OUTCOMES
        )


def true_quarter(rng: random.Random, months: list[Truth]) -> Truth:
    """Events and referrals add up; children and pseudonyms lie between the largest
    month and the sum, within the quarter's events."""
    truth: Truth = {
        cell: sum(month[cell] for month in months)
        for cell in months[0]
        if cell[0] not in ("children", "pseudonyms")
    }
    for outcome in OUTCOMES:
        each = [month["children", "outcome", outcome] for month in months]
        truth["children", "outcome", outcome] = rng.randint(max(each), sum(each))
    _totals(truth)
    each = [month["pseudonyms", "total", "all"] for month in months]
    least = max(truth["children", "total", "all"], max(each))
    truth["pseudonyms", "total", "all"] = rng.randint(
        least, min(truth["events", "total", "all"], sum(each))
    )
    return truth


def published(truth: Truth, span: Span, publication: str) -> list[Snapshot]:
    """Every cell published as the rule says, with no secondary suppression."""
    return [
        snapshot
        for (measure, dimension, value), count in truth.items()
        for snapshot in cells(span, measure, dimension, {value: published_as(count)}, publication)
    ]


def scenario(seed: int) -> tuple[list[Snapshot], dict[CellRef, int]]:
    rng = random.Random(seed)
    months = [true_month(rng) for _ in (JAN, FEB, MAR)]
    releases = [
        *((span, "monthly", truth) for span, truth in zip((JAN, FEB, MAR), months, strict=True)),
        (Q1, "board-quarterly", true_quarter(rng, months)),
    ]
    snapshots: list[Snapshot] = []
    truths: dict[CellRef, int] = {}
    for span, publication, truth in releases:
        snapshots += published(truth, span, publication)
        for (measure, dimension, value), count in truth.items():
            truths[ref(span, dimension, value, measure, publication)] = count
    return snapshots, truths


@pytest.mark.parametrize("seed", range(40))
def test_every_range_holds_the_true_count(seed: int) -> None:
    snapshots, truths = scenario(seed)
    result = attack(snapshots)
    assert not result.split_revisions and not result.inconsistent
    assert result.ranges
    wrong = {
        str(cell): (lo, hi, truths[cell])
        for cell, (lo, hi) in result.ranges.items()
        if not lo <= truths[cell] <= hi
    }
    assert not wrong


def test_the_known_counts_do_leak_without_secondary_suppression() -> None:
    """The attacker is not vacuous on them: primary suppression alone gives cells away."""
    results = (attack(scenario(seed)[0]) for seed in range(40))
    assert any(result.findings for result in results)
