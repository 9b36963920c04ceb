"""CSV and TSV exports, read as the profile says (delimiter, text encodings).

Row numbers are the file's own line numbers (the header is line 1), so an
error report points at the line a person would open. Blank rows are skipped.
A malformed row is yielded as a `RecordError` in its place, so one bad line
never ends the file. The encodings are tried in the profile's order on the
whole file (``utf-8-sig`` first handles a byte-order mark; ``cp1252`` is
what spreadsheets saved on Windows produce).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from adapters.profile import Profile
from adapters.sources.base import SourceKind, SourceRecord
from hub.errors import RecordError


class FileError(RecordError):
    """The whole file is unusable (unreadable, undecodable, no header)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(source, 0, "*", reason)


def decode(path: Path, encodings: tuple[str, ...]) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileError(str(path), f"cannot read the file: {exc.strerror}") from exc
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise FileError(
        str(path), f"text is in none of the profile's encodings ({', '.join(encodings)})"
    )


class CsvSource:
    def __init__(self, path: Path, profile: Profile) -> None:
        self.path = path
        self.name = str(path)
        self.profile = profile

    @property
    def kind(self) -> SourceKind:
        return "tsv" if self.profile.delimiter == "\t" else "csv"

    def records(self) -> Iterator[SourceRecord | RecordError]:
        text = decode(self.path, self.profile.encodings)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.profile.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise FileError(self.name, "the file is empty") from None
        except csv.Error as exc:
            raise FileError(self.name, f"the header is not valid CSV: {exc}") from exc
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RecordError(self.name, reader.line_num, "*", f"not valid CSV: {exc}")
                continue
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                yield RecordError(
                    self.name,
                    reader.line_num,
                    "*",
                    f"{len(cells)} cells where the header has {len(header)}",
                )
                continue
            yield SourceRecord(self.name, reader.line_num, dict(zip(header, cells, strict=True)))
