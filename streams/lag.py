"""Consumer lag as the broker sees it, asked at scrape time.

A restarted worker has read nothing yet, but its group has committed offsets:
lag is the topic's end offset minus the group's committed offset (the
beginning of the log where the group never committed), not minus what this
process has read. So the gauge is true from the first scrape after a start,
before Faust has even assigned partitions. Where this worker has read past
the committed offset (events applied, not yet committed), its own position
counts.

A thread of its own asks every `interval` seconds, with its own
kafka-python clients (Faust's consumer belongs to the worker's event loop),
so a scrape never waits on Kafka; the worker asks once before it serves
/metrics, so even the first scrape has it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from hub.kafka.security import client_config
from hub.settings import HubSettings
from streams.metrics import LagReport

log = logging.getLogger(__name__)

#: Per agency-topic partition this worker owns, the last offset it read (None: no
#: partitions assigned yet).
Assigned = Callable[[], Mapping[tuple[str, int], int] | None]


class LagProbe:
    def __init__(
        self,
        settings: HubSettings,
        topics: Iterable[str],
        group: str,
        replay_group: str,
        assigned: Assigned,
        interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.config = client_config(settings)
        self.group = group
        self.replay_group = replay_group
        self.assigned = assigned
        self.topics = sorted(topics)  # the case topics the worker reads
        self._lock = threading.Lock()
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self._available = True
        self.interval = interval
        self._latest: tuple[float, LagReport | None] = (0.0, None)

    def __call__(self) -> LagReport | None:
        """The latest report; None when the broker did not answer lately."""
        at, report = self._latest
        return report if time.monotonic() - at < max(10.0, 5 * self.interval) else None

    def start(self) -> None:
        """Ask now, then every `interval` seconds in a daemon thread."""
        self.refresh()
        threading.Thread(target=self._run, name="hub-lag", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.refresh()

    def refresh(self) -> None:
        report = self.ask()
        if report is not None:
            self._latest = (time.monotonic(), report)

    def ask(self) -> LagReport | None:
        with self._lock:
            try:
                report = self._report()
            except Exception as exc:  # the broker away: no lag rather than a wrong one
                if self._available:  # once per outage, not at every scrape
                    log.warning("consumer lag unavailable: %s: %s", type(exc).__name__, exc)
                self._available = False
                self.close()
                return None
            self._available = True
            return report

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception as exc:  # closing a broken client
                    log.debug("closing the lag client: %s", type(exc).__name__)
        self._admin = self._consumer = None

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.settings.bootstrap_servers,
            "client_id": "hub-worker-lag",
            "request_timeout_ms": 5000,
        }
        if self._admin is None:
            self._admin = KafkaAdminClient(**options, **self.config.kafka_python())
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                enable_auto_commit=False, **options, **self.config.kafka_python()
            )
        return self._admin, self._consumer

    def _report(self) -> LagReport:
        admin, consumer = self._clients()
        deferred_topic = self.settings.deferred_topic
        partitions = [
            TopicPartition(topic, p)
            for topic in [*self.topics, deferred_topic]
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        begins = consumer.beginning_offsets(partitions)
        committed = _committed(admin, self.group, ends)
        replayed = _committed(admin, self.replay_group, ends)

        def done(tp: TopicPartition, offsets: Mapping[TopicPartition, int]) -> int:
            return max(int(begins[tp]), offsets.get(tp, 0))

        group: dict[str, int] = dict.fromkeys(self.topics, 0)
        deferred = 0
        for tp in partitions:
            if tp.topic == deferred_topic:
                deferred += max(0, ends[tp] - done(tp, replayed))
            else:
                group[tp.topic] += max(0, ends[tp] - done(tp, committed))
        read = self.assigned()
        mine: dict[str, int] | None = None
        if read is not None:
            mine = {}
            for (topic, partition), last in read.items():
                tp = TopicPartition(topic, partition)
                if tp in ends:
                    behind = ends[tp] - max(done(tp, committed), last + 1)
                    mine[topic] = mine.get(topic, 0) + max(0, behind)
        return mine, group, deferred


def _committed(
    admin: KafkaAdminClient, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offsets (absent where it never committed)."""
    offsets = admin.list_group_offsets({group: list(partitions)}).get(group) or {}
    return {
        tp: meta.offset for tp, meta in offsets.items() if meta is not None and meta.offset >= 0
    }
