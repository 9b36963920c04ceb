"""`hub schema check`: every version of every schema is compatible with every earlier one.

Backward: the newer version reads data written with the older one (a hub
upgraded before its agencies). Forward: the older version reads data written
with the newer one (an agency upgraded before the hub). Checked transitively,
each pair, with the Apache Avro library's reader/writer compatibility rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.compatibility
import avro.schema

from hub.codec import SCHEMAS_DIR, SchemaVersion, versions


@dataclass(frozen=True)
class Incompatibility:
    schema: str
    reader: int
    writer: int
    direction: str
    field: str
    location: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.schema}: v{self.reader} cannot read data written with v{self.writer}"
            f" ({self.direction}): field {self.field!r} at {self.location}: {self.reason}"
        )


def schema_names(root: Path = SCHEMAS_DIR) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("v*.avsc")))


def check(root: Path = SCHEMAS_DIR) -> tuple[int, list[Incompatibility]]:
    """(pairs checked, problems) over every schema under `root`."""
    pairs = 0
    problems: list[Incompatibility] = []
    for name in schema_names(root):
        shipped = versions(name, root)
        for version in shipped:
            _parse(version)  # every version must also parse with the Apache Avro library
        for i, newer in enumerate(shipped):
            for older in shipped[:i]:
                pairs += 1
                problems += _compare(name, reader=newer, writer=older, direction="backward")
                problems += _compare(name, reader=older, writer=newer, direction="forward")
    return pairs, problems


def _parse(version: SchemaVersion) -> tuple[avro.schema.Schema, Any]:
    raw = json.loads(version.path.read_text(encoding="utf-8"))
    return avro.schema.parse(json.dumps(raw)), raw


def _compare(
    name: str, reader: SchemaVersion, writer: SchemaVersion, direction: str
) -> list[Incompatibility]:
    reader_schema, reader_raw = _parse(reader)
    writer_schema, writer_raw = _parse(writer)
    checker = avro.compatibility.ReaderWriterCompatibilityChecker()
    result = checker.get_compatibility(reader_schema, writer_schema)
    if result.compatibility is avro.compatibility.SchemaCompatibilityType.compatible:
        return []
    locations = sorted(result.locations - {"/"}) or ["/"]
    fields = sorted(
        {_field_at(reader_raw, loc) or _field_at(writer_raw, loc) or loc for loc in locations}
    )
    reasons = sorted({r.value for r in result.incompatibilities})
    return [
        Incompatibility(
            name,
            reader.version,
            writer.version,
            direction,
            ", ".join(fields),
            ", ".join(locations),
            "; ".join(reasons),
        )
    ]


def _field_at(schema: Any, pointer: str) -> str | None:
    """The dotted field path a JSON pointer such as /fields/3/type/fields/0 passes through."""
    node, names, previous = schema, [], ""
    for part in pointer.strip("/").split("/"):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            break
        if previous == "fields" and isinstance(node, dict) and "name" in node:
            names.append(str(node["name"]))
        previous = part
    return ".".join(names) or None
