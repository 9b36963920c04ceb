from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from hub.codec import MAGIC, Codec
from hub.errors import CodecError
from hub.models import AgencyType, CaseEvent, EventType, OnlineComponent


def sample_event() -> CaseEvent:
    return CaseEvent(
        event_id="a" * 64,
        agency_id="camhs",
        agency_type=AgencyType.CAMHS,
        event_type=EventType.REFERRAL,
        record_key="b" * 64,
        record_version=1,
        occurred_on=date(2026, 10, 3),
        reported_at=datetime(2026, 10, 4, 9, 30, tzinfo=UTC),
        age_band="11-13",
        online_component=OnlineComponent.YES,
        online_risks=("GROOMING",),
    )


def test_crc64_avro_fingerprint_known_answer() -> None:
    # The Avro specification's value for the schema "null": 0x63dd24e7cc258f8a,
    # written little-endian in the single-object header.
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form("null"), "CRC-64-AVRO"))
    assert int.from_bytes(fp, "little") == 0x63DD24E7CC258F8A


def test_round_trip_and_header() -> None:
    codec = Codec("case_event")
    message = codec.encode(sample_event().to_avro())
    assert message[:2] == MAGIC
    assert message[2:10] == codec.current.fingerprint
    assert CaseEvent.from_avro(codec.decode(message)) == sample_event()


def test_unknown_fingerprint_and_truncation_are_clear_errors() -> None:
    codec = Codec("case_event")
    message = codec.encode(sample_event().to_avro())
    with pytest.raises(CodecError, match="unknown case_event schema fingerprint"):
        codec.decode(MAGIC + b"\x00" * 8 + message[10:])
    with pytest.raises(CodecError, match="truncated or corrupt"):
        codec.decode(message[:-20])
    with pytest.raises(CodecError, match="not an Avro single-object"):
        codec.decode(b"\x00\x01")


def test_an_old_version_is_read_into_the_current_one(tmp_path: Path) -> None:
    # A v2 that adds a field with a default: a v1 message still decodes, filling it in.
    v1 = json.loads(Path("schemas/case_event/v1.avsc").read_text())
    v2 = dict(v1, fields=[*v1["fields"], {"name": "extra", "type": "string", "default": "x"}])
    (tmp_path / "case_event").mkdir()
    (tmp_path / "case_event" / "v1.avsc").write_text(json.dumps(v1))
    (tmp_path / "case_event" / "v2.avsc").write_text(json.dumps(v2))
    old_writer = Codec("case_event")
    reader = Codec("case_event", root=tmp_path)
    assert reader.current.version == 2
    record = reader.decode(old_writer.encode(sample_event().to_avro()))
    assert record["extra"] == "x" and record["online_risks"] == ["GROOMING"]
