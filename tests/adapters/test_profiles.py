"""Every shipped mapping profile against a synthetic export in that agency's own shape.

No broker: each export is read by its source and mapped row by row, and
every field is checked against what the generator says the row means.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest

from adapters.mapping import RowMapper
from adapters.profile import Profile, load_profile, shipped_profiles
from adapters.runner import file_source
from adapters.synth.cases import Child, child_pool
from adapters.synth.exports import ExpectedRow, export_encoding, write_export
from hub.agreement.model import ALL_SHAREABLE
from hub.errors import RecordError
from hub.models import CaseEvent, LinkageBasis, Outcome, Role, Sex
from hub.pseudonymise import KeyRing, Pseudonymiser
from hub.taxonomy import STARTER_CODES
from tests.support.agreements import EXAMPLE_PARTNERS, example_areas

PROFILES = shipped_profiles()
POOL = child_pool(40, seed=3)
#: What the mapper puts in a field the agreement does not let the agency share.
BLANK: dict[str, object] = {
    "age_band": "unknown",
    "sex": Sex.UNKNOWN,
    "area_code": "unknown",
    "vulnerabilities": (),
    "threshold_level": None,
    "platform_types": (),
    "role": Role.UNKNOWN,
    "outcome": Outcome.UNKNOWN,
}
SUFFIX = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl"}


def export(
    profile: Profile, tmp_path: Path, seed: int = 5, rows: int = 200
) -> tuple[Path, list[ExpectedRow]]:
    path = tmp_path / f"{profile.agency}-{seed}{SUFFIX[profile.format]}"
    return path, write_export(profile, rows, seed, POOL, path)


def cells(lines: list[str], profile: Profile) -> list[str]:
    """Every value in the file, as written."""
    if profile.format == "jsonl":
        items = [json.loads(line) for line in lines if line.strip()]
        return [v for item in items for v in item.values() if isinstance(v, str)]
    return [c for row in csv.reader(lines, delimiter=profile.delimiter) for c in row]


def mapped(
    profile: Profile, path: Path, pseudonymiser: Pseudonymiser
) -> dict[int, CaseEvent | RecordError]:
    """Each data row's event, or the error that rejected it, by row number."""
    mapper = RowMapper(profile, pseudonymiser, str(path), areas=example_areas())
    out: dict[int, CaseEvent | RecordError] = {}
    for record in file_source(path, profile).records():
        assert not isinstance(record, RecordError), f"the source refused a row: {record}"
        try:
            out[record.row] = mapper.map(record.row, record.values)
        except RecordError as error:
            out[record.row] = error
    return out


def test_every_partner_has_a_profile() -> None:
    partners = set(EXAMPLE_PARTNERS)
    assert partners <= set(PROFILES)
    agency_types = {load_profile(name).agency_type for name in partners}
    assert len(agency_types) == len(partners)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_under_its_own_name(name: str) -> None:
    profile = load_profile(name)
    assert profile.agency == name
    assert set(profile.identifiers) <= set(profile.columns)
    assert profile.values.risk, "a profile needs the agency's online-risk vocabulary"
    RowMapper(profile, Pseudonymiser(KeyRing.generate("t")), "check")


@pytest.mark.parametrize("name", PROFILES)
def test_risk_vocabulary_maps_only_to_starter_codes(name: str) -> None:
    profile = load_profile(name)
    for term, codes in profile.values.risk.items():
        assert codes, f"{name}: {term!r} maps to no code"
        assert set(codes) <= set(STARTER_CODES), f"{name}: {term!r} -> {codes}"


@pytest.mark.parametrize("name", PROFILES)
def test_export_maps_field_by_field(name: str, tmp_path: Path) -> None:
    profile = load_profile(name)
    path, expected = export(profile, tmp_path)
    pseudonymiser = Pseudonymiser(KeyRing.generate("t"))
    results = mapped(profile, path, pseudonymiser)
    assert sorted(results) == [row.row for row in expected], "blank rows skipped, no row lost"
    unshared = set(ALL_SHAREABLE) - set(ALL_SHAREABLE if profile.share is None else profile.share)
    for want in expected:
        got = results[want.row]
        if want.rejected is not None:
            assert isinstance(got, RecordError), f"row {want.row} should be rejected"
            assert got.field == want.rejected
            continue
        assert isinstance(got, CaseEvent), f"row {want.row} rejected: {got}"
        assert got.agency_id == name and got.agency_type is profile.agency_type
        if profile.record_identity == ("record_id",):
            assert got.event_id == pseudonymiser.event_id(name, want.record_id, 1)
        else:  # a record is more than its record id: see tests/adapters/test_versions.py
            assert got.record_key != pseudonymiser.record_key(name, want.record_id)
        for field in ExpectedRow.EVENT_FIELDS:
            value = BLANK[field] if field in unshared else getattr(want, field)
            assert getattr(got, field) == value, f"row {want.row}: {field}"
        basis = got.subject.basis if got.subject is not None else None
        assert basis is want.basis, f"row {want.row}: subject basis"


@pytest.mark.parametrize("name", PROFILES)
def test_export_carries_the_mess_of_real_exports(name: str, tmp_path: Path) -> None:
    profile = load_profile(name)
    path, expected = export(profile, tmp_path)
    data = path.read_bytes()
    encoding = export_encoding(profile)
    assert data.startswith(codecs.BOM_UTF8) == (codecs.lookup(encoding).name == "utf-8-sig")
    assert data.decode(encoding)
    if codecs.lookup(encoding).name == "cp1252":
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")  # an accented name in the Windows code page
        assert any(ch in data.decode("cp1252") for ch in "éëüñ")
    lines = data.decode(encoding).splitlines()
    assert len(lines) > len(expected) + (profile.format != "jsonl"), "no blank rows"
    assert any(row.duplicate_of for row in expected), "no repeated rows"
    assert any(row.rejected for row in expected), "no rows for the mapper to reject"
    assert any(cell != cell.strip() for cell in cells(lines, profile)), "no stray spaces"
    if "date_of_birth" in profile.columns or len(profile.date_formats) > 2:
        dates = {row.occurred_on for row in expected}
        assert len(dates) > 1


@pytest.mark.parametrize("name", PROFILES)
def test_repeated_rows_map_to_the_same_event(name: str, tmp_path: Path) -> None:
    profile = load_profile(name)
    path, expected = export(profile, tmp_path)
    results = mapped(profile, path, Pseudonymiser(KeyRing.generate("t")))
    repeats = [row for row in expected if row.duplicate_of]
    assert repeats
    for row in repeats:
        got, first = results[row.row], results[row.duplicate_of or 0]
        if isinstance(got, CaseEvent):
            assert isinstance(first, CaseEvent) and got.event_id == first.event_id
            assert got.subject == first.subject
        else:
            assert isinstance(first, RecordError) and first.field == got.field


def test_the_same_child_links_across_agencies(tmp_path: Path) -> None:
    """NHS number and name + date of birth link across agencies; local ids never do."""
    pseudonymiser = Pseudonymiser(KeyRing.generate("t"))
    seen: dict[tuple[Child, LinkageBasis], dict[str, set[str]]] = defaultdict(
        lambda: defaultdict(set)
    )
    subjects: dict[str, set[Child]] = defaultdict(set)
    for name in PROFILES:
        profile = load_profile(name)
        path, expected = export(profile, tmp_path, seed=11)
        results = mapped(profile, path, pseudonymiser)
        for want in expected:
            got = results[want.row]
            if isinstance(got, CaseEvent) and got.subject is not None:
                seen[want.child, got.subject.basis][name].add(got.subject.value)
                subjects[got.subject.value].add(want.child)
    linked: dict[LinkageBasis, int] = defaultdict(int)
    for (_, basis), by_agency in seen.items():
        for values in by_agency.values():
            assert len(values) == 1, "one child, one pseudonym within an agency"
        if len(by_agency) < 2:
            continue
        values = set().union(*by_agency.values())
        if basis is LinkageBasis.LOCAL_ID:
            assert len(values) == len(by_agency), "a local id must not link across agencies"
        else:
            assert len(values) == 1, f"{basis}: {sorted(by_agency)} disagree"
            linked[basis] += 1
    assert linked[LinkageBasis.NHS_NUMBER] > 0 and linked[LinkageBasis.NAME_DOB] > 0
    assert all(len(children) == 1 for children in subjects.values()), "two children, one key"
