"""End to end on the real broker: replays, SIGKILLed workers, and exact counts afterwards."""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings
from tests.support.agreements import agreement_of, partner_ids
from tests.support.messages import by_code
from tests.support.processes import WorkerProcess
from tests.support.publishing import ground_truth, publish_file


def replay_topics(settings: HubSettings) -> int:
    """Send every message on the case topics again, byte for byte; the count now on them."""
    topics = [settings.topic(topic) for topic in agreement_of(settings).case_topics]
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        messages = [(m.topic, m.key, m.value) for m in consumer]
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        consumer.close()
        producer.close()
    return len(messages)


def wait_until(worker: WorkerProcess, predicate: str, limit: float, timeout: float) -> float:
    """Poll the metric `predicate` until it reaches `limit`; its value then."""
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        try:
            value = worker.metrics().get(predicate, 0.0)
        except OSError:
            value = 0.0
        if value >= limit:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{predicate} stayed at {value}, below {limit}, for {timeout} s")


def test_counts_exact_after_replays_and_sigkill(
    topics: HubSettings, worker: WorkerProcess, tmp_path: Path
) -> None:
    settings = topics
    pseudonymiser = Pseudonymiser.from_settings(settings)
    pool = child_pool(400)
    files = {}
    for agency in partner_ids(settings):
        path = tmp_path / f"{agency}.csv"
        write_csv(path, synth_rows(agency, 4000, seed=11, pool=pool))
        files[agency] = path
    truth = ground_truth(files, pseudonymiser)
    expected, expected_total = truth.by_code, truth.records

    for agency, path in files.items():
        publish_file(settings, path, agency)
    # A whole re-export on top of the in-file replays: sent again, bypassing the outbox.
    published = replay_topics(settings) * 2
    assert published == 2 * truth.events  # every event is on the topics twice

    worker.start()
    first = wait_until(worker, "hub_events_consumed_total", published * 0.25, 120)
    at_kill = worker.metrics().get("hub_events_counted", 0)
    worker.kill()
    assert 0 < at_kill < expected_total, (first, at_kill, expected_total)

    worker.start()
    wait_until(worker, "hub_events_consumed_total", published * 0.2, 120)
    worker.kill()

    worker.start()
    wait_until(worker, "hub_events_counted", expected_total, 180)
    time.sleep(3)  # anything still in flight would push the counts past the truth
    samples = worker.metrics()
    assert samples["hub_events_counted"] == expected_total
    assert by_code(samples) == expected
    assert samples["hub_undecodable_messages_total"] == 0


def test_counts_exact_after_sigkill_with_static_membership(
    topics: HubSettings, tmp_path: Path
) -> None:
    """A worker with a static member id (HUB_WORKER_INSTANCE_ID), SIGKILLed mid-stream and
    restarted under the same id, takes its partitions back and counts every record once."""
    settings = topics.model_copy(update={"worker_instance_id": "hub-worker-test"})
    pseudonymiser = Pseudonymiser.from_settings(settings)
    pool = child_pool(200)
    files = {}
    for agency in partner_ids(settings):
        path = tmp_path / f"{agency}.csv"
        write_csv(path, synth_rows(agency, 1500, seed=12, pool=pool))
        files[agency] = path
    truth = ground_truth(files, pseudonymiser)
    for agency, path in files.items():
        publish_file(settings, path, agency)
    worker = WorkerProcess(settings, tmp_path / "static.log")
    try:
        worker.start()
        wait_until(worker, "hub_events_consumed_total", truth.events * 0.3, 120)
        worker.kill()
        worker.start()
        wait_until(worker, "hub_events_counted", truth.records, 180)
        time.sleep(3)  # anything still in flight would push the counts past the truth
        samples = worker.metrics()
        members = group_members(settings)
    finally:
        worker.stop()
    assert samples["hub_events_counted"] == truth.records
    assert by_code(samples) == truth.by_code
    assert [m.get("group_instance_id") for m in members] == ["hub-worker-test"]


def group_members(settings: HubSettings) -> list[dict[str, object]]:
    """The workers' consumer group's members, as the broker describes them."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        groups = admin.describe_groups([settings.worker_app_id])
    finally:
        admin.close()
    members: list[dict[str, object]] = groups[settings.worker_app_id]["members"]
    return members
