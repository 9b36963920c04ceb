"""The agreement and profiles are read by YAML 1.2, and problems are reported at their line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.agreement.model import Agreement, load_agreement
from hub.yamlfile import YamlSyntaxError, read_yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "agreement" / "example.yaml"
#: Words YAML 1.1 reads as booleans and YAML 1.2 as the strings written.
YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "file.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yes_no_on_off_stay_strings_and_leading_zeros_are_decimal(tmp_path: Path) -> None:
    path = written(
        tmp_path,
        "Yes: No\nNo: on\nOn: off\nOFF: y\nvalues: [yes, NO, true, False]\n"
        "zero_ten: 010\nquoted: '010'\noctal: 0o10\nnothing: ~\n",
    )
    data = read_yaml(path).data
    assert data == {
        "Yes": "No",
        "No": "on",
        "On": "off",
        "OFF": "y",
        "values": ["yes", "NO", True, False],
        "zero_ten": 10,
        "quoted": "010",
        "octal": 8,
        "nothing": None,
    }
    # What YAML 1.1 (PyYAML) makes of the same text.
    old = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {True, False} <= set(old) and "Yes" not in old
    assert old["zero_ten"] == 8 and old["values"][:2] == [True, False]


def test_line_of_a_key_a_list_item_and_a_missing_key(tmp_path: Path) -> None:
    document = read_yaml(
        written(
            tmp_path,
            "# comment\n"  # 1
            "partners:\n"  # 2
            "  - id: a\n"  # 3
            "    submit_by: {cron: '0 17 5 * *'}\n"  # 4
            "  - id: b\n"  # 5
            "    submit_by:\n"  # 6
            "      cron: bad\n"  # 7
            "1: one\n",  # 8
        )
    )
    assert document.line_of(()) == 2
    assert document.line_of(("partners",)) == 2
    assert document.line_of(("partners", 1)) == 5
    assert document.line_of(("partners", 1, "submit_by", "cron")) == 7
    assert document.line_of(("partners", 0, "submit_by", "cron")) == 4
    # A missing key: where the mapping that lacks it starts; pydantic's markers are passed over.
    assert document.line_of(("partners", 1, "topic")) == 5
    assert document.line_of(("partners", 1, "function-after[_valid()]", "submit_by")) == 6
    assert document.line_of(("partners", 7)) == 2
    assert document.line_of((1,)) == 8
    assert document.where(("partners", 1, "id")) == f"{document.path}:5"
    empty = read_yaml(written(tmp_path, "# nothing\n"))
    assert empty.data is None and empty.line_of(("a",)) is None
    assert empty.where(("a",)) == str(empty.path)


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("a: [1, 2\nb: 3\n", "2:2", "expected ',' or ']'"),
        ("a: 1\nb: c: d\n", "2:5", "mapping values are not allowed here"),
        ("a: 1\nb: 2\na: 3\n", "3:1", 'found duplicate key "a"'),
        ("a: *nowhere\n", "1:4", "found undefined alias 'nowhere'"),
        ("a: !!python/object:os.system x\n", "1:4", "could not determine a constructor"),
    ],
)
def test_a_syntax_error_names_the_file_line_and_column(
    tmp_path: Path, text: str, where: str, reason: str
) -> None:
    path = written(tmp_path, text)
    with pytest.raises(YamlSyntaxError) as raised:
        read_yaml(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:{where}: not valid YAML: {reason}"), message
    assert "\n" not in message


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("partnership: Dudley Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(YamlSyntaxError, match=r"not UTF-8 text \(byte 0xe9 at offset 23\)"):
        read_yaml(path)


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where YAML 1.1 (old) and YAML 1.2 (new) readings of one file differ, other than a
    YAML 1.1 boolean that YAML 1.2 keeps as the word written (the intended difference)."""
    if isinstance(old, bool) and isinstance(new, str) and new.casefold() in YAML11_BOOLEANS:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        found = [] if len(old) == len(new) else [f"{where}: {len(old)} keys, now {len(new)}"]
        pairs = zip(old.items(), new.items(), strict=False)
        for (old_key, old_value), (new_key, new_value) in pairs:
            found += differences(old_key, new_key, f"{where}.{new_key} (key)")
            found += differences(old_value, new_value, f"{where}.{new_key}")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = enumerate(zip(old, new, strict=True))
        return [d for i, pair in pairs for d in differences(*pair, f"{where}[{i}]")]
    return [] if (type(old), old) == (type(new), new) else [f"{where}: {old!r}, now {new!r}"]


SHIPPED = [EXAMPLE, *sorted((REPO / "adapters" / "profiles").glob("*.yaml"))]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_file_reads_as_it_did_under_yaml_1_1(path: Path) -> None:
    old = yaml.safe_load(path.read_text(encoding="utf-8"))
    new = read_yaml(path).data
    assert isinstance(new, dict) and new
    assert differences(old, new) == []


def test_the_example_agreement_loads_as_it_did() -> None:
    old = Agreement.model_validate(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    assert load_agreement(EXAMPLE) == old


def test_the_difference_check_sees_a_changed_value() -> None:
    assert differences({"a": [1, "x"]}, {"a": [1, "y"]}) == [".a[1]: 'x', now 'y'"]
    assert differences({"a": 8}, {"a": 10}) == [".a: 8, now 10"]
    assert differences({True: "YES"}, {"Yes": "YES"}) == []
    assert differences({"a": 1}, {"a": "1"}) == [".a: 1, now '1'"]
