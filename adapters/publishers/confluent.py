"""The optional confluent-kafka (librdkafka) publisher: HUB_PUBLISHER=confluent.

Same contract as the kafka-python one: acks=all, idempotence on, an event
counts as sent only on its own successful delivery report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from adapters.outbox import OutboxItem
from adapters.publishers.base import KafkaUnavailable
from hub.kafka.security import client_config
from hub.settings import HubSettings


class ConfluentPublisher:
    def __init__(self, settings: HubSettings, client_id: str = "hub-adapter") -> None:
        self.settings = settings
        self._producer = Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                # Java's and kafka-python's partitioner: a child's events land on the
                # same partition whichever publisher each agency runs (librdkafka's
                # default, CRC32, would split them and break linkage).
                "partitioner": "murmur2_random",
                "message.timeout.ms": max(1000, int(settings.publish_timeout * 1000)),
                "queue.buffering.max.messages": 500_000,
                **client_config(settings).librdkafka(),
            }
        )

    def send(self, items: Sequence[OutboxItem]) -> list[str]:
        acknowledged: list[str] = []
        errors: list[KafkaError] = []

        def report(event_id: str) -> Callable[[KafkaError | None, Message[bytes, bytes]], None]:
            def on_delivery(error: KafkaError | None, _message: Message[bytes, bytes]) -> None:
                if error is None:
                    acknowledged.append(event_id)
                else:
                    errors.append(error)

            return on_delivery

        try:
            for item in items:
                while True:
                    try:
                        self._producer.produce(
                            item.topic,
                            value=item.value,
                            key=item.key,
                            on_delivery=report(item.event_id),
                        )
                        break
                    except BufferError:
                        self._producer.poll(0.05)
            remaining = self._producer.flush(self.settings.publish_timeout * 2)
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka did not take the events: {exc}") from exc
        if remaining or (errors and not acknowledged):
            first = errors[0] if errors else f"{remaining} still queued"
            raise KafkaUnavailable(f"Kafka did not acknowledge the events: {first}")
        return acknowledged

    def close(self) -> None:
        self._producer.flush(10)
