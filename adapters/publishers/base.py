"""What every publisher shares: the `Publisher` protocol, `KafkaUnavailable` and the partition key.

A publisher sends outbox items to Kafka (acks=all, idempotence on) and returns the
ids Kafka acknowledged; it raises `KafkaUnavailable` when it cannot deliver at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from adapters.outbox import OutboxItem
from hub.errors import PublishError
from hub.models import CaseEvent


class KafkaUnavailable(PublishError):
    """Kafka could not be reached or did not acknowledge in time; events stay in the outbox."""


def partition_key(event: CaseEvent) -> bytes:
    """The subject pseudonym (or, with no linkable subject, the record key)."""
    return (event.subject.value if event.subject else event.record_key).encode("ascii")


class Publisher(Protocol):
    def send(self, items: Sequence[OutboxItem]) -> list[str]: ...

    def close(self) -> None: ...
