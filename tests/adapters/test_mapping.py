"""The row mapper on its own: errors name the row and field, never the identifier."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mapping import RowMapper
from adapters.profile import load_profile, shipped_profiles
from adapters.synth.cases import COLUMNS
from hub.areas import Area, AreaError, Areas
from hub.errors import RecordError
from hub.models import LinkageBasis
from hub.pseudonymise import KeyRing, Pseudonymiser

MAPPER = RowMapper(
    load_profile("generic"), Pseudonymiser(KeyRing.generate("t")), "export.csv", agency="police"
)
ROW = {
    "record_id": "POL-77",
    "occurred_on": "2026-03-01",
    "nhs_number": "",
    "family_name": "Begum",
    "given_name": "Aisha",
    "date_of_birth": "2012-11-30",
    "postcode": "B63 3AB",
    "online_component": "yes",
    "risk_codes": "CYBERBULLYING",
}
PLANTED = ("Begum", "Aisha", "2012-11-30", "B63 3AB", "POL-77", "9434765918", "943476591X")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nhs_number": "9434765918"}, "nhs_number"),
        ({"nhs_number": "943476591X"}, "nhs_number"),
        ({"date_of_birth": "30/11/2012 Aisha Begum"}, "date_of_birth"),
        ({"outcome": "Aisha Begum B63 3AB"}, "outcome"),
        ({"date_of_birth": "2026-03-02"}, "date_of_birth"),
        ({"online_component": "Aisha said yes"}, "online_component"),
    ],
)
def test_errors_and_logs_never_carry_the_identifier(
    change: dict[str, str], field: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RecordError) as error:
        MAPPER.map(4, ROW | change)
    assert (error.value.source, error.value.row, error.value.field) == ("export.csv", 4, field)
    text = str(error.value) + repr(error.value) + caplog.text
    for planted in (*PLANTED, *change.values()):
        assert planted not in text


def test_notes_never_carry_the_term(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown risk term is noted, not rejected (the profile has an online column)."""
    caplog.set_level(logging.DEBUG)
    mapper = RowMapper(load_profile("generic"), Pseudonymiser(KeyRing.generate("t")), "export.csv")
    event = mapper.map(4, ROW | {"risk_codes": "Aisha Begum B63 3AB;grooming"})
    assert event.online_risks == ("GROOMING",)
    (note,) = mapper.take_notes()
    assert (note.source, note.row, note.field) == ("export.csv", 4, "risk")
    text = str(note) + repr(note) + caplog.text
    for planted in (*PLANTED, "Aisha Begum B63 3AB"):
        assert planted not in text


def test_no_linkable_identifier_gives_no_subject() -> None:
    event = MAPPER.map(2, ROW | {"family_name": "", "date_of_birth": ""})
    assert event.subject is None and event.age_band == "unknown"
    linked = MAPPER.map(2, ROW)
    assert linked.subject is not None and linked.subject.basis is LinkageBasis.NAME_DOB
    assert linked.age_band == "11-13" and linked.occurred_on == date(2026, 3, 1)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={c: st.text(max_size=30) for c in COLUMNS}))
def test_generated_rows_never_crash_the_mapper(row: dict[str, str]) -> None:
    try:
        MAPPER.map(2, row)
    except RecordError as error:
        assert error.row == 2 and error.field in {*COLUMNS, "risk"}


def _profile_rows(name: str) -> st.SearchStrategy[dict[str, str]]:
    profile = load_profile(name)
    headers = [h for variants in profile.columns.values() for h in variants]
    headers += [h for variants in profile.vulnerability_columns.values() for h in variants]
    vocabulary = [term for table in profile.values.model_dump().values() for term in table] + [
        "2026-10-01",
        "01/10/2026",
        "9434765919",
        "DY1 4RT",
        "13",
    ]
    value = st.sampled_from(vocabulary) | st.text(max_size=20)
    return st.dictionaries(st.sampled_from(headers), value, max_size=len(headers))


@pytest.mark.parametrize("name", shipped_profiles())
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_generated_rows_never_crash_any_profile(name: str, data: st.DataObject) -> None:
    profile = load_profile(name)
    mapper = RowMapper(profile, Pseudonymiser(KeyRing.generate("t")), "export.csv")
    row = data.draw(_profile_rows(name))
    try:
        mapper.map(2, row)
    except RecordError as error:
        assert error.row == 2 and error.field


# --- areas: a closed vocabulary from the agreement ---------------------------------------

AREAS = Areas(
    [
        Area("E08000027", "Dudley Metropolitan Borough", ("Dudley MBC",)),
        Area("brierley-hill", "Brierley Hill"),
    ]
)
SESSION = {
    "session_id": "s-1",
    "event": "chat_session",
    "session_date": "2026-09-14",
    "user_id": "u-4471",
    "age": "14",
    "presenting_issues": "sexting",
}
#: What an attacker put in an area column: names, a date of birth, NHS numbers, postcodes.
FREE_TEXT_AREAS = (
    "Jane Smith DOB 03/04/2012 NHS 9434765919",
    "DY1 4RT",
    "dy14rt",
    "9434765919",
    "Brierley",  # near a name, not one
    "Dudley",  # the town is not the borough: not listed
    "E08000027 Jane Smith",
)


def counselling(areas: Areas | None = AREAS) -> RowMapper:
    return RowMapper(
        load_profile("counselling"), Pseudonymiser(KeyRing.generate("t")), "feed", areas=areas
    )


@pytest.mark.parametrize(
    ("header", "cell", "code"),
    [
        ("area", "Brierley Hill", "brierley-hill"),
        ("region", "  brierley   HILL ", "brierley-hill"),
        ("local_authority", "e08000027", "E08000027"),
        ("local_authority", "Dudley MBC", "E08000027"),
        ("local_authority", "DUDLEY metropolitan borough", "E08000027"),
    ],
)
def test_an_area_cell_naming_a_listed_area_becomes_its_code(
    header: str, cell: str, code: str
) -> None:
    event = counselling().map(2, SESSION | {header: cell})
    assert event.area_code == code


@pytest.mark.parametrize("cell", FREE_TEXT_AREAS)
@pytest.mark.parametrize("header", ["area", "local_authority", "region"])
def test_any_other_area_cell_is_rejected_without_its_value(
    header: str, cell: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RecordError) as error:
        counselling().map(5, SESSION | {header: cell})
    assert (error.value.row, error.value.field) == (5, "area")
    assert error.value.reason == "not one of the agreement's areas (by code, name or alias)"
    text = str(error.value) + repr(error.value) + caplog.text
    for part in (cell.strip(), "Jane", "9434765919", "DY1 4RT", "03/04/2012", "Brierley"):
        assert part not in text


@pytest.mark.parametrize("areas", [None, Areas()])
def test_without_areas_in_the_agreement_no_area_cell_is_accepted(areas: Areas | None) -> None:
    with pytest.raises(RecordError) as error:
        counselling(areas).map(2, SESSION | {"area": "Brierley Hill"})
    assert error.value.field == "area"
    assert "the agreement lists no areas" in error.value.reason
    assert "Brierley" not in str(error.value)
    assert counselling(areas).map(2, SESSION).area_code == "unknown"  # no area cell: fine


def test_without_an_area_cell_the_postcode_is_minimised() -> None:
    mapper = RowMapper(
        load_profile("generic"), Pseudonymiser(KeyRing.generate("t")), "x", areas=AREAS
    )
    assert mapper.map(2, ROW).area_code == "B63 3"
    assert mapper.map(2, ROW | {"postcode": "Begum"}).area_code == "unknown"


def test_the_agreement_refuses_a_term_naming_two_areas() -> None:
    with pytest.raises(AreaError, match="already names the area 'a'"):
        Areas([Area("a", "Sedgley"), Area("b", " SEDGLEY ")])
