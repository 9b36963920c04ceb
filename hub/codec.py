"""Avro encoding of hub messages with the single-object encoding header.

A message is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of
the writer schema's canonical form + the Avro binary body. A reader finds the
writer schema by fingerprint among every shipped version in ``schemas/`` and
resolves it into the current version, so an event written with v1 is still
read after v2 ships.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from hub.errors import CodecError
from hub.settings import REPO_ROOT

SCHEMAS_DIR = REPO_ROOT / "schemas"
MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    name: str
    version: int
    path: Path
    parsed: Any
    fingerprint: bytes

    @property
    def header(self) -> bytes:
        return MAGIC + self.fingerprint


def load_version(path: Path, name: str, version: int) -> SchemaVersion:
    raw = json.loads(path.read_text(encoding="utf-8"))
    parsed = fastavro.parse_schema(raw)
    canonical = to_parsing_canonical_form(raw)
    # fastavro returns the fingerprint's bytes in little-endian order as hex.
    fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return SchemaVersion(name, version, path, parsed, fp)


@cache
def versions(name: str, root: Path = SCHEMAS_DIR) -> tuple[SchemaVersion, ...]:
    """Every shipped version of schema `name`, oldest first."""
    found = []
    for path in (root / name).glob("v*.avsc"):
        match = _VERSION_FILE.match(path.name)
        if match:
            found.append(load_version(path, name, int(match.group(1))))
    if not found:
        raise CodecError(f"no schema versions found in {root / name}")
    return tuple(sorted(found, key=lambda v: v.version))


class Codec:
    """Encode with the current version of one schema; decode any shipped version."""

    def __init__(self, name: str, root: Path = SCHEMAS_DIR) -> None:
        shipped = versions(name, root)
        self.name = name
        self.current = shipped[-1]
        self._by_fingerprint = {v.fingerprint: v for v in shipped}

    def encode(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self.current.header)
        fastavro.schemaless_writer(out, self.current.parsed, record)
        return out.getvalue()

    def decode(self, message: bytes) -> dict[str, Any]:
        if len(message) < HEADER_SIZE or message[:2] != MAGIC:
            raise CodecError(
                f"not an Avro single-object {self.name} message"
                f" ({len(message)} bytes, header {message[:2].hex() or 'missing'})"
            )
        writer = self._by_fingerprint.get(message[2:HEADER_SIZE])
        if writer is None:
            raise CodecError(
                f"unknown {self.name} schema fingerprint {message[2:HEADER_SIZE].hex()};"
                " the writer used a schema version this reader does not ship"
            )
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(message[HEADER_SIZE:]), writer.parsed, self.current.parsed
            )
        except (EOFError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise CodecError(
                f"truncated or corrupt {self.name} v{writer.version} message: {exc}"
            ) from exc
        if not isinstance(record, dict):
            raise CodecError(f"{self.name} message did not decode to a record")
        return record
