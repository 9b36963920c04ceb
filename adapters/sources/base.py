"""The one small interface every kind of agency source implements."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from hub.errors import RecordError


@dataclass(frozen=True)
class SourceRecord:
    """One record as the agency's system holds it: header -> text, and where it came from.

    `source` and `row` are what an error report names: a file and its line
    number, a query and its result row, a request and its item.
    """

    source: str
    row: int
    values: Mapping[str, str]


class Source(Protocol):
    """Yields records, or a `RecordError` in place of one it could not read, then ends.

    An error that makes the whole source unusable is raised, not yielded.
    """

    name: str

    def records(self) -> Iterator[SourceRecord | RecordError]: ...
