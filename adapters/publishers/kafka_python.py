"""Publish outbox items to Kafka: acks=all, idempotence on, delivery reports per event.

kafka-python is the default; confluent-kafka (librdkafka, install extra
``confluent``, HUB_PUBLISHER=confluent) is the faster option. Both connect
lazily, so an adapter starts and keeps accepting input while Kafka is down;
`send` returns the ids Kafka acknowledged and raises `KafkaUnavailable`
when it cannot deliver at all (after HUB_PUBLISH_TIMEOUT seconds). A producer
that failed (any event of a send not acknowledged) is discarded without waiting:
closing it never raises and never delivers its abandoned batch later behind the
outbox's back, and the next send starts a fresh one, which connects at once. No
producer is built while nothing accepts connections at the bootstrap servers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from kafka import KafkaProducer
from kafka.errors import AuthorizationError, KafkaError

from adapters.outbox import OutboxItem
from adapters.publishers.base import KafkaUnavailable
from hub.kafka.client import accepts_connections, bootstrap_watch, connection_problem
from hub.kafka.security import client_config, principal
from hub.settings import HubSettings

log = logging.getLogger(__name__)
#: Seconds `send` waits for delivery reports beyond the producer's delivery timeout.
FLUSH_MARGIN = 2.0


class KafkaPythonPublisher:
    def __init__(self, settings: HubSettings, client_id: str = "hub-adapter") -> None:
        self.settings = settings
        self.config = client_config(settings)
        self.client_id = client_id
        self._producer: Any = None
        #: Seconds the producer tries to deliver a batch (its delivery timeout).
        self.delivery_timeout = settings.publish_timeout
        #: Seconds to wait for delivery reports before treating Kafka as unavailable: a
        #: little longer than the delivery timeout, so that a batch Kafka did not take in
        #: time is reported as such by its own future.
        self.flush_timeout = settings.publish_timeout + FLUSH_MARGIN

    def _connect(self) -> Any:
        if self._producer is None:
            timeout_ms = max(1000, int(self.delivery_timeout * 1000))
            bootstrap = self.settings.bootstrap_servers
            if not accepts_connections(bootstrap, min(5.0, self.delivery_timeout)):
                # Not a producer that would retry (and leak a socket per refusal) until
                # its bootstrap timeout: nothing is listening.
                raise KafkaUnavailable(
                    f"cannot reach Kafka at {bootstrap} (nothing accepts connections there)"
                )
            with bootstrap_watch() as watch:
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=bootstrap,
                        client_id=self.client_id,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=5,
                        batch_size=256 * 1024,
                        max_block_ms=min(10_000, timeout_ms),
                        # kafka-python wants delivery > linger + request timeouts
                        request_timeout_ms=min(10_000, timeout_ms // 2),
                        delivery_timeout_ms=timeout_ms,
                        bootstrap_timeout_ms=timeout_ms,
                        **self.config.kafka_python(),
                    )
                except KafkaError as exc:
                    problem = connection_problem(bootstrap, self.config, watch)
                    raise KafkaUnavailable(
                        problem or f"cannot reach Kafka at {bootstrap} ({exc})"
                    ) from exc
        return self._producer

    def send(self, items: Sequence[OutboxItem]) -> list[str]:
        producer = self._connect()
        futures = []
        try:
            for item in items:
                futures.append(
                    (item.event_id, producer.send(item.topic, key=item.key, value=item.value))
                )
            producer.flush(timeout=self.flush_timeout)
        except KafkaError as exc:
            self._reset(timeout=0)
            topics = {item.topic for item in items}
            if isinstance(exc, AuthorizationError):
                raise self._refused(topics, exc) from exc
            raise KafkaUnavailable(
                f"Kafka did not take the events for {', '.join(sorted(topics))} ({exc}); is"
                f" Kafka reachable at {self.settings.bootstrap_servers}, and does the topic"
                " exist (`hub topics apply`)?"
            ) from exc
        acknowledged, failures, refused = [], [], set()
        for (event_id, future), item in zip(futures, items, strict=True):
            try:
                future.get(timeout=0)
                acknowledged.append(event_id)
            except KafkaError as exc:
                failures.append(exc)
                if isinstance(exc, AuthorizationError):
                    refused.add(item.topic)
        if failures:
            # A producer with undelivered batches is dropped (every future is done, so
            # nothing it holds is lost): after an outage it would wait out its own
            # reconnect backoff, up to 30 s, before seeing Kafka again, and a refused
            # produce request leaves kafka-python's idempotent producer failing every
            # later send. A fresh one connects at once at the next send.
            self._reset(timeout=0)
        if refused and not acknowledged:
            # Nothing got through because the broker refused this principal: said as such.
            raise self._refused(refused, failures[0])
        if failures:
            log.warning(
                "%d of %d events not acknowledged (first: %s); they stay in the outbox",
                len(failures),
                len(futures),
                failures[0],
            )
        return acknowledged

    def _refused(self, topics: set[str], exc: KafkaError) -> KafkaUnavailable:
        return KafkaUnavailable(
            f"{principal(self.settings)} may not write {', '.join(sorted(topics))}"
            f" ({type(exc).__name__}): each partner's principal may write its own case"
            " topic only; check HUB_SASL_USERNAME and the topic of the events, or ask the"
            " operator to run `hub security acls --apply`"
        )

    def _reset(self, timeout: float = 5.0) -> None:
        """Drop the producer; a fresh one connects at the next send.

        Its `close` flushes first and raises when Kafka is away; then its sender is
        stopped without sending: what it held stays in the outbox, to be sent again.
        """
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout)
        except Exception as exc:  # KafkaTimeoutError from its flush, or anything else
            log.info("Kafka producer closed without delivering its last batch (%s)", exc)
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                with suppress(Exception):
                    sender.force_close()

    def close(self) -> None:
        self._reset()
