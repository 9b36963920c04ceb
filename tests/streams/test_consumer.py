"""How the worker's consumer hands events to its agent (``streams.consumer``): a fetched
batch delivered in one step, the stream's buffer taken in one step, each event checked
as Faust's stream checks it, keys and values passed through as bytes.

These use a real Faust app, topic, stream buffer and consumer bookkeeping; nothing here
connects to a broker (the worker's tests against the broker cover that)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.consumer import BatchConsumer, delivered, raw_topic

POLICE = "t.cases.police"


def message(offset: int, *, generation: int = 0, value: bytes | None = b"v") -> ConsumerMessage:
    made = ConsumerMessage(POLICE, 1, offset, 0.0, 0, None, b"k", value, None)
    made.generation_id = generation
    return made


@asynccontextmanager
async def subscribed() -> AsyncIterator[tuple[faust.App, Any, Any]]:
    """An app with an agent's stream on the police topic, its flow running."""
    app = faust.App(
        "consumer-test",
        broker="kafka://localhost:1",
        autodiscover=False,
        loop=asyncio.get_running_loop(),
    )
    topic = raw_topic(app, POLICE)
    stream = app.stream(topic)
    app.topics.add(topic)
    await app.topics._update_indices()  # noqa: SLF001  (what subscribing does)
    app.flow_control.resume()
    try:
        yield app, stream, topic.schema.compile(app)
    finally:
        # The consumer's thread has its own event loop, made when the consumer is.
        app.consumer._thread.thread_loop.close()  # type: ignore[attr-defined]  # noqa: SLF001


def test_the_buffer_is_taken_in_order_and_tracked_for_acknowledgement() -> None:
    async def run() -> None:
        async with subscribed() as (app, stream, decode):
            sent = [message(offset) for offset in (5, 6, 7)]
            for each in sent:
                stream.channel.queue.put_nowait(await decode(each))
            taken = [event.message for event in delivered(app, stream)]
            assert taken == sent
            assert all(each.tracked for each in sent)
            assert set(app.consumer.unacked) == set(sent)  # a rebalance waits for them
            assert stream.channel.queue.qsize() == 0

    asyncio.run(run())


def test_events_of_an_earlier_generation_or_while_flow_is_suspended_are_dropped() -> None:
    async def run() -> None:
        async with subscribed() as (app, stream, decode):
            app.consumer_generation_id = 3
            old, current = message(5, generation=2), message(6, generation=3)
            for each in (old, current):
                stream.channel.queue.put_nowait(await decode(each))
            assert [event.message for event in delivered(app, stream)] == [current]
            assert not old.tracked  # never acknowledged: its offset is not committed past

            stream.channel.queue.put_nowait(await decode(message(7, generation=3)))
            app.flow_control.suspend()  # a rebalance began
            assert list(delivered(app, stream)) == []
            assert stream.channel.queue.qsize() == 0

    asyncio.run(run())


def test_the_buffer_is_checked_again_before_each_event() -> None:
    async def run() -> None:
        async with subscribed() as (app, stream, decode):
            for offset in (5, 6):
                stream.channel.queue.put_nowait(await decode(message(offset)))
            taking = delivered(app, stream)
            assert next(taking).message.offset == 5
            app.flow_control.suspend()  # while the first was being applied
            assert list(taking) == []

    asyncio.run(run())


def test_keys_and_values_pass_through_as_bytes() -> None:
    async def run() -> None:
        async with subscribed() as (_, _, decode):
            event = await decode(message(5, value=b"\x00\x01avro"))
            assert (event.key, event.value) == (b"k", b"\x00\x01avro")
            assert (await decode(message(6, value=None))).value is None  # refused by the worker

    asyncio.run(run())


@pytest.fixture
def fetching() -> Any:
    """A consumer's delivery bookkeeping, recording what reaches the conductor."""
    reached: list[int] = []
    gaps: list[tuple[int, int]] = []

    async def callback(each: ConsumerMessage) -> None:
        reached.append(each.offset)

    async def add_gap(tp: TP, start: int, end: int) -> None:
        gaps.append((start, end))

    return SimpleNamespace(
        callback=callback,
        _read_offset=defaultdict(lambda: None),
        _add_gap=add_gap,
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
        reached=reached,
        gaps=gaps,
    )


def deliver(consumer: Any, offsets: list[int]) -> None:
    batch = [(TP(POLICE, 1), message(offset)) for offset in offsets]
    asyncio.run(BatchConsumer._deliver(consumer, batch))  # noqa: SLF001


def test_a_batch_reaches_the_conductor_in_order_and_moves_the_read_offset(fetching: Any) -> None:
    deliver(fetching, [3, 4, 5])
    assert fetching.reached == [3, 4, 5]
    assert fetching._read_offset[TP(POLICE, 1)] == 5  # noqa: SLF001
    deliver(fetching, [3, 4, 6])  # fetched again: what is behind the read offset is not
    assert fetching.reached == [3, 4, 5, 6]


def test_offsets_the_broker_skipped_are_recorded_as_a_gap(fetching: Any) -> None:
    deliver(fetching, [3, 7])
    assert fetching.gaps == [(4, 7)]


def test_an_interrupted_batch_leaves_the_read_offset_at_the_last_delivered(
    fetching: Any,
) -> None:
    async def blocked(each: ConsumerMessage) -> None:
        if each.offset == 5:
            await asyncio.sleep(60)  # the stream's buffer full when a rebalance comes
        fetching.reached.append(each.offset)

    fetching.callback = blocked

    async def run() -> None:
        batch = [(TP(POLICE, 1), message(offset)) for offset in (3, 4, 5, 6)]
        task = asyncio.ensure_future(BatchConsumer._deliver(fetching, batch))  # noqa: SLF001
        await asyncio.sleep(0.05)
        task.cancel()  # what wait_first does when flow is suspended
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert fetching.reached == [3, 4]
    # 5 and 6 are read again when the partition is fetched again, not skipped as read.
    assert fetching._read_offset[TP(POLICE, 1)] == 4  # noqa: SLF001
