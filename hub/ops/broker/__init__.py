"""The local single-node Apache Kafka broker (KRaft) for development and tests.

`fetch` resolves Kafka from Maven Central into the broker cache; `launcher`
formats storage once and starts, stops and reports on the broker process, with
a plain listener or, with HUB_BROKER_SECURITY=sasl_ssl, only a SASL_SSL one.
"""

from hub.ops.broker.fetch import KafkaArtifacts, ensure_artifacts, kafka_version
from hub.ops.broker.launcher import Broker, BrokerStatus

__all__ = ["Broker", "BrokerStatus", "KafkaArtifacts", "ensure_artifacts", "kafka_version"]
