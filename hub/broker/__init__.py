"""The local single-node Apache Kafka broker (KRaft) for development and tests.

`fetch` resolves Kafka from Maven Central into the broker cache; `launcher`
formats storage once and starts, stops and reports on the broker process.
"""

from hub.broker.fetch import KafkaArtifacts, ensure_artifacts, kafka_version
from hub.broker.launcher import Broker, BrokerStatus

__all__ = ["Broker", "BrokerStatus", "KafkaArtifacts", "ensure_artifacts", "kafka_version"]
