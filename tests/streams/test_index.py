"""The incremental index gives, for any sequence of versions, the cells computed from scratch.

``RecordIndex`` keeps each period's records, the linkage groups and each
child's agencies up to date as versions arrive; ``true_breakdowns`` recomputes
them from every record. Arbitrary sequences of versions (new records,
replays, stale versions, corrections that move a record to another month or
subject or change its links, withdrawals) are applied one by one, and after
each the index must agree with the from-scratch count for every month and
quarter, whether it has kept the period's counts from the start or from later
on, and a period whose ``changes`` have not moved must have the cells it had.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.periods import period_starting
from hub.taxonomy import Taxonomy
from streams.aggregate import true_breakdowns
from streams.index import Linkage, RecordIndex
from streams.records import RecordVersion, merge

TAXONOMY = Taxonomy()
PARTNERS = ["camhs", "police", "nursing"]
TYPES = {"camhs": "CAMHS", "police": "POLICE", "nursing": "SCHOOL_NURSING"}
MONTHS = [period_starting("month", date(2025, m, 1)) for m in (1, 2, 3, 4)]
PERIODS = [*MONTHS, period_starting("quarter", date(2025, 1, 1))]
PSEUDONYMS = ["p1", "p2", "p3", "p4"]
SHARED = ["2025-01-06", "2025-02-11", "2025-04-03"]  # the days versions were shared
DAYS = ["2025-01-05", "2025-01-20", "2025-02-10", "2025-03-31", "2025-04-02", "2024-12-30"]


@st.composite
def versions(draw: st.DrawFn) -> RecordVersion:
    live = draw(st.booleans()) or draw(st.booleans())  # withdrawals one time in four
    subject = draw(st.sampled_from([None, *PSEUDONYMS]))
    agency = draw(st.sampled_from(PARTNERS))
    previous = () if subject is None else tuple(draw(st.sets(st.sampled_from(PSEUDONYMS))))
    return RecordVersion(
        record_key=draw(st.sampled_from(["r1", "r2", "r3", "r4", "r5"])),
        version=draw(st.integers(1, 4)),
        live=live,
        agency=agency,
        agency_type=TYPES[agency],
        event_type=draw(st.sampled_from(["REFERRAL", "INCIDENT"])) if live else "WITHDRAWN",
        subject=subject,
        basis="NHS_NUMBER" if subject else "NONE",
        occurred_on=draw(st.sampled_from(DAYS)),
        age_band=draw(st.sampled_from(["11-13", "14-15"])),
        sex="FEMALE",
        area=draw(st.sampled_from(["E01", "E02"])),
        threshold=draw(st.sampled_from([None, 2])),
        vulnerabilities=(),
        online=draw(st.sampled_from(["YES", "YES", "NO", "NOT_ASSESSED"])),
        codes=tuple(sorted(draw(st.sets(st.sampled_from(["GROOMING", "SEXTORTION"]))))),
        role=draw(st.sampled_from(["VICTIM", "PERPETRATOR"])),
        outcome="UNKNOWN",
        previous=tuple(p for p in previous if p != subject),
        shared_on=draw(st.sampled_from(SHARED)),
    )


@st.composite
def sequences(draw: st.DrawFn) -> list[RecordVersion]:
    """Versions, some of them an earlier one again under a higher number (a replay: the
    same content) or with one field changed (a correction)."""
    sequence: list[RecordVersion] = []
    for _ in range(draw(st.integers(0, 30))):
        if sequence and draw(st.integers(0, 3)) == 0:
            earlier = draw(st.sampled_from(sequence))
            bumped = earlier._replace(version=earlier.version + draw(st.integers(0, 1)))
            if draw(st.booleans()):
                other = draw(versions())
                field = draw(
                    st.sampled_from(["occurred_on", "subject", "previous", "online", "agency"])
                )
                bumped = bumped._replace(**{field: getattr(other, field)})
                if bumped.subject is None:
                    bumped = bumped._replace(previous=(), basis="NONE")
            sequence.append(bumped)
        else:
            sequence.append(draw(versions()))
    return sequence


@settings(max_examples=300, deadline=None)
@given(sequences(), st.integers(0, 30))
def test_incremental_cells_equal_cells_from_scratch(
    sequence: list[RecordVersion], later: int
) -> None:
    index = RecordIndex(TAXONOMY)  # its periods' counts are kept from the first version on
    late = RecordIndex(TAXONOMY)  # ... and this one's from the `later`-th version on
    scratch: dict[str, RecordVersion] = {}
    seen: dict[tuple[date, date], tuple[int, object]] = {}
    for step, version in enumerate(sequence):
        index.merge([version])
        late.merge([version])
        merge(scratch, [version])
        assert index.records == scratch
        for start, end in PERIODS:
            expected = true_breakdowns(scratch.values(), start, end, TAXONOMY, PARTNERS)
            assert index.breakdowns(start, end, PARTNERS) == expected
            if step >= later:
                assert late.breakdowns(start, end, PARTNERS) == expected
            changes = index.changes(start, end)
            before = seen.get((start, end))
            if before is not None and before[0] == changes:
                assert before[1] == expected, "a period changed and its change count did not"
            seen[start, end] = (changes, expected)
    live = [r.occurred_on for r in scratch.values() if r.live]
    assert index.first_day() == (date.fromisoformat(min(live)) if live else None)


@settings(max_examples=200, deadline=None)
@given(sequences(), st.sampled_from(SHARED), st.booleans())
def test_records_past_retention_leave_every_count(
    sequence: list[RecordVersion], since: str, kept_first: bool
) -> None:
    """Removed once held (``expire``), or never folded in (``merge`` with ``since``): the
    counts are those of the records that remain, from scratch."""
    index = RecordIndex(TAXONOMY)
    if kept_first:  # periods' counts kept before the records go
        for start, end in PERIODS:
            index.counts(start, end)
    held: dict[str, RecordVersion] = {}
    merge(held, sequence)
    index.merge(sequence)
    index.expire(since)
    remaining = {k: r for k, r in held.items() if r.shared_on >= since}
    assert index.records == remaining
    folded = RecordIndex(TAXONOMY)
    folded.merge(sequence, since)
    never: dict[str, RecordVersion] = {}
    merge(never, [v for v in sequence if v.shared_on >= since])
    assert folded.records == never
    for start, end in PERIODS:
        expected = true_breakdowns(remaining.values(), start, end, TAXONOMY, PARTNERS)
        assert index.breakdowns(start, end, PARTNERS) == expected
        expected = true_breakdowns(never.values(), start, end, TAXONOMY, PARTNERS)
        assert folded.breakdowns(start, end, PARTNERS) == expected


@settings(max_examples=100, deadline=None)
@given(sequences(), st.randoms())
def test_order_and_repetition_do_not_matter(sequence: list[RecordVersion], rng: object) -> None:
    shuffled = [*sequence, *sequence]
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    one, other = RecordIndex(TAXONOMY), RecordIndex(TAXONOMY)
    one.merge(sequence)
    other.merge(shuffled)
    for start, end in PERIODS:
        assert one.breakdowns(start, end, PARTNERS) == other.breakdowns(start, end, PARTNERS)


def test_a_group_splits_when_the_only_link_between_its_halves_goes() -> None:
    links = Linkage()
    for a, b in (("a", "b"), ("b", "c"), ("c", "d"), ("a", "b")):
        links.add(a, b)
    assert set(links.group("d")) == {"a", "b", "c", "d"}
    links.remove("a", "b")  # another record still links a and b
    assert set(links.group("a")) == {"a", "b", "c", "d"}
    links.remove("b", "c")
    assert set(links.group("a")) == {"a", "b"}
    assert set(links.group("d")) == {"c", "d"}
    assert links.child_of("a") == links.child_of("b") == "a"
    assert links.child_of("c") == links.child_of("d") == "c"
    links.add("b", "c")  # the same groups again: the same ids
    assert {links.child_of(p) for p in "abcd"} == {"a"}
    links.remove("b", "c")
    links.remove("a", "b")
    assert tuple(links.group("a")) == ("a",) and links.child_of("b") == "b"


def test_a_link_moved_to_another_subject_reaches_the_months_before_it() -> None:
    """A correction keeps a record's links but changes its subject: the groups change, so
    the counts of every period with their records, also before the record's date, do."""
    base = {"r1": "p1", "r2": "p2"}
    records = [
        _record(key, subject, "2025-01-05", "camhs" if key == "r1" else "police")
        for key, subject in base.items()
    ]
    link = _record("link", "p1", "2025-04-02", "nursing", previous=("p2",), online="NO")
    index = RecordIndex(TAXONOMY)
    index.merge([*records, link])
    january = MONTHS[0]
    before = (index.changes(*january), index.breakdowns(*january, PARTNERS))
    assert before[1]["children", "total"] == {"all": 1}
    index.merge([link._replace(version=2, subject="p3")])
    after = index.breakdowns(*january, PARTNERS)
    assert after["children", "total"] == {"all": 2}
    assert index.changes(*january) != before[0]


def _record(
    key: str,
    subject: str,
    day: str,
    agency: str,
    *,
    previous: tuple[str, ...] = (),
    online: str = "YES",
) -> RecordVersion:
    return RecordVersion(
        record_key=key,
        version=1,
        live=True,
        agency=agency,
        agency_type=TYPES[agency],
        event_type="CONTACT",
        subject=subject,
        basis="NHS_NUMBER",
        occurred_on=day,
        age_band="11-13",
        sex="FEMALE",
        area="E01",
        threshold=None,
        vulnerabilities=(),
        online=online,
        codes=(),
        role="VICTIM",
        outcome="UNKNOWN",
        previous=previous,
    )
