"""Events written with a schema newer than the worker's: kept, then replayed.

During a rolling upgrade an agency may publish with a schema version the
hub's workers do not ship yet. Such an event is not bad, only early: the
worker copies it to the deferred topic (``HubSettings.deferred_topic``,
kept as long as case events) with its origin in headers, and only then
acknowledges it (``streams.app``). Nothing is lost and nothing is counted
twice: once the workers ship the schema, `hub streams replay-deferred` sends
each deferred event back to its original topic and partition, where it is
counted like any other (a version already counted is a duplicate).

The replay reads the deferred topic from where its consumer group last
committed up to the end at the start of the run. An event still unreadable
(the hub running it does not ship the schema either) is appended to the
deferred topic again, so it waits for the next run; then the group commits
the end. A replay killed half-way sends some events again at the next run,
which the workers drop as duplicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from hub.codec import Codec
from hub.errors import BrokerError, UnknownSchemaError
from hub.kafka.security import client_config
from hub.settings import HubSettings

ORIGIN_TOPIC = "hub-origin-topic"
ORIGIN_PARTITION = "hub-origin-partition"
ORIGIN_OFFSET = "hub-origin-offset"
ORIGIN_KEY = "hub-origin-key"


def deferred_headers(
    topic: str, partition: int, offset: int, key: bytes | None
) -> list[tuple[str, bytes]]:
    """Where a deferred event came from: its topic, partition, offset and key."""
    headers = [
        (ORIGIN_TOPIC, topic.encode()),
        (ORIGIN_PARTITION, str(partition).encode()),
        (ORIGIN_OFFSET, str(offset).encode()),
    ]
    if key is not None:
        headers.append((ORIGIN_KEY, key))
    return headers


def replay_group(settings: HubSettings) -> str:
    """The consumer group whose committed offsets say how far the deferred topic is replayed."""
    return f"{settings.worker_app_id}-deferred-replay"


@dataclass(frozen=True)
class ReplayReport:
    replayed: int  # sent back to their original topics
    waiting: int  # still written with a schema this hub does not ship: kept

    def summary(self) -> str:
        text = f"replayed {self.replayed} deferred events to their topics"
        if self.waiting:
            text += (
                f"; {self.waiting} still wait (written with a schema version this hub does not"
                " ship: upgrade the hub, then run this again)"
            )
        return text


def readable(codec: Codec, value: bytes | None) -> bool:
    """False only when the writer's schema is still unknown; other faults are the
    worker's to count once the event is back on its topic."""
    if value is None:
        return True
    try:
        codec.decode(value)
    except UnknownSchemaError:
        return False
    except Exception:  # refused and counted by the worker, not here
        return True
    return True


def replay_deferred(settings: HubSettings, timeout: float = 120.0) -> ReplayReport:
    """Send the deferred events this hub can now read back to their original topics."""
    codec = Codec("case_event", settings.schemas_dir)
    topic = settings.deferred_topic
    config = client_config(settings)
    bootstrap = settings.bootstrap_servers
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=replay_group(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **config.kafka_python(),
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config.kafka_python())
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise BrokerError(f"missing topic {topic}: run `hub topics apply` first")
        partitions = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
        replayed = waiting = 0
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(f"could not read {topic} to its end within {timeout:.0f} s")
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        continue  # arrived after this run started: the next run's
                    origin = dict(message.headers or ())
                    target = origin.get(ORIGIN_TOPIC)
                    if target is not None and readable(codec, message.value):
                        where = origin.get(ORIGIN_PARTITION)
                        producer.send(
                            target.decode(),
                            key=message.key,
                            value=message.value,
                            partition=int(where) if where is not None else None,
                        )
                        replayed += 1
                    else:
                        producer.send(
                            topic, key=message.key, value=message.value, headers=message.headers
                        )
                        waiting += 1
            pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
        producer.flush()
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in partitions})
        return ReplayReport(replayed, waiting)
    finally:
        producer.close()
        consumer.close()
