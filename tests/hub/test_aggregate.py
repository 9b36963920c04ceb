"""Trend cells for a period: hand-checked true counts, additivity, disclosure, determinism.

The expected counts in the hand-built example are written out by hand from
the records below, not computed by ``streams.aggregate``. The disclosure property
carries its own attacker: what each published cell can hide is found by
enumeration, with rounding done in ``decimal``.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.codec import Codec
from hub.disclosure import DisclosureRule, suppressed_sum_range
from hub.models import AgencyType, Outcome, Role, Sex, Vulnerability
from hub.taxonomy import CELLS, Taxonomy
from streams.aggregate import (
    ADDITIVE,
    Cell,
    is_additive,
    linked_subjects,
    period_cells,
    protect_cells,
    true_breakdowns,
)
from streams.records import RecordVersion
from tests.support.events import sample_event

TAXONOMY = Taxonomy()
PARTNERS = ("camhs", "police", "nursing", "youth")
AGENCY_TYPE = {
    "camhs": "CAMHS",
    "police": "POLICE",
    "nursing": "SCHOOL_NURSING",
    "youth": "YOUTH_SERVICE",
    "counselling": "COUNSELLING",  # not in PARTNERS: an agency outside the agreement
}
JAN = (date(2025, 1, 1), date(2025, 1, 31))
FEB = (date(2025, 2, 1), date(2025, 2, 28))
OPEN_RULE = DisclosureRule(suppress_at_or_below=0, round_to=1)


def rv(
    key: str,
    agency: str,
    occurred_on: str,
    subject: str | None,
    *,
    online: str = "YES",
    event_type: str = "INCIDENT",
    codes: tuple[str, ...] = (),
    live: bool = True,
    age_band: str = "13-15",
    sex: str = "FEMALE",
    area: str = "E01",
    threshold: int | None = None,
    vulnerabilities: tuple[str, ...] = (),
    role: str = "VICTIM",
    outcome: str = "UNKNOWN",
    previous: tuple[str, ...] = (),
    basis: str = "NHS_NUMBER",
) -> RecordVersion:
    return RecordVersion(
        record_key=key,
        version=1,
        live=live,
        agency=agency,
        agency_type=AGENCY_TYPE[agency],
        event_type=event_type if live else "WITHDRAWN",
        subject=subject,
        basis=basis if subject else "NONE",
        occurred_on=occurred_on,
        age_band=age_band,
        sex=sex,
        area=area,
        threshold=threshold,
        vulnerabilities=tuple(sorted(vulnerabilities)),
        online=online,
        codes=tuple(sorted(codes)),
        role=role,
        outcome=outcome,
        previous=previous,
    )


RECORDS = [
    # s1: known to camhs before January (no online component), then to police in January.
    rv("k01", "camhs", "2024-12-10", "s1", online="NO", event_type="REFERRAL"),
    rv(
        "k02",
        "police",
        "2025-01-05",
        "s1",
        codes=("GROOMING", "SEXTORTION"),
        threshold=3,
        vulnerabilities=("SEN",),
        outcome="POLICE_REFERRAL",
    ),
    rv(
        "k03",
        "police",
        "2025-01-20",
        "s1",
        event_type="REFERRAL",
        codes=("CYBERBULLYING",),
        age_band="16-17",
        area="E02",
        vulnerabilities=("LOOKED_AFTER", "SEN"),
        role="BOTH",
        outcome="EARLY_HELP",
    ),
    # s2: two camhs records on the same day; k13 is the latest by record key.
    rv(
        "k04",
        "camhs",
        "2025-01-12",
        "s2",
        event_type="REFERRAL",
        codes=("EATING_DISORDER_CONTENT", "SELF_HARM_CONTENT"),
        sex="MALE",
        threshold=2,
        outcome="CAMHS_REFERRAL",
    ),
    rv(
        "k13",
        "camhs",
        "2025-01-12",
        "s2",
        codes=("CYBERBULLYING",),
        age_band="16-17",
        sex="MALE",
        area="E03",
        role="PERPETRATOR",
        outcome="ADVICE_GIVEN",
    ),
    # No linkable subject: an event, never a child.
    rv(
        "k05",
        "camhs",
        "2025-01-15",
        None,
        codes=("SCAMS_FRAUD",),
        age_band="10-12",
        sex="UNKNOWN",
        area="E02",
    ),
    # Referrals whose online component was not assessed: the data gap.
    rv("k06", "nursing", "2025-01-18", "s3", online="NOT_ASSESSED", event_type="REFERRAL"),
    rv("k07", "nursing", "2025-01-25", "s3", online="NOT_ASSESSED", event_type="REFERRAL"),
    # The youth service's system does not record the online component (its profile says
    # so): its referrals are "not recorded", never "not assessed", and never online events.
    rv("k15", "youth", "2025-01-08", "s6", online="NOT_RECORDED", event_type="REFERRAL"),
    rv("k16", "youth", "2025-01-22", "s6", online="NOT_RECORDED", event_type="REFERRAL"),
    rv("k17", "youth", "2025-01-23", "s6", online="NOT_RECORDED"),  # not a referral
    rv("k18", "youth", "2025-01-29", "s7", online="NOT_RECORDED", live=False),  # withdrawn
    # Withdrawn: counts nowhere, not even towards the agencies that know s4.
    rv("k08", "nursing", "2025-01-28", "s4", codes=("GROOMING",), live=False),
    # February.
    rv("k09", "police", "2025-02-03", "s2", codes=("GROOMING",)),
    rv("k10", "camhs", "2025-02-10", "s4", event_type="REFERRAL", codes=("ONLINE_HARASSMENT",)),
    rv("k11", "police", "2025-02-14", "s5", online="NO", event_type="REFERRAL"),
    rv("k12", "camhs", "2025-02-20", "s2", online="NOT_ASSESSED", event_type="REFERRAL"),
    rv("k19", "youth", "2025-02-11", "s6", online="NOT_RECORDED", event_type="REFERRAL"),
    # After February: does not make s4 known to police in February.
    rv("k14", "police", "2025-03-05", "s4", online="NO"),
]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {value: n for value, n in counts.items() if n}


@pytest.fixture(scope="module")
def january() -> dict[tuple[str, str], dict[str, int]]:
    return true_breakdowns(RECORDS, *JAN, TAXONOMY, PARTNERS)


@pytest.fixture(scope="module")
def february() -> dict[tuple[str, str], dict[str, int]]:
    return true_breakdowns(RECORDS, *FEB, TAXONOMY, PARTNERS)


def test_january_events_by_hand(january: dict[tuple[str, str], dict[str, int]]) -> None:
    assert january["events", "total"] == {"all": 5}
    assert nonzero(january["events", "risk_code"]) == {
        "GROOMING": 1,
        "SEXTORTION": 1,
        "CYBERBULLYING": 2,
        "EATING_DISORDER_CONTENT": 1,
        "SELF_HARM_CONTENT": 1,
        "SCAMS_FRAUD": 1,
    }
    # Two codes in one cell count the record once in that cell.
    assert nonzero(january["events", "cell_4c"]) == {
        "CONTACT_SEXUAL": 1,
        "CONDUCT_AGGRESSIVE": 2,
        "CONDUCT_VALUES": 1,
        "CONTRACT_AGGRESSIVE": 1,
    }
    assert nonzero(january["events", "agency_type"]) == {"CAMHS": 3, "POLICE": 2}
    assert january["events", "sex"] == {"FEMALE": 2, "MALE": 2, "OTHER": 0, "UNKNOWN": 1}
    assert january["events", "age_band"] == {"10-12": 1, "13-15": 2, "16-17": 2}
    assert january["events", "area"] == {"E01": 2, "E02": 2, "E03": 1}
    assert january["events", "threshold_level"] == {
        "1": 0,
        "2": 1,
        "3": 1,
        "4": 0,
        "unknown": 3,
    }
    assert nonzero(january["events", "vulnerability"]) == {"SEN": 2, "LOOKED_AFTER": 1}
    # k02, k03, k04 and k13 have an NHS-number subject; k05 none.
    assert january["events", "subject_basis"] == {
        "NHS_NUMBER": 4,
        "NAME_DOB": 0,
        "LOCAL_ID": 0,
        "NONE": 1,
    }
    assert january["pseudonyms", "total"] == {"all": 2}  # s1 and s2


def test_january_children_by_hand(january: dict[tuple[str, str], dict[str, int]]) -> None:
    assert january["children", "total"] == {"all": 2}
    # Single-valued: each child once, from its latest record (s1: k03; s2: k13 by key).
    assert january["children", "age_band"] == {"10-12": 0, "13-15": 0, "16-17": 2}
    assert january["children", "sex"] == {"FEMALE": 1, "MALE": 1, "OTHER": 0, "UNKNOWN": 0}
    assert january["children", "area"] == {"E01": 0, "E02": 1, "E03": 1}
    assert nonzero(january["children", "role"]) == {"BOTH": 1, "PERPETRATOR": 1}
    assert nonzero(january["children", "outcome"]) == {"EARLY_HELP": 1, "ADVICE_GIVEN": 1}
    assert nonzero(january["children", "threshold_level"]) == {"unknown": 2}
    # Multi-valued: a child under every value any of its records has.
    assert nonzero(january["children", "risk_code"]) == {
        "GROOMING": 1,
        "SEXTORTION": 1,
        "CYBERBULLYING": 2,
        "EATING_DISORDER_CONTENT": 1,
        "SELF_HARM_CONTENT": 1,
    }
    assert nonzero(january["children", "cell_4c"]) == {
        "CONTACT_SEXUAL": 1,
        "CONDUCT_AGGRESSIVE": 2,
        "CONDUCT_VALUES": 1,
    }
    assert nonzero(january["children", "vulnerability"]) == {"SEN": 1, "LOOKED_AFTER": 1}
    assert nonzero(january["children", "agency_type"]) == {"CAMHS": 1, "POLICE": 1}
    # s1 is known to camhs from December; s2 only to camhs.
    assert january["children", "known_to_agencies"] == {"1": 1, "2+": 1}


def test_january_referrals_by_hand(january: dict[tuple[str, str], dict[str, int]]) -> None:
    assert january["referrals", "agency"] == {"camhs": 1, "police": 1, "nursing": 2, "youth": 2}
    assert january["referrals_online_not_assessed", "agency"] == {
        "camhs": 0,
        "police": 0,
        "nursing": 2,
        "youth": 0,
    }
    # The youth service's two live referrals: not recorded, apart from "not assessed".
    assert january["referrals_online_not_recorded", "agency"] == {
        "camhs": 0,
        "police": 0,
        "nursing": 0,
        "youth": 2,
    }


def test_february_by_hand(february: dict[tuple[str, str], dict[str, int]]) -> None:
    assert february["events", "total"] == {"all": 2}
    assert nonzero(february["events", "risk_code"]) == {"GROOMING": 1, "ONLINE_HARASSMENT": 1}
    assert nonzero(february["events", "agency_type"]) == {"CAMHS": 1, "POLICE": 1}
    assert february["children", "total"] == {"all": 2}
    assert nonzero(february["events", "subject_basis"]) == {"NHS_NUMBER": 2}  # k09, k10
    assert february["pseudonyms", "total"] == {"all": 2}  # s2 and s4
    # s2: camhs (January) and police; s4: camhs only (nursing withdrawn, police in March).
    assert february["children", "known_to_agencies"] == {"1": 1, "2+": 1}
    assert february["referrals", "agency"] == {"camhs": 2, "police": 1, "nursing": 0, "youth": 1}
    assert february["referrals_online_not_assessed", "agency"] == {
        "camhs": 1,
        "police": 0,
        "nursing": 0,
        "youth": 0,
    }
    assert february["referrals_online_not_recorded", "agency"] == {
        "camhs": 0,
        "police": 0,
        "nursing": 0,
        "youth": 1,
    }


def test_not_recorded_referrals_count_apart_from_not_assessed() -> None:
    """The same referrals, once recorded as not assessed and once from a system that does
    not record the online component: only the data-gap measure they count in changes."""
    not_assessed = [
        RecordVersion(
            record_key=f"r{i}",
            version=1,
            live=True,
            agency="nursing",
            agency_type="SCHOOL_NURSING",
            event_type="REFERRAL",
            subject=f"t{i}",
            basis="NHS_NUMBER",
            occurred_on="2025-01-10",
            age_band="13-15",
            sex="FEMALE",
            area="E01",
            threshold=None,
            vulnerabilities=(),
            online="NOT_ASSESSED",
            codes=(),
            role="VICTIM",
            outcome="UNKNOWN",
        )
        for i in range(3)
    ]
    not_recorded = [r._replace(online="NOT_RECORDED") for r in not_assessed]
    before = true_breakdowns(not_assessed, *JAN, TAXONOMY, PARTNERS)
    after = true_breakdowns(not_recorded, *JAN, TAXONOMY, PARTNERS)
    assert nonzero(before["referrals", "agency"]) == nonzero(after["referrals", "agency"])
    assert nonzero(after["referrals", "agency"]) == {"nursing": 3}
    assert nonzero(before["referrals_online_not_assessed", "agency"]) == {"nursing": 3}
    assert nonzero(before["referrals_online_not_recorded", "agency"]) == {}
    assert nonzero(after["referrals_online_not_assessed", "agency"]) == {}
    assert nonzero(after["referrals_online_not_recorded", "agency"]) == {"nursing": 3}
    moved = {"referrals_online_not_assessed", "referrals_online_not_recorded"}
    assert {k: v for k, v in before.items() if k[0] not in moved} == {
        k: v for k, v in after.items() if k[0] not in moved
    }
    assert after["events", "total"] == after["children", "total"] == {"all": 0}


def test_every_enumerated_value_is_listed_in_a_fixed_order(
    january: dict[tuple[str, str], dict[str, int]],
) -> None:
    for measure in ("events", "children"):
        assert list(january[measure, "sex"]) == list(Sex)
        assert list(january[measure, "role"]) == list(Role)
        assert list(january[measure, "outcome"]) == list(Outcome)
        assert list(january[measure, "agency_type"]) == list(AgencyType)
        assert list(january[measure, "vulnerability"]) == list(Vulnerability)
        assert list(january[measure, "risk_code"]) == list(TAXONOMY.codes)
        assert list(january[measure, "cell_4c"]) == list(CELLS)
        assert list(january[measure, "threshold_level"]) == ["1", "2", "3", "4", "unknown"]
    assert list(january["referrals", "agency"]) == list(PARTNERS)
    assert list(january["referrals_online_not_recorded", "agency"]) == list(PARTNERS)
    assert list(january["events", "subject_basis"]) == [
        "NHS_NUMBER",
        "NAME_DOB",
        "LOCAL_ID",
        "NONE",
    ]
    assert list(january["pseudonyms", "total"]) == ["all"]
    assert list(january) == sorted(january)


def test_values_outside_the_enumeration_are_kept() -> None:
    records = [
        rv("k1", "camhs", "2025-01-02", "s1", codes=("RETIRED_LOCAL_CODE",), threshold=5),
        rv("k2", "police", "2025-01-03", "s2", event_type="REFERRAL"),
    ]
    counts = true_breakdowns(records, *JAN, TAXONOMY, ["camhs"])
    assert list(counts["events", "risk_code"])[-1] == "RETIRED_LOCAL_CODE"
    assert counts["events", "cell_4c"]["UNMAPPED"] == 1
    assert counts["events", "threshold_level"]["5"] == 1
    assert counts["referrals", "agency"] == {"camhs": 0, "police": 1}


def test_an_open_rule_publishes_the_true_counts(
    january: dict[tuple[str, str], dict[str, int]],
) -> None:
    cells = period_cells(RECORDS, *JAN, TAXONOMY, PARTNERS, OPEN_RULE)
    expected = [
        Cell(measure, dimension, value, n, False)
        for (measure, dimension), counts in january.items()
        for value, n in counts.items()
    ]
    assert cells == expected


def test_the_default_rule_withholds_the_small_example() -> None:
    cells = period_cells(RECORDS, *JAN, TAXONOMY, PARTNERS, DisclosureRule())
    assert cells and all(cell.count is None and cell.suppressed for cell in cells)


def test_an_inconsistent_additive_total_is_refused() -> None:
    breakdowns = {("events", "total"): {"all": 20}, ("events", "sex"): {"FEMALE": 10, "MALE": 9}}
    with pytest.raises(ValueError, match="not the sum"):
        protect_cells(breakdowns, OPEN_RULE)
    by_basis = {("events", "total"): {"all": 20}, ("events", "subject_basis"): {"NONE": 19}}
    with pytest.raises(ValueError, match="not the sum"):
        protect_cells(by_basis, OPEN_RULE)


def test_additive_breakdowns_are_the_partitions() -> None:
    assert is_additive("children", "known_to_agencies")
    assert is_additive("events", "agency_type")
    assert not is_additive("children", "agency_type")
    assert is_additive("referrals_online_not_recorded", "agency")
    assert is_additive("events", "subject_basis")
    # A linked child can have pseudonyms of several bases; pseudonyms is a total only.
    assert not is_additive("children", "subject_basis")
    assert not is_additive("pseudonyms", "total")
    for measure in ("events", "children"):
        for dimension in ("risk_code", "cell_4c", "vulnerability"):
            assert not is_additive(measure, dimension)


# --- Generated records -------------------------------------------------------------------

CODES = ("GROOMING", "SEXTORTION", "CYBERBULLYING", "SCAMS_FRAUD", "SELF_HARM_CONTENT")
DATES = ("2024-12-30", "2025-01-01", "2025-01-09", "2025-01-15", "2025-01-31", "2025-02-01")
SUBJECTS = tuple(f"s{n}" for n in range(20))
record = st.builds(
    rv,
    st.just("k"),
    st.sampled_from(PARTNERS),
    st.sampled_from(DATES),
    st.one_of(st.none(), st.sampled_from(SUBJECTS)),
    online=st.sampled_from(("YES", "YES", "NO", "NOT_ASSESSED", "NOT_RECORDED")),
    event_type=st.sampled_from(("REFERRAL", "INCIDENT")),
    codes=st.lists(st.sampled_from(CODES), max_size=3, unique=True).map(tuple),
    live=st.integers(0, 5).map(bool),
    age_band=st.sampled_from(("10-12", "13-15", "16-17")),
    sex=st.sampled_from(("FEMALE", "MALE")),
    area=st.sampled_from(("E01", "E02")),
    threshold=st.one_of(st.none(), st.integers(1, 4)),
    vulnerabilities=st.lists(st.sampled_from(("SEN", "LOOKED_AFTER")), unique=True).map(tuple),
    role=st.sampled_from(("VICTIM", "PERPETRATOR")),
    outcome=st.sampled_from(("ADVICE_GIVEN", "EARLY_HELP")),
    previous=st.lists(st.sampled_from(SUBJECTS), max_size=2, unique=True).map(tuple),
    basis=st.sampled_from(("NHS_NUMBER", "NAME_DOB", "LOCAL_ID", "OTHER")),
)
record_sets = st.one_of(
    st.lists(record, max_size=15), st.lists(record, min_size=30, max_size=80)
).map(lambda records: [r._replace(record_key=f"k{i:03d}") for i, r in enumerate(records)])


def in_january(record: RecordVersion) -> bool:
    return record.live and "2025-01-01" <= record.occurred_on <= "2025-01-31"


def groups(records: list[RecordVersion]) -> dict[str, int]:
    """Pseudonym -> the number of its child: the connected groups of subjects and the
    pseudonyms live records name beside them, found by a breadth-first search."""
    neighbours: dict[str, set[str]] = {}
    for r in records:
        if r.live and r.subject is not None:
            for other in (r.subject, *r.previous):
                neighbours.setdefault(r.subject, set()).add(other)
                neighbours.setdefault(other, set()).add(r.subject)
    group: dict[str, int] = {}
    for start in sorted(neighbours):
        if start not in group:
            group[start], queue = len(group), [start]
            while queue:
                for other in neighbours[queue.pop()]:
                    if other not in group:
                        group[other] = group[start]
                        queue.append(other)
    return group


@settings(max_examples=40, deadline=None)
@given(record_sets)
def test_additive_breakdowns_add_up_to_their_totals(records: list[RecordVersion]) -> None:
    counts = true_breakdowns(records, *JAN, TAXONOMY, PARTNERS)
    online = [r for r in records if in_january(r) and r.online == "YES"]
    referrals = [r for r in records if in_january(r) and r.event_type == "REFERRAL"]
    child = groups(records)
    pseudonyms = {r.subject for r in online if r.subject is not None}
    totals = {
        "events": len(online),
        "children": len({child[p] for p in pseudonyms}),
        "pseudonyms": len(pseudonyms),
        "referrals": len(referrals),
        "referrals_online_not_assessed": sum(r.online == "NOT_ASSESSED" for r in referrals),
        "referrals_online_not_recorded": sum(r.online == "NOT_RECORDED" for r in referrals),
    }
    assert counts["events", "total"] == {"all": totals["events"]}
    assert counts["children", "total"] == {"all": totals["children"]}
    assert counts["pseudonyms", "total"] == {"all": totals["pseudonyms"]}
    assert totals["pseudonyms"] >= totals["children"]
    for measure, dimension in ADDITIVE:
        assert sum(counts[measure, dimension].values()) == totals[measure], (measure, dimension)


def half_up(count: int, step: int) -> int:
    return int((Decimal(count) / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


def publication(count: int, rule: DisclosureRule) -> int:
    rounded = half_up(count, rule.round_to)
    while 1 <= rounded <= rule.suppress_at_or_below:
        rounded += rule.round_to
    return rounded


def hidden_by(published: int, rule: DisclosureRule) -> tuple[int, int]:
    """Every true count an unsuppressed cell published as ``published`` could be."""
    possible = [
        n
        for n in range(0, published + rule.round_to + 1)
        if publication(n, rule) == published and not rule.is_small(n)
    ]
    return min(possible), max(possible)


rules = st.builds(
    DisclosureRule,
    suppress_at_or_below=st.integers(1, 5),
    round_to=st.integers(1, 5),
    secondary_suppression=st.just(True),
)


@settings(max_examples=100, deadline=None)
@given(record_sets, rules)
def test_no_small_number_is_published_or_derivable(
    records: list[RecordVersion], rule: DisclosureRule
) -> None:
    threshold = rule.suppress_at_or_below
    counts = true_breakdowns(records, *JAN, TAXONOMY, PARTNERS)
    cells = period_cells(records, *JAN, TAXONOMY, PARTNERS, rule)
    for cell in cells:
        assert cell.suppressed == (cell.count is None)
        if cell.count is not None:
            assert not 1 <= cell.count <= threshold, cell
            assert cell.count % rule.round_to == 0
    published: dict[tuple[str, str], dict[str, int | None]] = {}
    for cell in cells:
        published.setdefault((cell.measure, cell.dimension), {})[cell.value] = cell.count
    assert list(published) == [key for key, values in counts.items() if values]
    for key in ADDITIVE:
        true_total = sum(counts[key].values())
        shown = published.get(key, {})
        hidden = [value for value, n in shown.items() if n is None]
        if not hidden:
            continue
        if 1 <= true_total <= threshold:
            # A small total: everything withheld, the total cell included.
            assert all(n is None for n in shown.values())
            if (key[0], "total") in published:
                assert published[key[0], "total"] == {"all": None}
            continue
        # The attacker knows the true total exactly.
        assert len(hidden) >= 2, key
        low = sum(hidden_by(n, rule)[0] for n in shown.values() if n is not None)
        assert true_total - low > threshold, key
        assert suppressed_sum_range(shown, true_total, rule)[1] > threshold, key
    # Pseudonyms beside children: their difference (pseudonyms linkage joined) must not
    # be pinned into 1..threshold.
    pseudonyms, children = (
        published["pseudonyms", "total"]["all"],
        published["children", "total"]["all"],
    )
    if pseudonyms is not None and children is not None:
        joined_low = max(0, hidden_by(pseudonyms, rule)[0] - hidden_by(children, rule)[1])
        joined_high = hidden_by(pseudonyms, rule)[1] - hidden_by(children, rule)[0]
        assert not 1 <= joined_low <= joined_high <= threshold, (pseudonyms, children)


@settings(max_examples=20, deadline=None)
@given(record_sets, st.randoms(use_true_random=False))
def test_shuffled_input_gives_the_same_cells(records: list[RecordVersion], random: Random) -> None:
    shuffled = list(records)
    random.shuffle(shuffled)
    rule = DisclosureRule(suppress_at_or_below=2, round_to=2)
    for start, end in (JAN, FEB):
        assert period_cells(shuffled, start, end, TAXONOMY, PARTNERS, rule) == period_cells(
            records, start, end, TAXONOMY, PARTNERS, rule
        )


# -- linkage across a key rotation --

#: One child, "old-A" under the previous key and "new-A" under the current one;
#: after the rotation police sends both (subject and previous_subjects).
ROTATION = [
    rv("c1", "camhs", "2025-01-05", "old-A"),
    rv("p1", "police", "2025-01-20", "new-A", previous=("old-A",)),
    rv("n1", "nursing", "2025-01-25", "new-A"),
    rv("c2", "camhs", "2025-01-09", "old-B"),  # another child, never linked
]


def test_a_childs_pseudonyms_under_old_and_new_keys_count_once() -> None:
    counts = true_breakdowns(ROTATION, *JAN, TAXONOMY, PARTNERS)
    assert counts["children", "total"] == {"all": 2}
    assert nonzero(counts["children", "known_to_agencies"]) == {"2+": 1, "1": 1}
    assert counts["events", "total"] == {"all": 4}
    # Without the link the same records are three children, none known to two agencies
    # through camhs and police.
    unlinked = [r._replace(previous=()) for r in ROTATION]
    assert true_breakdowns(unlinked, *JAN, TAXONOMY, PARTNERS)["children", "total"] == {"all": 3}


def test_links_chain_across_rotations_in_any_order() -> None:
    random = Random(6)
    chain = [
        rv("c1", "camhs", "2025-01-05", "k1-A"),
        rv("p1", "police", "2025-01-06", "k2-A", previous=("k1-A",)),
        rv("n1", "nursing", "2025-01-07", "k3-A", previous=("k2-A",)),
        rv("c2", "camhs", "2025-01-08", "k3-B", previous=("k2-B", "k1-B")),
        rv("w1", "police", "2025-01-09", "k3-C", previous=("k3-A",), live=False),
    ]
    for _ in range(10):
        random.shuffle(chain)
        assert linked_subjects(chain) == {
            "k2-A": "k1-A",
            "k3-A": "k1-A",
            "k2-B": "k1-B",
            "k3-B": "k1-B",
        }  # a withdrawn record links nothing
        counts = true_breakdowns(chain, *JAN, TAXONOMY, PARTNERS)
        assert counts["children", "total"] == {"all": 2}


def test_changelog_batches_from_before_the_link_still_decode() -> None:
    record = ROTATION[1]
    assert RecordVersion.from_json(record.to_json()) == record
    assert RecordVersion.from_json(record.to_json()[:18]) == record._replace(previous=())


def test_a_decoded_event_keeps_its_earlier_pseudonyms() -> None:
    codec = Codec("case_event")
    decoded = codec.decode(codec.encode(sample_event().to_avro()))
    version = RecordVersion.from_event(decoded)
    assert version.subject == "c" * 64
    # Under the earlier key, then on the record's other identifier (name + DOB).
    assert version.previous == ("d" * 64, "e" * 64)


def test_children_link_through_every_identifier_across_three_agencies_and_a_rotation() -> None:
    """School nursing knows the child by NHS number only, CAMHS by NHS number and name +
    date of birth, the police by name + date of birth and a person id (after a key
    rotation): mapped by the real profiles, the three records are one child."""
    from adapters.mapping import RowMapper
    from adapters.profile import load_profile
    from hub.pseudonymise import KeyRing, Pseudonymiser

    ring = KeyRing.generate("k1")
    rows = {
        "school-nursing": {"Event ID": "N1", "Contact Date": "05 Jan 2025",
                           "NHS Number": "943 476 5919", "Online Safety Concern": "Yes",
                           "Concern Type": "Sexting"},
        "camhs": {"Referral ID": "R1", "Activity Type": "Referral", "Referral Date": "06/01/2025",
                  "NHS No": "9434765919", "Surname": "O'Brien", "Forename": "Zoë",
                  "DOB": "02/05/2012", "Online Harm Identified": "Yes",
                  "Online Risks": "Online grooming"},
        "police": {"Occurrence Number": "OC1", "Occurrence Type": "Crime",
                   "Date Reported": "07/01/2025", "Nominal ID": "P9", "Surname": "OBRIEN",
                   "Forename 1": "zoe", "DOB": "02/05/2012", "Online Flag": "Y",
                   "Offence": "Harassment"},
    }  # fmt: skip
    codec = Codec("case_event")
    records = []
    for agency, raw in rows.items():
        keys = ring.rotated("k2") if agency == "police" else ring  # the police rotated first
        mapper = RowMapper(load_profile(agency), Pseudonymiser(keys), "t", agency=agency)
        event = mapper.map(2, raw)
        records.append(RecordVersion.from_event(codec.decode(codec.encode(event.to_avro()))))
    partners = ("camhs", "police", "school-nursing")
    counts = true_breakdowns(records, *JAN, TAXONOMY, partners)
    assert counts["events", "total"] == {"all": 3}
    assert counts["children", "total"] == {"all": 1}
    assert nonzero(counts["children", "known_to_agencies"]) == {"2+": 1}
    alone = [r._replace(previous=()) for r in records]
    assert true_breakdowns(alone, *JAN, TAXONOMY, partners)["children", "total"] == {"all": 2}


# -- linkage: events by subject basis, pseudonyms before linkage --

#: January. Child A: camhs knows it by NHS number and also sends its name + date of birth
#: pseudonym (``previous``); the police know it by name + date of birth only. Child B: the
#: counselling service's anonymous user id (a local id, scoped to that agency). Child C:
#: school nursing by NHS number, and the youth service by its own local id, which links
#: only within the youth service, so C counts as two children.
LINKAGE = [
    rv("a1", "camhs", "2025-01-04", "nhs-A", previous=("name-A",)),
    rv("a2", "police", "2025-01-11", "name-A", basis="NAME_DOB"),
    rv("b1", "counselling", "2025-01-06", "local-B", basis="LOCAL_ID"),
    rv("b2", "counselling", "2025-01-19", "local-B", basis="LOCAL_ID"),
    rv("c1", "nursing", "2025-01-08", "nhs-C"),
    rv("c2", "youth", "2025-01-21", "local-C", basis="LOCAL_ID"),
    rv("g1", "camhs", "2025-01-22", "other-G", basis="OTHER"),  # a basis outside the list
    rv("n1", "camhs", "2025-01-14", None),  # no linkable subject
    rv("x1", "police", "2025-01-15", "nhs-D", online="NO"),  # not an online event
    rv("x2", "nursing", "2025-01-16", "nhs-E", live=False),  # withdrawn
    rv("x3", "camhs", "2025-02-02", "nhs-F"),  # February
]


def test_linkage_cells_by_hand() -> None:
    counts = true_breakdowns(LINKAGE, *JAN, TAXONOMY, PARTNERS)
    # Online events in January: a1 a2 b1 b2 c1 c2 g1 n1.
    assert counts["events", "total"] == {"all": 8}
    assert counts["events", "subject_basis"] == {
        "NHS_NUMBER": 2,  # a1, c1
        "NAME_DOB": 1,  # a2
        "LOCAL_ID": 3,  # b1, b2, c2
        "NONE": 1,  # n1
        "OTHER": 1,  # g1, appended after the listed bases
    }
    # nhs-A, name-A, local-B, nhs-C, local-C, other-G; linkage joins nhs-A and name-A.
    assert counts["pseudonyms", "total"] == {"all": 6}
    assert counts["children", "total"] == {"all": 5}
    assert nonzero(counts["children", "known_to_agencies"]) == {"1": 4, "2+": 1}  # A
    # Without the link the two pseudonyms are two children; the pseudonyms do not change.
    unlinked = true_breakdowns([r._replace(previous=()) for r in LINKAGE], *JAN, TAXONOMY, PARTNERS)
    assert unlinked["children", "total"] == unlinked["pseudonyms", "total"] == {"all": 6}
    # A pseudonym only named in ``previous`` is not one of the period's pseudonyms.
    alone = true_breakdowns([r for r in LINKAGE if r.record_key != "a2"], *JAN, TAXONOMY, PARTNERS)
    assert alone["pseudonyms", "total"] == alone["children", "total"] == {"all": 5}
    february = true_breakdowns(LINKAGE, *FEB, TAXONOMY, PARTNERS)
    assert nonzero(february["events", "subject_basis"]) == {"NHS_NUMBER": 1}
    assert february["pseudonyms", "total"] == {"all": 1}


def test_linkage_cells_are_protected_by_hand() -> None:
    """Events by subject basis are additive against the events total (40): the one small
    basis is suppressed, and the next smallest with it, since a lone hidden cell is the
    total less the others; the true zero is published."""
    breakdowns = {
        ("children", "total"): {"all": 30},
        ("events", "subject_basis"): {"NHS_NUMBER": 28, "NAME_DOB": 10, "LOCAL_ID": 2, "NONE": 0},
        ("events", "total"): {"all": 40},
        ("pseudonyms", "total"): {"all": 33},
    }
    cells = {
        (c.measure, c.dimension, c.value): c.count
        for c in protect_cells(breakdowns, DisclosureRule())
    }
    assert cells == {
        ("children", "total", "all"): 30,
        # 30 and 0 published: the hidden two are 8..12 together, each 1..11.
        ("events", "subject_basis", "NHS_NUMBER"): 30,
        ("events", "subject_basis", "NAME_DOB"): None,  # secondary
        ("events", "subject_basis", "LOCAL_ID"): None,  # primary
        ("events", "subject_basis", "NONE"): 0,
        ("events", "total", "all"): 40,
        # 35 and 30 published: 33..37 pseudonyms, 28..32 children, 1..9 joined.
        ("pseudonyms", "total", "all"): 35,
    }
    # Without rounding, 6 pseudonyms beside 5 children say one pseudonym was joined.
    exact = DisclosureRule(suppress_at_or_below=1, round_to=1)
    cells = {
        (c.measure, c.dimension, c.value): c.count
        for c in period_cells(LINKAGE, *JAN, TAXONOMY, PARTNERS, exact)
    }
    assert cells["children", "total", "all"] == 5
    assert cells["pseudonyms", "total", "all"] is None
    assert cells["events", "subject_basis", "LOCAL_ID"] == 3
    # The same records with nothing joined: 6 and 6, published.
    cells = {
        (c.measure, c.dimension, c.value): c.count
        for c in period_cells(
            [r._replace(previous=()) for r in LINKAGE], *JAN, TAXONOMY, PARTNERS, exact
        )
    }
    assert cells["children", "total", "all"] == cells["pseudonyms", "total", "all"] == 6


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 12), rules)
def test_pseudonyms_beside_children_never_pin_the_joined_into_the_small_band(
    children: int, joined: int, rule: DisclosureRule
) -> None:
    pseudonyms = children + joined
    cells = protect_cells(
        {("children", "total"): {"all": children}, ("pseudonyms", "total"): {"all": pseudonyms}},
        rule,
    )
    shown = {cell.measure: cell.count for cell in cells}
    published_children = shown["children"]
    if published_children is None:
        return
    # What the pair would tell a reader, with this test's own enumeration of rounding.
    low = max(
        0,
        hidden_by(publication(pseudonyms, rule), rule)[0] - hidden_by(published_children, rule)[1],
    )
    high = (
        hidden_by(publication(pseudonyms, rule), rule)[1] - hidden_by(published_children, rule)[0]
    )
    pinned = 1 <= low <= high <= rule.suppress_at_or_below
    if shown["pseudonyms"] is None:
        assert pinned or rule.is_small(pseudonyms)  # withheld only when it must be
    else:
        assert not pinned
        assert shown["pseudonyms"] == publication(pseudonyms, rule)
    if rule == DisclosureRule() and not rule.is_small(pseudonyms):
        assert shown["pseudonyms"] is not None  # rounding to 5 on both always hides it
