"""Small helpers around kafka-python shared by the CLI, adapters and tests."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, RetriableError, SaslAuthenticationFailedError

from hub.errors import BrokerError, HubError
from hub.kafka.security import PLAINTEXT, ClientConfig, client_config
from hub.settings import HubSettings

_UNREACHABLE = (RetriableError, OSError)


def _accepts_connections(bootstrap: str, timeout: float) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def broker_answers(bootstrap: str, timeout: float, config: ClientConfig = PLAINTEXT) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within `timeout`, to
    a client connecting with `config` (default: a plain listener)."""
    # A plain TCP check first: kafka-python leaks a socket per refused connection.
    if not _accepts_connections(bootstrap, timeout):
        return False
    # kafka-python logs every refused connection; while polling that is expected.
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            client_id="hub-probe",
            **config.kafka_python(),
        )
    except _UNREACHABLE:
        return False
    finally:
        quiet.setLevel(level)
    try:
        admin.list_topics()
        return True
    except _UNREACHABLE:
        return False
    finally:
        admin.close()


def admin_client(settings: HubSettings, client_id: str) -> KafkaAdminClient:
    """An admin client with the hub's client configuration, or a BrokerError that says
    how to start the local broker."""
    bootstrap = settings.bootstrap_servers
    config = client_config(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id=client_id, **config.kafka_python()
        )
    except KafkaError as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap} ({exc}); is it running?"
            " `hub broker start` starts the local one, HUB_BOOTSTRAP points elsewhere."
        ) from exc


class _AuthFailures(logging.Handler):
    """Catches the authentication failure kafka-python logs (and retries) while
    bootstrapping, so a wrong password is reported as such, not as a timeout."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failure: SaslAuthenticationFailedError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, SaslAuthenticationFailedError):
                self.failure = arg


_NOT_AUTHORISED = 29  # TOPIC_AUTHORIZATION_FAILED


def _topic_error(bootstrap: str, topic: str, config: ClientConfig) -> int:
    """The broker's error code for `topic` as this client sees it (0: none)."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="hub-probe", **config.kafka_python()
    )
    try:
        (described,) = admin.describe_topics([topic])
        return int(described.get("error_code", 0))
    finally:
        admin.close()


class TopicReader:
    """Every partition of one topic, read from its beginning, without a consumer group,
    with the hub's client configuration; `options` are further KafkaConsumer options.

    Raises `missing` (an error naming what to do) when the topic does not exist, and
    `refused` (if given) when the broker does not let this principal describe it.
    """

    def __init__(
        self,
        settings: HubSettings,
        topic: str,
        client_id: str,
        missing: HubError,
        refused: HubError | None = None,
        **options: Any,
    ) -> None:
        self.topic = topic
        bootstrap = settings.bootstrap_servers
        config = client_config(settings)
        watch = _AuthFailures()
        kafka_log = logging.getLogger("kafka")
        kafka_log.addHandler(watch)
        # With credentials, a bootstrap that timed out before the broker's answer to them
        # (a loaded broker is slow to check a SCRAM password) is tried once more, so a
        # wrong password is reported as such rather than as an unreachable broker.
        attempts = 2 if config.sasl else 1
        try:
            for attempt in range(attempts):
                try:
                    self._consumer = KafkaConsumer(
                        bootstrap_servers=bootstrap,
                        client_id=client_id,
                        enable_auto_commit=False,
                        **options,
                        **config.kafka_python(),
                    )
                    break
                except KafkaError:
                    if watch.failure is not None or attempt + 1 == attempts:
                        raise
        except KafkaError as exc:
            if watch.failure is not None:
                raise BrokerError(
                    f"Kafka at {bootstrap} refused the credentials of User:{config.username}"
                    f" ({watch.failure}); check HUB_SASL_USERNAME, HUB_SASL_PASSWORD and"
                    " HUB_SASL_MECHANISM"
                ) from exc
            raise BrokerError(
                f"cannot reach Kafka at {bootstrap} ({exc}); is HUB_BOOTSTRAP right?"
            ) from exc
        finally:
            kafka_log.removeHandler(watch)
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            self._consumer.close()
            if refused is not None and _topic_error(bootstrap, topic, config) == _NOT_AUTHORISED:
                raise refused
            raise missing
        self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def poll(self, timeout_ms: int) -> Iterator[Any]:
        """The messages one poll returns (possibly none)."""
        for messages in self._consumer.poll(timeout_ms=timeout_ms).values():
            yield from messages

    def read_to_end(self) -> Iterator[Any]:
        """Every message up to the end offsets as they are now."""
        ends = self._consumer.end_offsets(self._partitions)
        while any(self._consumer.position(tp) < ends[tp] for tp in self._partitions):
            yield from self.poll(500)

    def close(self) -> None:
        self._consumer.close()
