"""A profile as an agency writes it: YAML 1.2 words, and problems named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from adapters.mapping import RowMapper
from adapters.profile import Profile, load_profile, shipped_profiles
from hub.errors import ConfigError
from hub.models import OnlineComponent, Sex
from hub.pseudonymise import KeyRing, Pseudonymiser

#: A council's export: its online-harm column holds Yes / No / On / Off, written as
#: unquoted keys of the value map, as an agency would.
PROFILE = """\
agency: council
agency_type: CHILDRENS_SOCIAL_CARE
columns:
  record_id: [Case Ref]
  occurred_on: [Contact Date]
  online_component: [Online Harm]
  sex: [Sex]
truthy: [Yes, y, on]
values:
  online_component:
    Yes: YES
    No: NO
    On: YES
    Off: NO
    N/A: NOT_ASSESSED
  sex:
    F: FEMALE
    M: MALE
"""


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "council.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_unquoted_yes_and_no_keys_are_the_agencys_words(tmp_path: Path) -> None:
    profile = load_profile(written(tmp_path, PROFILE))

    assert profile.values.online_component == {
        "yes": OnlineComponent.YES,
        "no": OnlineComponent.NO,
        "on": OnlineComponent.YES,
        "off": OnlineComponent.NO,
        "n/a": OnlineComponent.NOT_ASSESSED,
    }
    assert profile.values.sex == {"f": Sex.FEMALE, "m": Sex.MALE}
    assert profile.truthy == ("Yes", "y", "on")
    mapper = RowMapper(profile, Pseudonymiser(KeyRing.generate("t")), "export.csv")
    row = {"Case Ref": "C-1", "Contact Date": "2026-03-01", "Sex": "F"}
    assert mapper.map(1, row | {"Online Harm": "Yes"}).online_component == OnlineComponent.YES
    assert mapper.map(2, row | {"Online Harm": "OFF"}).online_component == OnlineComponent.NO

    # Under YAML 1.1 the same text is a map of booleans, and the profile fails.
    with pytest.raises(ValidationError, match="Input should be a valid string"):
        Profile.model_validate(yaml.safe_load(PROFILE))


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = written(tmp_path, PROFILE.replace("  sex: [Sex]", "  sex: [Sex"))
    with pytest.raises(ConfigError) as raised:
        load_profile(path)
    assert str(raised.value) == (
        f"{path}:8:7: not valid YAML: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence at line 7)"
    )
    assert "\n" not in str(raised.value)


def test_a_bad_field_names_the_file_and_line(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        PROFILE.replace("CHILDRENS_SOCIAL_CARE", "SOCIAL_WORK")
        .replace("    N/A: NOT_ASSESSED", "    N/A: PERHAPS")
        .replace("    M: MALE", "    M: MALE\n    1: MALE"),
    )
    with pytest.raises(ConfigError) as raised:
        load_profile(path)
    problems = str(raised.value).split("; ")
    assert [p.split(": ", 2)[:2] for p in problems] == [
        [f"{path}:2", "agency_type"],
        [f"{path}:15", "values.online_component.N/A"],
        # An unquoted 1 is an integer, not the text of a cell.
        [f"{path}:19", "values.sex.1.[key]"],
    ]
    assert "\n" not in str(raised.value)


def test_a_missing_field_is_reported_where_its_mapping_starts(tmp_path: Path) -> None:
    path = written(tmp_path, PROFILE.replace("  occurred_on: [Contact Date]\n", ""))
    with pytest.raises(ConfigError) as raised:
        load_profile(path)
    assert str(raised.value).startswith(f"{path}:3: columns: ")
    assert "columns must name the occurred_on column" in str(raised.value)


@pytest.mark.parametrize("name", shipped_profiles())
def test_every_shipped_profile_loads_as_it_did_under_yaml_1_1(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "adapters" / "profiles" / f"{name}.yaml"
    old = Profile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert load_profile(name) == old
