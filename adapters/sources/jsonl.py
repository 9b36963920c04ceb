"""JSON-lines files: one JSON object per line, values as text.

Nested values are refused (a record is flat, like a row); numbers and
booleans become their text. The one exception is a list of plain values
under a header of a multi-value field (risk, platform): it becomes the text
of a JSON array of strings (``["Sexting", "Online grooming"]``), which the
mapper reads term by term (`adapters.mapping.RowMapper`). The row number is
the line number.

A line that is not JSON, is nested too deeply to parse, or holds text that
is not valid Unicode (a lone surrogate escape such as ``"\\ud800"``) is
rejected on its own; the rest of the file goes on. A rejection names the
canonical field of the key (``risk`` for ``presenting_issues``), ``other``
for a key the profile does not map, or ``*`` for the record as a whole:
never the key itself, which can be anything, an identifier included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Iterator, Mapping
from pathlib import Path
from typing import Any

from adapters.profile import Profile, SourceField, vocabulary_key
from adapters.sources.base import SourceKind, SourceRecord
from adapters.sources.delimited import decode
from hub.errors import RecordError

#: A UTF-16 surrogate on its own: JSON can escape one, UTF-8 cannot encode it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Canonical fields whose value may be a JSON array of terms.
MULTI_VALUE_FIELDS: tuple[SourceField, ...] = ("risk", "platform")


def list_headers(profile: Profile) -> frozenset[str]:
    """The headers (as `vocabulary_key`s) whose value may be a list: the multi-value fields'."""
    return frozenset(
        vocabulary_key(h) for field in MULTI_VALUE_FIELDS for h in profile.columns.get(field, ())
    )


#: The field a rejection names for a key the profile does not map to a field.
OTHER_KEY = "other"


def header_fields(profile: Profile) -> Mapping[str, SourceField]:
    """Header (as a `vocabulary_key`) -> the canonical field the profile maps it to."""
    return {vocabulary_key(h): field for field, hs in profile.columns.items() for h in hs}


def _field(fields: Mapping[str, str], key: str) -> str:
    """What an error about `key` names: its canonical field, else ``other``."""
    return fields.get(vocabulary_key(key), OTHER_KEY)


def _unicode(text: str) -> bool:
    return text.isascii() or _SURROGATE.search(text) is None


def flat_values(
    source: str,
    row: int,
    item: Any,
    lists: Container[str] = frozenset(),
    fields: Mapping[str, str] | None = None,
) -> SourceRecord | RecordError:
    """A JSON object as a source record, or the error that says why it is not one.

    A list of plain values under a header in `lists` (see `list_headers`) becomes
    the text of a JSON array of strings; any other list or object is refused.
    An error names the key's canonical field from `fields` (see `header_fields`),
    else ``other``: never the key, nor any value.
    """
    if not isinstance(item, Mapping):
        return RecordError(source, row, "*", "not a JSON object")
    known = fields or {}
    values: dict[str, str] = {}
    for key, value in item.items():
        name = str(key)
        if not _unicode(name):
            return RecordError(source, row, "*", "a key is not valid Unicode text")
        if isinstance(value, list) and vocabulary_key(name) in lists:
            if any(isinstance(v, dict | list) for v in value):
                return RecordError(
                    source, row, _field(known, name), "nested values are not accepted"
                )
            text = json.dumps([str(v) for v in value if v is not None], ensure_ascii=False)
        elif isinstance(value, dict | list):
            return RecordError(source, row, _field(known, name), "nested values are not accepted")
        else:
            text = "" if value is None else str(value)
        if not _unicode(text):
            return RecordError(source, row, _field(known, name), "not valid Unicode text")
        values[name] = text
    return SourceRecord(source, row, values)


class JsonLinesSource:
    def __init__(self, path: Path, profile: Profile) -> None:
        self.path = path
        self.name = str(path)
        self.profile = profile
        self.lists = list_headers(profile)
        self.fields = header_fields(profile)

    @property
    def kind(self) -> SourceKind:
        return "jsonl"

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
            except RecursionError:
                yield RecordError(self.name, number, "*", "not valid JSON: nested too deeply")
                continue
            yield flat_values(self.name, number, item, self.lists, self.fields)
