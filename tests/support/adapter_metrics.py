"""Synthetic exports with planted bad rows, and the quarantine report the adapter writes
for them, as the adapter-metrics tests compare the counters with."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import get_args

from adapters.profile import Profile, SourceField
from adapters.synth.cases import child_pool
from adapters.synth.exports import ExpectedRow, export_encoding, write_export

POOL = child_pool(40, seed=11)
#: Planted rows the mapper never sees: the source rejects them whole, or on a key of their own.
BAD_CSV_LINE = "Jane Brokenrow,9990000000"
BAD_JSON_LINES = ('{"Jane Nestedkey": {"nhs": "9990000000"}}', "Jane Notjson 9990000000")


def planted_export(profile: Profile, path: Path, rows: int = 150) -> list[ExpectedRow]:
    """A synthetic export in `profile`'s shape with two more bad rows appended."""
    expected = write_export(profile, rows, 9, POOL, path)
    newline = "\n" if profile.format == "jsonl" else "\r\n"
    extra = BAD_JSON_LINES if profile.format == "jsonl" else (BAD_CSV_LINE,) * 2
    with path.open("ab") as out:
        for line in extra:
            out.write((line + newline).encode(export_encoding(profile)))
    return expected


def quarantined(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def label(field: str) -> str:
    """The quarantine report's field as the metric labels it (spelled out, not via the code)."""
    if field == "*":
        return "record"
    return field if field in get_args(SourceField) else "other"
