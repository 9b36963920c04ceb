"""The pydantic model and the current .avsc must not drift apart."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from hub import models
from hub.codec import versions


def avro_enums(schema: Any, found: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(schema, dict):
        if schema.get("type") == "enum":
            found[schema["name"]] = schema["symbols"]
        for value in schema.values():
            avro_enums(value, found)
    elif isinstance(schema, list):
        for item in schema:
            avro_enums(item, found)
    return found


def test_trend_snapshot_matches_its_schema() -> None:
    current = versions("trend_snapshot")[-1]
    assert [f["name"] for f in current.parsed["fields"]] == list(models.TrendSnapshot.model_fields)
    assert avro_enums(current.parsed, {}) == {}


def test_every_field_and_enum_symbol_has_a_doc() -> None:
    for name in ("case_event", "trend_snapshot"):
        for version in versions(name):
            raw = json.loads(version.path.read_text())
            assert raw.get("doc"), version.path
            undocumented: list[str] = []
            _collect_undocumented(raw, undocumented)
            assert undocumented == [], f"{version.path}: {undocumented}"


def _collect_undocumented(node: Any, missing: list[str]) -> None:
    if isinstance(node, dict):
        if "fields" in node:
            missing += [f["name"] for f in node["fields"] if not f.get("doc")]
        if node.get("type") == "enum":
            docs = node.get("symbolDocs", {})
            missing += [f"{node['name']}.{s}" for s in node["symbols"] if not docs.get(s)]
        for value in node.values():
            _collect_undocumented(value, missing)
    elif isinstance(node, list):
        for item in node:
            _collect_undocumented(item, missing)


def test_fields_match_the_current_schema() -> None:
    current = versions("case_event")[-1]
    avsc_fields = [f["name"] for f in current.parsed["fields"]]
    assert avsc_fields == list(models.CaseEvent.model_fields)
    pseudonym = next(f for f in current.parsed["fields"] if f["name"] == "subject")["type"][1]
    assert [f["name"] for f in pseudonym["fields"]] == list(models.Pseudonym.model_fields)


def test_enum_symbols_match_the_current_schema() -> None:
    current = versions("case_event")[-1]
    enums = avro_enums(current.parsed, {})
    assert enums, "the schema declares enums"
    for name, symbols in enums.items():
        short = name.rsplit(".", 1)[-1]
        model_enum = getattr(models, short)
        assert issubclass(model_enum, StrEnum)
        assert [m.value for m in model_enum] == symbols, short
