"""`hub schema check` on the shipped schemas, and on deliberately incompatible versions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub.codec import SCHEMAS_DIR
from hub.schema_check import check


def schema_check(root: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = ["--root", str(root)] if root else []
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "schema", "check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def copy_with_v2(tmp_path: Path, change: Any) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, root)
    v1 = json.loads((root / "case_event" / "v1.avsc").read_text())
    (root / "case_event" / "v2.avsc").write_text(json.dumps(change(v1)))
    return root


def test_shipped_schemas_pass() -> None:
    result = schema_check()
    assert result.returncode == 0, result.stderr
    assert "case_event, trend_snapshot" in result.stdout and "0 incompatible" in result.stdout
    assert "2 version pairs checked" in result.stdout  # case_event's and audit_entry's


def test_a_field_added_with_a_default_is_compatible(tmp_path: Path) -> None:
    root = copy_with_v2(
        tmp_path,
        lambda v1: (
            v1
            | {
                "fields": [
                    *v1["fields"],
                    {"name": "school_phase", "type": "string", "default": "unknown"},
                ]
            }
        ),
    )
    assert check(root) == (2, [])  # case_event v1/v2, and audit_entry's


def test_a_field_without_a_default_fails_naming_it(tmp_path: Path) -> None:
    root = copy_with_v2(
        tmp_path,
        lambda v1: v1 | {"fields": [*v1["fields"], {"name": "school_phase", "type": "string"}]},
    )
    result = schema_check(root)
    assert result.returncode == 1
    assert "v2 cannot read data written with v1 (backward)" in result.stderr
    assert "field 'school_phase'" in result.stderr


def test_a_changed_type_fails_both_ways_naming_the_field(tmp_path: Path) -> None:
    def retype(v1: Any) -> Any:
        fields = [dict(f) for f in v1["fields"]]
        fields[[f["name"] for f in fields].index("record_version")]["type"] = "string"
        return v1 | {"fields": fields}

    _, problems = check(copy_with_v2(tmp_path, retype))
    assert {p.direction for p in problems} == {"backward", "forward"}
    assert all(p.field == "record_version" for p in problems)


def test_a_removed_enum_symbol_without_default_fails(tmp_path: Path) -> None:
    def drop_symbol(v1: Any) -> Any:
        schema = json.loads(json.dumps(v1))
        event_type = next(f for f in schema["fields"] if f["name"] == "event_type")["type"]
        event_type["symbols"].remove("WITHDRAWN")
        del event_type["default"], event_type["symbolDocs"]["WITHDRAWN"]
        return schema

    _, problems = check(copy_with_v2(tmp_path, drop_symbol))
    assert problems and problems[0].field == "event_type"
