"""The small interfaces of the agency sources.

`Source` is what every kind of source implements: it yields records and ends.
Its `kind` (`SourceKind`) is the bounded label the metrics count it under.
A source that is pushed to rather than read (`adapters.sources.http_push`)
stores each request through a `Sink`, which the adapter run implements.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from adapters.profile import Profile
from adapters.versions import Change
from hub.errors import RecordError

#: What kind of source a record came from: never a file name, URL or query.
SourceKind = Literal["csv", "tsv", "jsonl", "sql", "http", "other"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)


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

    @property
    def kind(self) -> SourceKind:
        """The kind of source, one of `SOURCE_KINDS` ("other" when none fits)."""
        ...

    def records(self) -> Iterator[SourceRecord | RecordError]: ...


class Ingested(Protocol):
    """What storing one source did (the pipeline's `RunSummary`)."""

    @property
    def accepted(self) -> int: ...

    @property
    def new(self) -> int: ...

    @property
    def changes(self) -> Mapping[Change, int]: ...

    @property
    def rejected(self) -> Sequence[RecordError]: ...


class Health(Protocol):
    """Whether what a sink stored is being sent on (the metrics' `OutboxHealth`)."""

    @property
    def stalled(self) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...


class Sink(Protocol):
    """Where a pushed source stores what it receives: the adapter run (`AdapterRun`)."""

    @property
    def profile(self) -> Profile:
        """The profile the records are mapped with."""
        ...

    @property
    def storing(self) -> bool:
        """False for a dry run: nothing would be stored."""
        ...

    def ingest(self, source: Source) -> Ingested:
        """Map and store every record of `source`; returns once they are committed."""
        ...

    def health(self) -> Health:
        """The outbox and its forwarder, as /health reports them."""
        ...
