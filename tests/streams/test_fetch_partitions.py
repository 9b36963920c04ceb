"""What the worker's consumer asks aiokafka for: the partitions active when the fetch
starts, in a set nothing changes while it waits (``BatchConsumer._getmany``).

Faust hands its fetch its own set of active partitions and changes that set in place as
it pauses and resumes partitions. aiokafka reads the set again each time new records
arrive while it waits, and takes an empty one for every partition. So a recovery that
paused the changelog partitions it had read, while a fetch waited for them, had the
fetch hand over what aiokafka held of the case partitions, still paused; their positions
moved to the end, Faust skipped the records as not active, and a restarted worker with
no committed offsets read nothing until its watchdog sought the partitions back.

The first test shows that, against the broker, with aiokafka's own consumer (and what
the watchdog logs of such a fetcher); the second that the worker's consumer gives the
fetch a copy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import ThreadDelegateConsumer
from faust.types import TP
from kafka import KafkaProducer

from hub.settings import HubSettings
from streams.consumer import BatchConsumer
from streams.watchdog import _fetcher_state

RECORDS = 5


def test_a_fetch_given_a_frozen_set_leaves_the_other_partitions_where_they_are(
    topics: HubSettings,
) -> None:
    topic = topics.case_topic("police")
    waited, paused = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def fetch(frozen: bool) -> tuple[dict[Any, list[Any]], int, str, int]:
        """Wait for `waited`, empty the active set meanwhile, then let `paused` receive
        records: what the fetch hands over, how far `paused`'s position moved, what the
        watchdog logs of the fetcher then, and where `paused` started."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=topics.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            consumer.assign([waited, paused])
            start = await consumer.position(paused)  # known before anything is sent
            active = {waited}
            asked = frozenset(active) if frozen else active
            fetcher: Any = consumer._fetcher  # noqa: SLF001  (what Faust's driver calls)
            handed = asyncio.ensure_future(fetcher.fetched_records(asked, timeout=3.0))
            await asyncio.sleep(0.3)  # the fetch is waiting for `waited`
            active.clear()  # a recovery pauses the partitions it was reading
            await asyncio.to_thread(send, topics.bootstrap_servers, topic, paused.partition)
            records = await handed
            moved = await consumer.position(paused) - start
            return records, moved, await _fetcher_state(consumer), start
        finally:
            await consumer.stop()

    live, live_moved, _, _ = asyncio.run(fetch(frozen=False))
    assert list(live) == [paused]  # the hazard: what arrived for `paused` is handed over
    assert live_moved == len(live[paused]) > 0

    copied, copied_moved, fetcher, start = asyncio.run(fetch(frozen=True))
    assert copied == {}
    assert copied_moved == 0  # read from where it was once it is resumed
    # The watchdog's diagnosis: the records are held for `paused`, which stands where it was.
    assert f"{topic}[1] at {start} of " in fetcher
    assert fetcher.endswith(f"buffered {topic}[1]")


def send(bootstrap: str, topic: str, partition: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for n in range(RECORDS):
            producer.send(topic, value=b"%d" % n, partition=partition)
        producer.flush(timeout=10)
    finally:
        producer.close()


def test_the_consumer_fetches_for_a_copy_of_the_active_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[Any] = []

    async def fetch(self: Any, active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        asked.append(active_partitions)
        return {}

    monkeypatch.setattr(ThreadDelegateConsumer, "_getmany", fetch)
    consumer = object.__new__(BatchConsumer)
    active = {TP("t.cases.police", 0), TP("t.record-versions-changelog", 0)}
    asyncio.run(consumer._getmany(active, 1.0))
    asyncio.run(consumer._getmany(None, 1.0))  # a client-only app: every partition
    active.clear()
    assert asked[0] == frozenset({TP("t.cases.police", 0), TP("t.record-versions-changelog", 0)})
    assert isinstance(asked[0], frozenset)
    assert asked[1] is None
