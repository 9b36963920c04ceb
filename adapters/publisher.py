"""Publish encoded case events to Kafka with kafka-python: acks=all, idempotence on.

Each event is keyed by its subject pseudonym (or, with no linkable subject,
by its record key), so every event about one child lands on the same
partition of every agency topic.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from hub.errors import PublishError
from hub.models import CaseEvent
from hub.settings import HubSettings


def partition_key(event: CaseEvent) -> bytes:
    return (event.subject.value if event.subject else event.record_key).encode("ascii")


class KafkaPublisher:
    def __init__(self, settings: HubSettings, client_id: str = "hub-adapter") -> None:
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_block_ms=30_000,
            )
        except KafkaError as exc:
            raise PublishError(
                f"cannot reach Kafka at {settings.bootstrap_servers} ({exc});"
                " start it with `hub broker start` or set HUB_BOOTSTRAP"
            ) from exc
        self._pending: list[tuple[str, Any]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        try:
            future = self._producer.send(topic, key=key, value=value)
        except KafkaError as exc:
            raise PublishError(
                f"Kafka refused an event for {topic}: {exc}. Does the topic exist?"
                " `hub topics apply` creates the hub's topics."
            ) from exc
        self._pending.append((topic, future))

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for every pending delivery report; the number acknowledged, else PublishError."""
        self._producer.flush(timeout=timeout)
        pending, self._pending = self._pending, []
        failures = []
        for topic, future in pending:
            try:
                future.get(timeout=0)
            except KafkaError as exc:
                failures.append(f"{topic}: {exc}")
        if failures:
            raise PublishError(
                f"{len(failures)} of {len(pending)} events were not acknowledged;"
                f" first: {failures[0]}"
            )
        return len(pending)

    def close(self) -> None:
        self._producer.close(timeout=10)
