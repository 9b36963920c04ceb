"""A row's subject pseudonyms: worked out once per identifier set, as if computed anew."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.linkage import NO_SUBJECT, Linker
from adapters.mapping import RowMapper
from adapters.profile import load_profile
from hub.errors import RecordError
from hub.models import LinkageBasis
from hub.pseudonymise import KeyRing, Pseudonymiser, name_dob_key

RING = KeyRing.generate("k-1").rotated("k-2")  # a current key and a previous one
BORN = date(2012, 11, 30)


def test_the_pseudonyms_are_those_the_pseudonymiser_makes() -> None:
    p = Pseudonymiser(RING)
    linked = Linker(p, "police").subjects(("943 476 5919", "Begum", "Aisha", BORN, "p-7"))
    name_key = name_dob_key("Begum", "Aisha", BORN)
    assert name_key is not None
    assert linked.subject == p.subject("9434765919", LinkageBasis.NHS_NUMBER)
    assert linked.previous == p.previous_subjects("9434765919", LinkageBasis.NHS_NUMBER)
    assert linked.others == (
        p.subject(name_key, LinkageBasis.NAME_DOB),
        *p.previous_subjects(name_key, LinkageBasis.NAME_DOB),
        p.subject("P-7", LinkageBasis.LOCAL_ID, "police"),
        *p.previous_subjects("P-7", LinkageBasis.LOCAL_ID, "police"),
    )
    assert [s.key_id for s in (linked.subject, *linked.previous)] == ["k-2", "k-1"]
    assert Linker(p, "police").subjects(("", "Begum", "Aisha", None, "")) == NO_SUBJECT


def test_a_new_key_ring_is_never_answered_from_the_old_one() -> None:
    p = Pseudonymiser(RING)
    linker = Linker(p, "police")
    identifiers = ("", "Begum", "Aisha", BORN, "")
    before = linker.subjects(identifiers)
    assert linker.subjects(identifiers) is before  # worked out once
    p.ring = RING.rotated("k-3")
    after = linker.subjects(identifiers)
    assert after.subject is not None and after.subject.key_id == "k-3"
    assert after.subject == p.subject(
        str(name_dob_key("Begum", "Aisha", BORN)), after.subject.basis
    )
    assert linker.case("c-1") == p.subject("c-1", LinkageBasis.CASE, "police")


@pytest.mark.parametrize("nhs", ["9434765918", "12345"])
def test_a_bad_nhs_number_is_refused_every_time_without_its_digits(nhs: str) -> None:
    linker = Linker(Pseudonymiser(RING), "police")
    for _ in range(2):
        with pytest.raises(ValueError, match="NHS number") as error:
            linker.subjects((nhs, "Begum", "Aisha", BORN, ""))
        assert nhs not in str(error.value)


#: Few values per column, so that generated rows repeat them as an export's rows do.
_CELLS = {
    "record_id": st.sampled_from(["r1", "r2", "r3"]),
    "occurred_on": st.sampled_from(["2026-03-01", "2026-03-02", "01/03/2026", ""]),
    "nhs_number": st.sampled_from(["", "9434765919", "943 476 5919", "9434765918"]),
    "family_name": st.sampled_from(["", "Begum", "O'Brién"]),
    "given_name": st.sampled_from(["", "Aisha", "Leo"]),
    "date_of_birth": st.sampled_from(["", "2012-11-30", "2013-01-02", "2030-01-01"]),
    "postcode": st.sampled_from(["", "B63 3AB", "dy14rt", "Begum"]),
    "risk_codes": st.sampled_from(["", "grooming", "grooming;sexting", "cyberbullying;x"]),
    "outcome": st.sampled_from(["", "ongoing", "elsewhere"]),
}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.fixed_dictionaries({}, optional=_CELLS), min_size=1, max_size=12))
def test_what_a_mapper_keeps_between_rows_never_changes_what_it_makes(
    rows: list[dict[str, str]],
) -> None:
    """Row by row through one mapper (its caches warm) as through a new mapper per row:
    the same events, the same errors, the same notes."""
    profile, p = load_profile("generic"), Pseudonymiser(RING)
    warm = RowMapper(profile, p, "export.csv", agency="police")
    for number, row in enumerate(rows, start=2):
        cold = RowMapper(profile, p, "export.csv", agency="police")
        outcomes = []
        for mapper in (warm, cold):
            try:
                made: object = mapper.map(number, row).model_dump(exclude={"reported_at"})
            except RecordError as exc:
                made = (exc.field, exc.reason)
            notes = [(n.source, n.row, n.field, n.reason) for n in mapper.take_notes()]
            outcomes.append((made, notes))
        assert outcomes[0] == outcomes[1]
