"""JSON-lines files: one JSON object per line, values as text.

Nested values are refused (a record is flat, like a row); numbers and
booleans become their text. The row number is the line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.csv_source import decode
from adapters.profile import Profile
from adapters.source import SourceRecord
from hub.errors import RecordError


def flat_values(source: str, row: int, item: Any) -> SourceRecord | RecordError:
    """A JSON object as a source record, or the error that says why it is not one."""
    if not isinstance(item, Mapping):
        return RecordError(source, row, "*", "not a JSON object")
    values: dict[str, str] = {}
    for key, value in item.items():
        if isinstance(value, dict | list):
            return RecordError(source, row, str(key), "nested values are not accepted")
        values[str(key)] = "" if value is None else str(value)
    return SourceRecord(source, row, values)


class JsonLinesSource:
    def __init__(self, path: Path, profile: Profile) -> None:
        self.path = path
        self.name = str(path)
        self.profile = profile

    def records(self) -> Iterator[SourceRecord | RecordError]:
        text = decode(self.path, self.profile.encodings)
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                yield RecordError(self.name, number, "*", "not valid JSON")
                continue
            yield flat_values(self.name, number, item)
