"""The publisher HUB_PUBLISHER names: kafka-python (default) or confluent-kafka."""

from __future__ import annotations

from adapters.publishers.base import Publisher
from adapters.publishers.kafka_python import KafkaPythonPublisher
from hub.errors import extra_needed
from hub.settings import HubSettings


def make_publisher(settings: HubSettings, client_id: str = "hub-adapter") -> Publisher:
    """The publisher HUB_PUBLISHER names."""
    if settings.publisher == "confluent":
        with extra_needed("HUB_PUBLISHER=confluent"):
            from adapters.publishers.confluent import ConfluentPublisher

        publisher: Publisher = ConfluentPublisher(settings, client_id)
        return publisher
    return KafkaPythonPublisher(settings, client_id)
