"""How the worker's consumer hands events to its agent (``streams.consumer``): a fetched
batch delivered in one step (and no further after a rebalance or a seek), the stream's
buffer taken in one step, each event checked as Faust's stream checks it, keys and values
passed through as bytes, and no event admitted while an earlier offset of its partition
is missing (``InOrder``).

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

from streams.consumer import BatchConsumer, InOrder, delivered, raw_topic

POLICE = "t.cases.police"


def message(
    offset: int, *, generation: int = 0, value: bytes | None = b"v", partition: int = 1
) -> ConsumerMessage:
    made = ConsumerMessage(POLICE, partition, offset, 0.0, 0, None, b"k", value, None)
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


class Fetching(SimpleNamespace):
    """A consumer's delivery bookkeeping (``BatchConsumer``'s own), recording what reaches
    the conductor and the partitions it seeks."""

    _seeks = 0
    _seeking = None
    _sought_since = BatchConsumer._sought_since  # noqa: SLF001
    _mark_sought = BatchConsumer._mark_sought  # noqa: SLF001
    _seek_again = BatchConsumer._seek_again  # noqa: SLF001
    _lock = BatchConsumer._lock  # noqa: SLF001

    def assignment(self) -> set[TP]:
        return {TP(POLICE, 1)}

    async def seek(self, tp: TP, offset: int) -> None:
        self._mark_sought(tp, offset)
        self.seeks.append(offset)
        self._read_offset[tp] = offset


@pytest.fixture
def fetching() -> Any:
    reached: list[int] = []
    gaps: list[tuple[int, int]] = []

    async def callback(each: ConsumerMessage) -> None:
        reached.append(each.offset)

    async def add_gap(tp: TP, start: int, end: int) -> None:
        gaps.append((start, end))

    flow = SimpleNamespace(active=True)
    return Fetching(
        callback=callback,
        _read_offset=defaultdict(lambda: None),
        _add_gap=add_gap,
        app=SimpleNamespace(
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
            consumer_generation_id=0,
            flow_control=SimpleNamespace(is_active=lambda: flow.active),
        ),
        flow=flow,
        flow_active=True,
        log=SimpleNamespace(info=lambda *args: None),
        reached=reached,
        gaps=gaps,
        seeks=[],
    )


def deliver(consumer: Any, offsets: list[int], fetched_after: int | None = None) -> None:
    """Deliver a batch of `offsets`, fetched after `fetched_after` seeks (by default,
    all the consumer has made)."""
    batch = [(TP(POLICE, 1), message(offset)) for offset in offsets]
    after = consumer._seeks if fetched_after is None else fetched_after  # noqa: SLF001
    asyncio.run(BatchConsumer._deliver(consumer, fetched(batch), after))  # noqa: SLF001


async def fetched(batch: list[tuple[TP, ConsumerMessage]]) -> AsyncIterator[tuple[TP, Any]]:
    """`batch` as Faust's ``getmany`` hands it over."""
    for each in batch:
        yield each


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
        task = asyncio.ensure_future(BatchConsumer._deliver(fetching, fetched(batch), 0))  # noqa: SLF001
        await asyncio.sleep(0.05)
        task.cancel()  # what wait_first does when flow is suspended
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert fetching.reached == [3, 4]
    # 5 and 6 are read again when the partition is fetched again, not skipped as read.
    assert fetching._read_offset[TP(POLICE, 1)] == 4  # noqa: SLF001


def test_a_batch_of_an_earlier_generation_is_not_delivered(fetching: Any) -> None:
    fetching.app.consumer_generation_id = 1  # a rebalance between the fetch and delivery
    deliver(fetching, [3, 4, 5])
    assert fetching.reached == []
    assert fetching._read_offset[TP(POLICE, 1)] is None  # noqa: SLF001


def test_delivery_stops_where_a_rebalance_changed_the_generation_and_its_seek_stands(
    fetching: Any,
) -> None:
    tp = TP(POLICE, 1)

    async def rebalanced_at_4(each: ConsumerMessage) -> None:
        fetching.reached.append(each.offset)
        if each.offset == 4:  # the new generation assigned, and its seek to the committed offset
            fetching.app.consumer_generation_id = 1
            fetching._read_offset[tp] = 2  # noqa: SLF001

    fetching.callback = rebalanced_at_4
    deliver(fetching, [3, 4, 5, 6])
    assert fetching.reached == [3, 4]
    # Read again from the committed offset: neither 4 nor the offsets before it skipped.
    assert fetching._read_offset[tp] == 2  # noqa: SLF001


def test_delivery_stops_while_flow_is_stopped(fetching: Any) -> None:
    async def revoked_after_3(each: ConsumerMessage) -> None:
        fetching.reached.append(each.offset)
        fetching.flow_active = False  # partitions revoked: the stream drops what comes now

    fetching.callback = revoked_after_3
    deliver(fetching, [3, 4])
    assert fetching.reached == [3]


def test_a_batch_fetched_before_its_partitions_seek_is_not_delivered(fetching: Any) -> None:
    tp = TP(POLICE, 1)
    deliver(fetching, [3, 4])
    before = fetching._seeks  # noqa: SLF001
    asyncio.run(fetching.seek(tp, 1))  # read again from 1 (InOrder) after 5 and 6 were fetched
    fetching.seeks.clear()
    deliver(fetching, [5, 6], fetched_after=before)
    assert fetching.reached == [3, 4]
    # Not moved past the sought offset, and sought there again: the batch could have been
    # the first read from it.
    assert fetching._read_offset[tp] == 1  # noqa: SLF001
    assert fetching.seeks == [1]
    deliver(fetching, [1, 2, 3, 4, 5])  # fetched after the seek: delivered
    assert fetching.reached == [3, 4, 1, 2, 3, 4, 5]


def test_nothing_is_delivered_while_the_apps_flow_is_suspended(fetching: Any) -> None:
    # A recovery resumes the stream partitions and seeks them before it resumes the app's
    # flow; the streams would drop what they were handed meanwhile.
    fetching.flow.active = False
    deliver(fetching, [7, 8, 9])
    assert fetching.reached == []
    assert fetching.seeks == [7]  # read again from the first left out
    fetching.flow.active = True
    deliver(fetching, [7, 8, 9])
    assert fetching.reached == [7, 8, 9]


def test_a_seek_to_the_committed_offsets_under_way_decides_where_it_is_read_again(
    fetching: Any,
) -> None:
    tp = TP(POLICE, 1)
    fetching._mark_sought(tp, None)  # its offset known once the seek is done  # noqa: SLF001
    fetching._sought[tp] = (fetching._seeks, 2)  # noqa: SLF001
    deliver(fetching, [6, 7], fetched_after=0)
    assert fetching.reached == []
    assert fetching.seeks == [2]
    # With no offset committed the partition is read again from the first left out.
    fetching._mark_sought(tp, None)  # noqa: SLF001
    fetching.seeks.clear()
    deliver(fetching, [6, 7], fetched_after=0)
    assert fetching.seeks == [6]


class Partitions:
    """A consumer's earliest offsets and what the guard asks of it, and how far the
    changelog records a partition as applied."""

    def __init__(self, applied: int | None = None, earliest: int = 0) -> None:
        self.applied = applied
        self.earliest = earliest
        self.seeks: list[int] = []
        self.forgotten: list[int] = []

    def forget(self, each: ConsumerMessage) -> None:
        self.forgotten.append(each.offset)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append(offset)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.earliest)


def admitted(guard: InOrder, offsets: list[int]) -> list[int]:
    async def run() -> list[int]:
        return [offset for offset in offsets if await guard.admit(message(offset))]

    return asyncio.run(run())


def guarded(partitions: Partitions, clock: list[float] | None = None) -> InOrder:
    now = clock or [0.0]
    app: Any = SimpleNamespace(consumer=partitions)
    return InOrder(app, lambda tp: partitions.applied, retry_after=5.0, clock=lambda: now[0])


def test_events_in_order_after_the_last_applied_are_admitted() -> None:
    guard = guarded(Partitions(applied=2))
    assert admitted(guard, [3, 4, 5, 4, 6]) == [3, 4, 5, 4, 6]  # 4 again: a duplicate


def test_events_applied_already_are_admitted_as_duplicates() -> None:
    # Read again from a committed offset behind the changelog: dropped by the state.
    assert admitted(guarded(Partitions(applied=9)), [5, 6, 10, 11]) == [5, 6, 10, 11]


def test_a_missing_offset_is_read_again_and_nothing_after_it_applied_first() -> None:
    partitions = Partitions(applied=2)
    guard = guarded(partitions)
    assert admitted(guard, [3, 4, 6, 7]) == [3, 4]
    assert partitions.seeks == [5]  # once, not once per later event
    assert partitions.forgotten == [6, 7]  # not acknowledged: a rebalance does not wait
    assert admitted(guard, [5, 6, 7]) == [5, 6, 7]  # read again from the seek


def test_the_first_event_after_an_assignment_must_follow_the_changelog() -> None:
    partitions = Partitions(applied=9)
    guard = guarded(partitions)
    assert admitted(guard, [12]) == []
    assert partitions.seeks == [10]
    assert admitted(guard, [10, 11, 12]) == [10, 11, 12]
    guard.revoked({TP(POLICE, 1)})
    partitions.applied = 19  # another owner applied more meanwhile
    assert admitted(guard, [20]) == [20]


def test_a_partition_no_batch_mentions_is_read_from_its_earliest_offset() -> None:
    partitions = Partitions(applied=None, earliest=0)
    assert admitted(guarded(partitions), [1]) == []
    assert partitions.seeks == [0]


def test_the_seek_is_repeated_while_later_events_still_come_first() -> None:
    partitions = Partitions(applied=2)
    clock = [0.0]
    guard = guarded(partitions, clock)
    admitted(guard, [5, 6])
    clock[0] = 6.0
    assert admitted(guard, [7]) == []
    assert partitions.seeks == [3, 3]


def test_offsets_deleted_by_retention_are_skipped() -> None:
    partitions = Partitions(applied=2, earliest=8)
    assert admitted(guarded(partitions), [8, 9]) == [8, 9]
    assert partitions.seeks == []


def test_a_partition_sought_during_delivery_gets_nothing_more_of_the_batch(
    fetching: Any,
) -> None:
    police, other = TP(POLICE, 1), TP(POLICE, 2)

    async def sought_at_4(each: ConsumerMessage) -> None:
        fetching.reached.append((each.partition, each.offset))
        if each.offset == 4:
            await fetching.seek(police, 2)

    fetching.callback = sought_at_4
    batch = [(police, message(3)), (police, message(4)), (other, message(9, partition=2))]
    batch.append((police, message(5)))
    asyncio.run(BatchConsumer._deliver(fetching, fetched(batch), 0))  # noqa: SLF001
    assert fetching.reached == [(1, 3), (1, 4), (2, 9)]
    assert fetching._read_offset[police] == 2  # noqa: SLF001
    assert fetching._read_offset[other] == 9  # noqa: SLF001
    assert fetching.seeks == [2, 2]  # and again once the batch is delivered
