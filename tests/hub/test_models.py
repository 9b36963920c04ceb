"""The pydantic model and the current .avsc must not drift apart."""

from __future__ import annotations

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
