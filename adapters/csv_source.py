"""Read an agency's CSV export as (row number, cells) pairs.

Row numbers are the file's own line numbers (the header is row 1), so an
error report points at the line a person would open. Header names are
trimmed and lower-cased; blank rows are skipped. A malformed row is yielded
as a `RecordError` in its place, so one bad line never ends the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from hub.errors import RecordError

Row = tuple[int, dict[str, str]]


def read_csv(path: Path) -> Iterator[Row | RecordError]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            return
        for cells in reader:
            row = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                yield RecordError(
                    str(path), row, "*", f"{len(cells)} cells where the header has {len(header)}"
                )
                continue
            yield row, {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
