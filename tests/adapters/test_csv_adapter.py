"""The CSV adapter against the real broker: what reaches Kafka, and what never does."""

from __future__ import annotations

import csv
from pathlib import Path

from kafka import KafkaConsumer

from adapters.pipeline import RunSummary
from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.codec import Codec
from hub.models import CaseEvent, LinkageBasis
from hub.settings import HubSettings
from tests.support.publishing import publish_file

GOOD = {
    "record_id": "CAMHS-1",
    "record_version": "1",
    "event_type": "referral",
    "occurred_on": "2026-09-14",
    "nhs_number": "943 476 5919",
    "family_name": "Nowak",
    "given_name": "Zara",
    "date_of_birth": "2013-05-02",
    "sex": "F",
    "postcode": "DY1 4RT",
    "online_component": "yes",
    "risk_codes": "grooming;SEXTORTION",
    "outcome": "police referral",
}


def consume_all(settings: HubSettings, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        group_id=f"{settings.topic_namespace}reader",
    )
    try:
        messages = [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()
    assert len(messages) == expected
    return messages


def run(settings: HubSettings, path: Path, tmp_path: Path) -> RunSummary:
    return publish_file(settings, path, "camhs")


def test_good_row_maps_minimises_and_is_keyed_by_subject(
    topics: HubSettings, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    write_csv(path, [GOOD])
    run(topics, path, tmp_path)
    ((key, value),) = consume_all(topics, topics.case_topic("camhs"), 1)
    event = CaseEvent.from_avro(Codec("case_event").decode(value))
    assert event.subject is not None and key == event.subject.value.encode()
    assert event.subject.basis is LinkageBasis.NHS_NUMBER
    assert event.age_band == "11-13"  # 13 on 2026-09-14
    assert event.area_code == "DY1 4"
    assert event.online_risks == ("GROOMING", "SEXTORTION")
    assert event.event_type.value == "REFERRAL" and event.outcome.value == "POLICE_REFERRAL"


def test_bad_rows_are_quarantined_and_the_rest_published(
    topics: HubSettings, tmp_path: Path
) -> None:
    rows = [
        GOOD,
        GOOD | {"record_id": "CAMHS-2", "nhs_number": "9434765918"},
        GOOD | {"record_id": "CAMHS-3", "occurred_on": "14/09/2026"},
        GOOD | {"record_id": "CAMHS-4", "outcome": "Zara Nowak said something"},
        GOOD | {"record_id": "CAMHS-5"},
    ]
    path = tmp_path / "export.csv"
    write_csv(path, rows)
    summary = run(topics, path, tmp_path)
    assert summary.accepted == 2
    rejected = {(e.row, e.field) for e in summary.rejected}
    assert rejected == {(3, "nhs_number"), (4, "occurred_on"), (5, "outcome")}
    text = (tmp_path / "quarantine" / "export.csv.rejects.csv").read_text()
    assert "outcome" in text
    assert [r["row"] for r in csv.DictReader(text.splitlines())] == ["3", "4", "5"]
    assert "9434765918" not in text and "Zara" not in text and "14/09/2026" not in text
    consume_all(topics, topics.case_topic("camhs"), 2)


def test_no_planted_identifier_reaches_kafka(topics: HubSettings, tmp_path: Path) -> None:
    pool = child_pool(60, seed=3)
    rows = synth_rows("camhs", 300, seed=5, pool=pool)
    path = tmp_path / "export.csv"
    write_csv(path, rows)
    summary = run(topics, path, tmp_path)
    messages = consume_all(topics, topics.case_topic("camhs"), summary.stored)
    blob = b"\n".join(k + b"\0" + v for k, v in messages)
    for child in pool:
        for planted in (
            child.nhs_number,
            child.family_name,
            child.given_name,
            child.born.isoformat(),
            child.postcode,
            child.postcode.replace(" ", ""),
        ):
            assert planted.encode() not in blob, "an identifier reached Kafka"
    for row in rows:
        assert row["record_id"].encode() not in blob
