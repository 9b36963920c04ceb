"""The worker's consumer: Faust's aiokafka consumer, handing each fetched batch to the
agents in one step, and committing as ``streams.commits`` does.

Faust's fetch loop (``Consumer._drain_messages``) delivers every message inside its
own ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an
``asyncio.wait`` per message, so that a rebalance can interrupt a delivery that is
blocked (the stream's buffer full, flow control closed). Measured on the worker,
that was about a quarter of its CPU per event.

Here the same loop runs once per fetched batch: the batch's messages are delivered
one after the other inside one ``wait_first``, which a rebalance interrupts as before,
and each is made from its record as it is delivered, as in Faust's loop. A message
is delivered only while flow is active and its generation is the consumer's, and the
read offset moves only past messages delivered (Faust's moves past the one a
rebalance interrupted too; ``streams.commits`` covers the commits of that case).
Nothing fetched before a partition's latest seek is delivered, nor a case-topic
message while the app's flow control is suspended; the partition is sought again
instead (``BatchConsumer._deliver``), so a fetched batch never moves a read offset
past what a seek asked to read again. Each message is still checked as Faust checks
it (read offsets, gaps for offsets the broker skipped), and the loop still gives the
event loop a turn every 100 messages.

An agent takes the events already in its stream's buffer in one step too
(``delivered``), rather than one turn of the event loop per event, checking each as
the stream would.

The agents read the case topics as bytes (``raw_topic``): Faust's schema would look
up the "raw" codec for the key and for the value of every message to pass the bytes
through unchanged; ``RawSchema`` hands them over as they came.

None of that is what keeps the counts exact: Faust, on this path or its own, can
skip an offset (its stream drops what it takes while a rebalance or a recovery is
under way, after the consumer has moved past it). ``InOrder`` does: the worker
applies no event while an earlier offset of its partition is missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING, RecordMap
from faust.types import TP, AppT, EventT, Message, ServiceT, StreamT, TopicT

from streams.commits import StrictConsumer, StrictTransport

log = logging.getLogger(__name__)

#: Messages delivered between turns given to the event loop (Faust's own figure).
YIELD_EVERY = 100


class BatchConsumer(StrictConsumer):
    """``StrictConsumer``, delivering what it fetched a batch at a time."""

    #: Seeks made so far: a batch fetched before a partition's latest seek is stale for it.
    _seeks: int = 0
    #: Per partition sought, the count of seeks at its latest seek and the offset (None:
    #: not known yet, or none committed).
    _sought: dict[TP, tuple[int, int | None]]
    #: Held while partitions are sought to their committed offsets.
    _seeking: asyncio.Lock | None = None

    def _lock(self) -> asyncio.Lock:
        if self._seeking is None:
            self._seeking = asyncio.Lock()
        return self._seeking

    def _mark_sought(self, partition: TP, offset: int | None) -> None:
        self._seeks += 1
        self.__dict__.setdefault("_sought", {})[partition] = (self._seeks, offset)

    def _sought_since(self, tp: TP, fetched_after: int) -> bool:
        """Whether `tp` was sought after `fetched_after` seeks."""
        latest = self._sought.get(tp)
        return latest is not None and latest[0] > fetched_after

    async def seek(self, partition: TP, offset: int) -> None:
        """Seek; messages of `partition` fetched before are not delivered (``_deliver``)."""
        self._mark_sought(partition, offset)
        await super().seek(partition, offset)

    async def _seek(self, partition: TP, offset: int) -> None:
        """aiokafka's seek, run on the consumer's own thread. Faust calls it from the
        app's thread; there it drops the partition's prefetched records while that
        thread's fetcher may be reading them, and completes a future of the other
        thread's event loop to wake the fetcher, which does not wake that loop."""
        thread: Any = self._thread
        await thread.call_thread(thread._ensure_consumer().seek, partition, offset)  # noqa: SLF001

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        """Fetch what aiokafka holds for the partitions active now, as they are now.

        Faust passes its own set of active partitions, which it changes in place as
        partitions are paused and resumed, and aiokafka reads it again each time it
        looks while the fetch waits; an empty set means every partition to aiokafka.
        A recovery that pauses the changelog partitions it has read, while a fetch
        waits, empties the set: aiokafka then handed over everything it had fetched
        of the case partitions, still paused, moving their positions to the end, and
        Faust's ``getmany`` skipped those records as not active. A restarted worker
        with no committed offsets then read nothing (the watchdog's ``refetch``
        found it, seconds later). A copy cannot change under the fetch."""
        frozen = None if active_partitions is None else frozenset(active_partitions)
        return await super()._getmany(frozen, timeout)  # type: ignore[arg-type]

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset (after a rebalance, and
        the watchdog's reseek). Each counts as sought before the seek starts, so that
        nothing fetched before it is delivered (``_deliver``)."""
        async with self._lock():
            assigned = self.assignment()
            for tp in assigned:
                self._mark_sought(tp, None)
            committed = await super().seek_to_committed()
            for tp in assigned:
                offset = committed.get(tp)
                if offset is not None and offset >= 0:
                    self._sought[tp] = (self._sought[tp][0], offset)
        return committed

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set  # type: ignore[attr-defined]  # noqa: SLF001
        diag = self.diag
        commit_every = self._commit_every
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                diag.set_flag(CONSUMER_FETCHING)
                fetched_after = self._seeks
                # The fetch (and any wait for flow) happens here; the batch's messages
                # are made one at a time as they are delivered, as in Faust's loop, so
                # a large fetch is never all Faust messages at once.
                batch = self.getmany(timeout=1.0)
                first = await anext(batch, None)
                # getmany can return at once again and again: let the loop run.
                await self.sleep(0)
                if first is not None and not self.should_stop:
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(
                        self._deliver(_chained(first, batch), fetched_after),
                        self.suspend_flow.wait(),
                    )
                diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, batch: AsyncIterator[tuple[TP, Message]], fetched_after: int) -> None:
        """Hand each message of `batch` to the conductor, in order, as Faust's loop does.

        `batch` was fetched after `fetched_after` seeks. A partition sought since then
        gets none of it: its messages may be from before the seek, and delivering them
        would move the partition's read offset past what the seek asked to read again
        (the messages then fetched from the sought offset would be skipped as read
        already). Nor is a case-topic message delivered while the app's flow control
        is suspended: a recovery resumes the stream partitions and seeks them while it
        is, and the streams drop what they are handed then. Either way the partition
        is sought again (``_seek_again``), so nothing left out is lost."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        app = self.app
        flow_control = app.flow_control
        sought = self.__dict__.setdefault("_sought", {})
        left: dict[TP, int] = {}  # per partition, the first offset left out
        since_yield = 0
        try:
            async for tp, message in batch:
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                if not self.flow_active or message.generation_id != app.consumer_generation_id:
                    self.log.info("Rebalance: the rest of a fetched batch is left to be read again")
                    return  # what getmany would not have handed over
                if (sought and self._sought_since(tp, fetched_after)) or (
                    not flow_control.is_active() and acks_enabled_for(message.topic)
                ):
                    left.setdefault(tp, message.offset)
                    continue
                offset = message.offset
                r_offset = read_offset[tp]
                if r_offset is not None and offset < r_offset:
                    continue  # read already (Faust logs it at its dev level)
                if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                await callback(message)
                if not self.flow_active or message.generation_id != app.consumer_generation_id:
                    return  # a rebalance came while the stream's buffer was full: its seek stands
                if sought and self._sought_since(tp, fetched_after):
                    continue  # sought meanwhile: that seek's read offset stands
                read_offset[tp] = offset
        finally:
            if left:
                await self._seek_again(left, fetched_after)

    async def _seek_again(self, left: Mapping[TP, int], fetched_after: int) -> None:
        """Seek each partition of `left` to the offset it was sought to since the batch
        was fetched, or else to the first offset of it left out; after any seek to the
        committed offsets under way (whose offsets it then takes)."""
        async with self._lock():
            assignment = self.assignment()
            for tp, first in left.items():
                if tp not in assignment:
                    continue  # its next owner reads it from the committed offset
                latest = self._sought.get(tp)
                offset = first
                if latest is not None and latest[0] > fetched_after and latest[1] is not None:
                    offset = latest[1]
                await self.seek(tp, offset)
        if not self.app.flow_control.is_active():
            await asyncio.sleep(0.05)  # a recovery under way: no fetching in a tight loop


async def _chained(
    first: tuple[TP, Message], rest: AsyncIterator[tuple[TP, Message]]
) -> AsyncIterator[tuple[TP, Message]]:
    yield first
    async for each in rest:
        yield each


class BatchTransport(StrictTransport):
    Consumer = BatchConsumer


def batched(app: faust.App) -> faust.App:
    """``app``, its consumer a ``BatchConsumer``: call before it starts."""
    app.transport = BatchTransport(app.conf.broker_consumer, app)
    return app


class RawSchema(faust.Schema[bytes, bytes]):
    """Keys and values as the bytes on the broker, with no codec lookups per message."""

    def __init__(self) -> None:
        super().__init__(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    def compile(self, app: AppT, **_: Any) -> Callable[..., Awaitable[EventT[bytes]]]:
        event_type = app.conf.Event  # read once: a settings lookup per message otherwise

        async def decode(message: Message, *, propagate: bool = False) -> EventT[bytes]:
            event = event_type(app, message.key, message.value, message.headers, message)  # type: ignore[operator]
            return event  # type: ignore[no-any-return]

        return decode


def raw_topic(app: faust.App, *names: str) -> TopicT:
    """The topics `names`, read as bytes (``RawSchema``)."""
    return app.topic(*names, schema=RawSchema())


def delivered(app: faust.App, stream: StreamT[bytes]) -> Iterator[EventT[bytes]]:
    """What the consumer has already put in `stream`'s buffer, one event at a time,
    without the turn of the event loop the stream takes for each.

    Each is checked as Faust's stream checks an event when it takes it: one that
    arrived while flow was suspended (a rebalance) or in an earlier generation is
    dropped, unacknowledged, as Faust drops it (``streams.commits``); one not yet
    tracked is tracked, so that a rebalance waits for its acknowledgement."""
    queue: Any = stream.channel.queue  # type: ignore[attr-defined]
    flow_control = app.flow_control
    consumer = app.consumer
    acking = app.topics.acks_enabled_for
    while queue.qsize():
        event: EventT[bytes] = queue.get_nowait()
        message = event.message
        if not flow_control.is_active() or message.generation_id != app.consumer_generation_id:
            continue
        if not message.tracked and acking(message.topic):
            message.tracked = True
            consumer.track_message(message)
        yield event


class InOrder:
    """Admits each case-topic partition's events to the worker without a hole.

    The changelog batches tell the publisher how far each partition's events are
    applied (the last offset of each batch), so an offset the worker never applied,
    with later ones applied, would be counted as applied and silently missing from
    the published trends. Faust can skip one: its stream drops an event it takes
    while flow is suspended or from an earlier generation (``streams.commits``),
    and its consumer skips offsets below a partition's read offset as read already.
    Whatever the cause, this catches it where it matters. The case topics' offsets
    are consecutive (no transactions, no compaction), so the next event of a
    partition must be at the offset after the last one applied: after an
    assignment, the last one the changelog records as applied (`applied`, from its
    batches; the partition's earliest offset when none records it), then each one
    after it. An earlier one is admitted too (read again: a duplicate).

    An event past that offset is neither applied nor acknowledged: the partition
    is sought back to the offset missing (again every `retry_after` seconds while
    later events still arrive first), and events are admitted again once it
    arrives. Offsets deleted by retention before any worker read them (the
    partition's earliest offset is past the one missing) are skipped, with a
    warning.
    """

    def __init__(
        self,
        app: faust.App,
        applied: Callable[[TP], int | None],
        on_gap: Callable[[], None] = lambda: None,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.applied = applied
        self.on_gap = on_gap
        self.retry_after = retry_after
        self.clock = clock
        #: Per partition, the offset of the next event to apply.
        self.expected: dict[TP, int] = {}
        #: Per partition sought back to a missing offset, when it was.
        self.sought: dict[TP, float] = {}

    async def admit(self, message: Message) -> bool:
        """Whether `message` may be applied now: no offset of its partition before it is
        missing. When not, it is neither applied nor acknowledged (read again later)."""
        expected = self.expected.get(message.tp)
        if expected is not None and message.offset <= expected:
            if message.offset == expected:
                self.expected[message.tp] = expected + 1
                if self.sought:
                    self.sought.pop(message.tp, None)
            return True
        return await self._check(message)

    def revoked(self, tps: set[TP]) -> None:
        """After a rebalance, the changelog says where each partition goes on."""
        for tp in tps:
            self.expected.pop(tp, None)
            self.sought.pop(tp, None)

    async def _check(self, message: Message) -> bool:
        tp, offset = message.tp, message.offset
        consumer: Any = self.app.consumer
        expected = self.expected.get(tp)
        if expected is None:  # the first event since the partition was assigned
            last = self.applied(tp)
            expected = await self._earliest(tp) if last is None else last + 1
        if offset > expected:
            now = self.clock()
            since = self.sought.get(tp)
            if since is not None and now - since < self.retry_after:
                consumer.forget(message)
                return False
            earliest = await self._earliest(tp)
            if earliest > expected:
                log.warning(
                    "%s[%s]: offsets %d to %d were deleted (retention) before a worker read them",
                    tp.topic,
                    tp.partition,
                    expected,
                    earliest - 1,
                )
                expected = earliest
        if offset > expected:
            log.warning(
                "%s[%s]: offset %d came before %d was applied: reading the partition again from %d",
                tp.topic,
                tp.partition,
                offset,
                expected,
                expected,
            )
            self.on_gap()
            self.expected[tp] = expected
            self.sought[tp] = self.clock()
            consumer.forget(message)
            await consumer.seek(tp, expected)
            return False
        self.expected[tp] = max(expected, offset + 1)
        self.sought.pop(tp, None)
        return True

    async def _earliest(self, tp: TP) -> int:
        earliest: Any = await self.app.consumer.earliest_offsets(tp)
        return int(earliest.get(tp) or 0)
