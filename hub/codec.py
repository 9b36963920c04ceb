"""Avro encoding of hub messages: single-object encoding, or the Confluent wire format.

A single-object message is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of
the writer schema's canonical form + the Avro binary body. A reader finds the
writer schema by fingerprint among every shipped version in ``schemas/`` and
resolves it into the current version, so an event written with v1 is still
read after v2 ships.

Partners who run a schema registry can use the Confluent wire format
instead: ``00`` + the 4-byte big-endian id their registry gave the schema
version + the body. The ids are configuration (version -> id); `decode`
recognises either format by its first byte.

A message whose fingerprint or registry id no shipped version has raises
``UnknownSchemaError``: it was most likely written with a newer version, and
the stream worker keeps it (``streams.deferred``) instead of dropping it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from hub import resources
from hub.errors import CodecError, ImplausibleValueError, UnknownSchemaError

SCHEMAS_DIR = resources.schemas()
MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = 5
HEADER_SIZE = len(MAGIC) + 8
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")
_OUT_OF_RANGE = re.compile(r"ordinal must be|out of range")


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

    def __init__(
        self,
        name: str,
        root: Path = SCHEMAS_DIR,
        registry_ids: Mapping[int, int] | None = None,
    ) -> None:
        """`registry_ids` maps schema version -> schema registry id, for the Confluent format."""
        shipped = versions(name, root)
        self.name = name
        self.current = shipped[-1]
        self._by_fingerprint = {v.fingerprint: v for v in shipped}
        by_version = {v.version: v for v in shipped}
        ids = dict(registry_ids or {})
        unknown = sorted(set(ids) - set(by_version))
        if unknown:
            raise CodecError(f"registry ids given for {name} versions not shipped: {unknown}")
        self._registry_id = ids.get(self.current.version)
        self._by_registry_id = {rid: by_version[v] for v, rid in ids.items()}

    def encode(self, record: dict[str, Any], wire: str = "single-object") -> bytes:
        """Encode with the current version; `wire` is "single-object" or "confluent"."""
        out = io.BytesIO()
        if wire == "confluent":
            if self._registry_id is None:
                raise CodecError(
                    f"no schema registry id configured for {self.name} v{self.current.version}"
                )
            out.write(CONFLUENT_MAGIC + self._registry_id.to_bytes(4, "big"))
        elif wire == "single-object":
            out.write(self.current.header)
        else:
            raise CodecError(f"unknown wire format {wire!r}: single-object or confluent")
        fastavro.schemaless_writer(out, self.current.parsed, record)
        return out.getvalue()

    def decode(self, message: bytes) -> dict[str, Any]:
        if message[:1] == CONFLUENT_MAGIC:
            return self._decode_confluent(message)
        if len(message) < HEADER_SIZE or message[:2] != MAGIC:
            raise CodecError(
                f"not an Avro single-object {self.name} message"
                f" ({len(message)} bytes, header {message[:2].hex() or 'missing'})"
            )
        writer = self._by_fingerprint.get(message[2:HEADER_SIZE])
        if writer is None:
            raise UnknownSchemaError(
                f"unknown {self.name} schema fingerprint {message[2:HEADER_SIZE].hex()};"
                " the writer used a schema version this reader does not ship"
            )
        return self._read(writer, message[HEADER_SIZE:])

    def _decode_confluent(self, message: bytes) -> dict[str, Any]:
        if len(message) < CONFLUENT_HEADER_SIZE:
            raise CodecError(f"truncated Confluent-format {self.name} message")
        schema_id = int.from_bytes(message[1:CONFLUENT_HEADER_SIZE], "big")
        writer = self._by_registry_id.get(schema_id)
        if writer is None:
            raise UnknownSchemaError(
                f"unknown schema registry id {schema_id} for {self.name}; configure which"
                " shipped version it is"
            )
        return self._read(writer, message[CONFLUENT_HEADER_SIZE:])

    def _read(self, writer: SchemaVersion, body: bytes) -> dict[str, Any]:
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(body), writer.parsed, self.current.parsed
            )
        except OverflowError as exc:
            raise ImplausibleValueError(
                f"{self.name} v{writer.version} message with a date or number out of range"
            ) from exc
        except ValueError as exc:
            if _OUT_OF_RANGE.search(str(exc)):  # date.fromordinal, datetime: year 0 or < 1
                raise ImplausibleValueError(
                    f"{self.name} v{writer.version} message with a date out of range"
                ) from exc
            raise CodecError(
                f"truncated or corrupt {self.name} v{writer.version} message: {exc}"
            ) from exc
        except (EOFError, IndexError, UnicodeDecodeError) as exc:
            raise CodecError(
                f"truncated or corrupt {self.name} v{writer.version} message: {exc}"
            ) from exc
        if not isinstance(record, dict):
            raise CodecError(f"{self.name} message did not decode to a record")
        return record
