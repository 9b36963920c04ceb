from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.codec import MAGIC, SCHEMAS_DIR, Codec
from hub.errors import CodecError
from hub.models import (
    AgencyType,
    CaseEvent,
    EventType,
    LinkageBasis,
    OnlineComponent,
    Outcome,
    PlatformType,
    Pseudonym,
    Role,
    Sex,
    Vulnerability,
)
from tests.support.events import sample_event

GOLDEN_V1 = Path(__file__).parent / "golden" / "case_event_v1.hex"
GOLDEN = Path(__file__).parent / "golden" / "case_event_v2.hex"


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
        codec.decode(b"\x01\x02")


def shipped_only(tmp_path: Path, *versions: int) -> Path:
    """A schema root holding only the given shipped versions of case_event."""
    (tmp_path / "case_event").mkdir(parents=True)
    for version in versions:
        name = f"v{version}.avsc"
        (tmp_path / "case_event" / name).write_text((SCHEMAS_DIR / "case_event" / name).read_text())
    return tmp_path


def test_a_v1_event_is_read_by_the_current_reader(tmp_path: Path) -> None:
    """An adapter still on v1 and a worker on v2: v2's fields take their defaults."""
    v1_writer = Codec("case_event", root=shipped_only(tmp_path, 1))
    record = Codec("case_event").decode(v1_writer.encode(sample_event().to_avro()))
    assert record["other_subjects"] == [] and record["online_recorded"] is True
    assert record["online_risks"] == ["GROOMING"]


def test_an_old_version_is_read_into_the_current_one(tmp_path: Path) -> None:
    # A next version that adds a field with a default: a current message still decodes.
    current = Codec("case_event").current
    schema = json.loads(current.path.read_text())
    after = dict(
        schema, fields=[*schema["fields"], {"name": "extra", "type": "string", "default": "x"}]
    )
    root = shipped_only(tmp_path, *range(1, current.version + 1))
    (root / "case_event" / f"v{current.version + 1}.avsc").write_text(json.dumps(after))
    old_writer = Codec("case_event")
    reader = Codec("case_event", root=root)
    assert reader.current.version == current.version + 1
    record = reader.decode(old_writer.encode(sample_event().to_avro()))
    assert record["extra"] == "x" and record["online_risks"] == ["GROOMING"]


def test_golden_bytes() -> None:
    """The encoding of one event is pinned: a change here breaks every partner's reader."""
    codec = Codec("case_event")
    golden = bytes.fromhex(GOLDEN.read_text().strip())
    assert codec.encode(sample_event().to_avro()) == golden
    assert CaseEvent.from_avro(codec.decode(golden)) == sample_event()


def test_v1_golden_bytes_still_decode() -> None:
    """What v1 adapters sent is still read, and means the same."""
    golden = bytes.fromhex(GOLDEN_V1.read_text().strip())
    expected = sample_event().model_copy(
        update={"schema_version": 1, "other_subjects": (), "online_recorded": True}
    )
    assert CaseEvent.from_avro(Codec("case_event").decode(golden)) == expected


def test_confluent_wire_format() -> None:
    codec = Codec("case_event", registry_ids={2: 417})
    message = codec.encode(sample_event().to_avro(), wire="confluent")
    assert message[:5] == b"\x00" + (417).to_bytes(4, "big")
    assert CaseEvent.from_avro(codec.decode(message)) == sample_event()
    with pytest.raises(CodecError, match="unknown schema registry id 417"):
        Codec("case_event", registry_ids={2: 9}).decode(message)
    with pytest.raises(CodecError, match="no schema registry id"):
        Codec("case_event").encode(sample_event().to_avro(), wire="confluent")


HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
LABEL = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
PSEUDONYMS = st.builds(
    Pseudonym, value=HEX64, key_id=LABEL.filter(bool), basis=st.sampled_from(LinkageBasis)
)
EVENTS = st.builds(
    CaseEvent,
    event_id=HEX64,
    agency_id=LABEL.filter(bool),
    agency_type=st.sampled_from(AgencyType),
    event_type=st.sampled_from(EventType),
    record_key=HEX64,
    record_version=st.integers(1, 2**31 - 1),
    subject=st.none() | PSEUDONYMS,
    previous_subjects=st.lists(PSEUDONYMS, max_size=2).map(tuple),
    case=st.none() | PSEUDONYMS,
    occurred_on=st.dates(date(1970, 1, 1), date(2100, 1, 1)),
    reported_at=st.datetimes(
        datetime(1970, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
    age_band=LABEL,
    sex=st.sampled_from(Sex),
    area_code=LABEL,
    vulnerabilities=st.lists(st.sampled_from(Vulnerability), max_size=3).map(tuple),
    threshold_level=st.none() | st.integers(1, 4),
    online_component=st.sampled_from(OnlineComponent),
    online_risks=st.lists(LABEL, max_size=3).map(tuple),
    platform_types=st.lists(st.sampled_from(PlatformType), max_size=3).map(tuple),
    role=st.sampled_from(Role),
    outcome=st.sampled_from(Outcome),
)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_round_trip_model_bytes_model(event: CaseEvent) -> None:
    codec = Codec("case_event")
    assert CaseEvent.from_avro(codec.decode(codec.encode(event.to_avro()))) == event
