"""How old the data each store holds is, against what the agreement allows.

`hub retention report` puts every store in one table: the hub's topics (the
oldest message still on each, by its timestamp, and the retention the topic
is configured with) and, where the command runs at an agency, its outbox and
quarantine reports. A store holding data older than the agreement allows is
marked OVER; a topic configured otherwise than the agreement says is marked
too, with the command that fixes it.

Kafka deletes a topic's data a whole segment at a time, once the newest
message of the segment is past retention: a topic may hold data up to
``segment.ms`` (7 days by default) older than its retention, and still be
within what the broker promises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from hub.agreement.model import Agreement
from hub.audit import audit_topic
from hub.errors import BrokerError
from hub.kafka.client import admin_client
from hub.kafka.security import client_config
from hub.ops.topics import current_config
from hub.settings import HubSettings

_DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class StoreAge:
    """One store: the oldest data it holds and how long the agreement lets it keep data."""

    store: str
    oldest: datetime | None  # None: it holds nothing
    allowed_days: int | None  # None: kept by the agreement
    note: str = ""

    def age_days(self, now: datetime) -> float | None:
        return None if self.oldest is None else (now - self.oldest).total_seconds() / 86400

    def over(self, now: datetime) -> bool:
        age = self.age_days(now)
        return age is not None and self.allowed_days is not None and age > self.allowed_days

    def row(self, now: datetime) -> tuple[str, str, str, str, str]:
        age = self.age_days(now)
        oldest = "-" if self.oldest is None else self.oldest.strftime("%Y-%m-%d %H:%M")
        shown_age = "-" if age is None else f"{age:.1f}"
        allowed = "kept" if self.allowed_days is None else str(self.allowed_days)
        status = "OVER" if self.over(now) else "within"
        return (
            self.store,
            oldest,
            shown_age,
            allowed,
            status + (f"; {self.note}" if self.note else ""),
        )


def topic_ages(settings: HubSettings, agreement: Agreement) -> list[StoreAge]:
    """The hub's topics: case topics, the deferred topic, the trends topic, the audit topic
    and the workers' record-versions changelog."""
    retention = agreement.retention
    wanted: list[tuple[str, int | None, str]] = [
        (settings.topic(t), retention.case_events_days, "case events")
        for t in agreement.case_topics
    ]
    wanted += [
        (settings.deferred_topic, retention.case_events_days, "case events"),
        (settings.trends_topic, retention.trends_days, "published trends"),
        (audit_topic(settings), retention.audit_days, "the audit trail"),
        *(
            [(settings.staged_releases_topic, retention.trends_days, "staged releases")]
            if any(s.approval == "two-person" for s in agreement.publication)
            else []
        ),
        (
            f"{settings.worker_app_id}-record-versions-changelog",
            retention.case_events_days,
            "record versions",
        ),
    ]
    configured = _retention_ms(settings, [name for name, _, _ in wanted])
    oldest = _oldest(settings, [name for name, _, _ in wanted])
    ages = []
    for name, days, _ in wanted:
        note = ""
        ms = configured.get(name)
        if name not in oldest:
            note = "no such topic"
        elif name.endswith("-record-versions-changelog"):
            note = "compacted: the workers remove versions past retention, compaction deletes them"
        elif ms is not None:
            expected = -1 if days is None else days * _DAY_MS
            if ms != expected:
                held = "kept" if ms < 0 else f"{ms / _DAY_MS:g} days"
                note = f"the topic keeps data {held}: run `hub topics apply`"
        ages.append(StoreAge(f"topic {name}", oldest.get(name), days, note))
    return ages


def _retention_ms(settings: HubSettings, topics: Iterable[str]) -> dict[str, int]:
    """Topic -> its retention.ms, for the topics that exist."""
    admin = admin_client(settings, "hub-retention")
    try:
        found: dict[str, int] = {}
        for name in topics:
            try:
                config = current_config(admin, name)
            except KafkaError:
                continue  # no such topic
            if "retention.ms" in config:
                found[name] = int(config["retention.ms"])
        return found
    finally:
        admin.close()


def _oldest(settings: HubSettings, topics: Iterable[str]) -> dict[str, datetime | None]:
    """Topic -> the timestamp of its oldest message (None when empty); missing topics left out."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id="hub-retention",
            enable_auto_commit=False,
            **client_config(settings).kafka_python(),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    try:
        found: dict[str, datetime | None] = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                continue
            firsts = consumer.offsets_for_times(
                {TopicPartition(topic, p): 0 for p in sorted(partitions)}
            )
            stamps = [f.timestamp for f in firsts.values() if f is not None]
            found[topic] = datetime.fromtimestamp(min(stamps) / 1000, UTC) if stamps else None
        return found
    finally:
        consumer.close()
