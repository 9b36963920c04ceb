"""Both publishers put a key on the same partition, so a child's events meet in one
worker whichever publisher each agency runs (real broker)."""

from __future__ import annotations

import secrets

from kafka import KafkaConsumer

from adapters.outbox import OutboxItem
from adapters.publishers.confluent import ConfluentPublisher
from adapters.publishers.kafka_python import KafkaPythonPublisher
from hub.settings import HubSettings


def partitions_by_key(settings: HubSettings, topic: str) -> dict[bytes, int]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return {message.key: message.partition for message in consumer}
    finally:
        consumer.close()


def test_confluent_and_kafka_python_partition_keys_alike(topics: HubSettings) -> None:
    settings = topics
    camhs, police = (settings.case_topic(a) for a in ("camhs", "police"))
    keys = [secrets.token_hex(32).encode() for _ in range(200)]
    python_items = [OutboxItem(f"p{i}", camhs, key, b"v") for i, key in enumerate(keys)]
    confluent_items = [OutboxItem(f"c{i}", police, key, b"v") for i, key in enumerate(keys)]

    python_publisher = KafkaPythonPublisher(settings)
    confluent_publisher = ConfluentPublisher(settings)
    try:
        assert len(python_publisher.send(python_items)) == len(keys)
        assert len(confluent_publisher.send(confluent_items)) == len(keys)
    finally:
        python_publisher.close()
        confluent_publisher.close()

    by_python = partitions_by_key(settings, camhs)
    by_confluent = partitions_by_key(settings, police)
    assert len(by_python) == len(keys) and len(set(by_python.values())) == settings.case_partitions
    assert by_confluent == by_python
