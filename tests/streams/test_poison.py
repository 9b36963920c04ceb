"""Poison on the real broker: every kind is refused under its reason, counted, and the
worker goes on; valid events around it are counted exactly; an event written with an
unknown schema is kept on the deferred topic, not lost."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from hub.codec import CONFLUENT_MAGIC, HEADER_SIZE, MAGIC, Codec
from hub.errors import CodecError, UnknownSchemaError
from hub.settings import HubSettings
from streams.deferred import ORIGIN_KEY, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC
from tests.support.agreements import partner_ids
from tests.support.messages import at, by_code, produce, raw_body, read_all, total, wait_for
from tests.support.processes import WorkerProcess
from tests.support.scenario import Scenario, send


def test_poison_is_counted_by_reason_and_the_rest_counted_exactly(
    topics: HubSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = topics
    rnd = random.Random(7)
    codec = Codec("case_event")
    scenario = Scenario.create(partner_ids(settings), children=40, seed=7)
    first = scenario.new_records(60, date(2026, 6, 1), date(2026, 9, 30))
    camhs = next(e for e in first if e.agency_id == "camhs")
    police = next(e for e in first if e.agency_id == "police")
    camhs_topic = settings.case_topic("camhs")
    key = (camhs.subject.value if camhs.subject else camhs.record_key).encode()
    record = camhs.to_avro()
    good = codec.encode(record)
    body = good[HEADER_SIZE:]

    def variant(**changes: object) -> bytes:
        return codec.encode({**record, "event_id": f"{rnd.getrandbits(256):064x}", **changes})

    truncated = good[: HEADER_SIZE + 12]
    with pytest.raises(CodecError) as caught:
        codec.decode(truncated)
    assert not isinstance(caught.value, UnknownSchemaError)
    elsewhere = {**police.to_avro(), "record_key": f"{rnd.getrandbits(256):064x}"}
    poison: dict[str, list[bytes | None]] = {
        "undecodable": [b"\x7f" + rnd.randbytes(60), truncated],
        "implausible": [
            raw_body(codec, record, reported_at=2**62),
            raw_body(codec, record, occurred_on=2**31 - 1),
            variant(occurred_on=date(9999, 12, 31)),
            variant(reported_at=at(9999, 12, 31)),
            variant(occurred_on=date(1989, 12, 31)),
            variant(record_version=2**31 - 1, area_code="E05009999"),
        ],
        "tombstone": [None],
        # police's body on camhs' topic: counted as neither
        "wrong_agency": [codec.encode(elsewhere)],
    }
    newer = [
        MAGIC + b"\x01" * 8 + body,  # a fingerprint no shipped version has
        CONFLUENT_MAGIC + (9999).to_bytes(4, "big") + body,  # an unknown registry id
    ]

    sent = send(settings, first, rnd, replay=0.2)
    messages = [(camhs_topic, key, value) for values in poison.values() for value in values]
    messages += [(camhs_topic, key, value) for value in newer]
    produce(settings, messages)
    # After the absurd version: a real correction of the same record still counts.
    later = scenario.corrections(1, [camhs]) + scenario.new_records(
        40, date(2026, 7, 1), date(2026, 10, 31)
    )
    sent += send(settings, later, rnd, replay=0.2)
    sent += len(messages)

    worker.start()
    samples = wait_for(
        worker, lambda s: s.get("hub_events_consumed_total", 0) >= sent, "consume all", 120
    )
    samples = wait_for(
        worker, lambda s: s.get("hub_events_counted", -1) == len(scenario.latest), "count"
    )
    assert samples["hub_events_consumed_total"] == sent  # read once: the agent never restarted
    truth = scenario.truth()
    assert samples["hub_events_counted"] == len(truth)
    expected = sum((list(v.codes) for v in truth if v.live), [])
    assert by_code(samples) == {c: expected.count(c) for c in set(expected)}
    for reason, values in poison.items():
        assert samples[f'hub_events_rejected_total{{reason="{reason}"}}'] == len(values), reason
    assert total(samples, "hub_events_rejected_total") == sum(map(len, poison.values()))
    assert samples["hub_events_deferred_total"] == len(newer)
    assert samples["hub_undecodable_messages_total"] == len(messages)
    assert samples["hub_corrections_total"] == 1

    deferred = read_all(settings, settings.deferred_topic)
    assert sorted(m.value for m in deferred) == sorted(newer)
    for message in deferred:
        origin = dict(message.headers)
        assert origin[ORIGIN_TOPIC] == camhs_topic.encode()
        assert origin[ORIGIN_KEY] == key == message.key
        assert int(origin[ORIGIN_PARTITION]) >= 0 and int(origin[ORIGIN_OFFSET]) >= 0
    wait_for(worker, lambda s: s.get("hub_events_deferred_waiting") == len(newer), "waiting")

    log = worker.log.read_text()
    assert "Traceback" not in log
    assert log.count("rejected ") >= len(messages) - len(newer)
    assert record["record_key"] not in log and key.decode() not in log  # never the payload
