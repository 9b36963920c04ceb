"""A rolling upgrade to the next case_event schema version, on the real broker, in both
orders: every event is counted exactly once once both sides run the new version and the
deferred events are replayed.

The next version is built here (the current one plus an optional field) in a temporary
schemas root. The "old" worker ships only the released versions; the upgraded one reads
HUB_SCHEMAS_DIR pointing at the root with the next version too."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

from kafka import KafkaProducer

from hub.codec import Codec
from hub.models import CaseEvent
from hub.settings import HubSettings
from tests.support.agreements import partner_ids
from tests.support.messages import EXTRA_FIELD, by_code, next_schemas, total, wait_for
from tests.support.processes import WorkerProcess, hub
from tests.support.scenario import Scenario, send


def send_next(settings: HubSettings, events: list[CaseEvent], codec: Codec) -> int:
    """Send `events` as an agency on the next schema version would."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for event in events:
            key = (event.subject.value if event.subject else event.record_key).encode()
            record = {**event.to_avro(), EXTRA_FIELD: "new in the next version"}
            producer.send(settings.case_topic(event.agency_id), key=key, value=codec.encode(record))
        producer.flush()
    finally:
        producer.close()
    return len(events)


def expected_codes(scenario: Scenario) -> dict[str, int]:
    codes = [c for v in scenario.truth() if v.live for c in v.codes]
    return {c: codes.count(c) for c in set(codes)}


def live(scenario: Scenario) -> int:
    return sum(1 for v in scenario.truth() if v.live)


def later_changes(scenario: Scenario, among: list[CaseEvent]) -> list[CaseEvent]:
    return (
        scenario.new_records(40, date(2026, 8, 1), date(2026, 10, 31))
        + scenario.corrections(15, among)
        + scenario.withdrawals(5, among)
    )


def replay(settings: HubSettings) -> str:
    done = hub(settings, "streams", "replay-deferred")
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_exact(samples: dict[str, float], scenario: Scenario) -> None:
    assert samples["hub_events_counted"] == live(scenario)
    assert by_code(samples) == expected_codes(scenario)
    assert total(samples, "hub_events_rejected_total") == 0


def test_agencies_upgraded_before_the_hub_lose_nothing(topics: HubSettings, tmp_path: Path) -> None:
    old = topics
    new = old.model_copy(update={"schemas_dir": next_schemas(tmp_path)})
    codec = Codec("case_event", new.schemas_dir)
    assert codec.current.version == Codec("case_event").current.version + 1
    rnd = random.Random(3)
    scenario = Scenario.create(partner_ids(old), children=40, seed=3)
    first = scenario.new_records(80, date(2026, 6, 1), date(2026, 9, 30))
    sent = send(old, first, rnd, replay=0.1)
    newer = sent_next = send_next(old, later_changes(scenario, first), codec)
    sent += sent_next

    worker = WorkerProcess(old, tmp_path / "old-worker.log")
    try:
        worker.start()
        samples = wait_for(worker, lambda s: s.get("hub_events_consumed_total", 0) >= sent, "read")
        samples = wait_for(worker, lambda s: s.get("hub_events_deferred_waiting") == newer, "kept")
        assert samples["hub_events_deferred_total"] == newer
        assert samples["hub_events_counted"] == len(first)  # the newer events wait
        # Replayed by a hub that still lacks the schema: they stay deferred.
        assert f"{newer} still wait" in replay(old)
        wait_for(worker, lambda s: s.get("hub_events_deferred_waiting") == newer, "kept again")
    finally:
        worker.stop()

    upgraded = WorkerProcess(new, tmp_path / "new-worker.log")
    try:
        upgraded.start()
        assert f"replayed {newer} deferred events" in replay(new)
        samples = wait_for(
            upgraded, lambda s: s.get("hub_events_counted") == live(scenario), "count all"
        )
        samples = wait_for(upgraded, lambda s: s.get("hub_events_deferred_waiting") == 0, "none")
        assert_exact(samples, scenario)
        assert samples["hub_events_deferred_total"] == 0
        assert samples["hub_corrections_total"] == 15
        assert samples["hub_withdrawals_total"] == 5
        assert samples["hub_stale_versions_dropped_total"] == 0
        assert "replayed 0 deferred events" in replay(new)  # each one replayed once
    finally:
        upgraded.stop()


def test_hub_upgraded_before_the_agencies_counts_every_version(
    topics: HubSettings, tmp_path: Path
) -> None:
    old = topics
    new = old.model_copy(update={"schemas_dir": next_schemas(tmp_path)})
    codec = Codec("case_event", new.schemas_dir)
    rnd = random.Random(4)
    scenario = Scenario.create(partner_ids(old), children=40, seed=4)
    first = scenario.new_records(80, date(2026, 6, 1), date(2026, 9, 30))
    sent = send(old, first, rnd, replay=0.1)

    worker = WorkerProcess(old, tmp_path / "old-worker.log")
    try:
        worker.start()
        wait_for(worker, lambda s: s.get("hub_events_counted") == len(first), "count")
    finally:
        worker.stop()

    upgraded = WorkerProcess(new, tmp_path / "new-worker.log")
    try:
        upgraded.start()
        # Agencies upgrade one by one: some send the next version, others still the current.
        changes = later_changes(scenario, first)
        moved = [e for e in changes if e.agency_id != "police"]
        sent += send_next(old, moved, codec)
        sent += send(old, [e for e in changes if e.agency_id == "police"], rnd, replay=0.0)
        samples = wait_for(
            upgraded, lambda s: s.get("hub_events_counted") == live(scenario), "count all"
        )
        assert_exact(samples, scenario)
        assert samples["hub_events_deferred_total"] == 0
        assert "replayed 0 deferred events" in replay(new)
        assert moved and sent > len(first)
    finally:
        upgraded.stop()
