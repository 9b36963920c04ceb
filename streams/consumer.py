"""The worker's consumer: Faust's aiokafka consumer, handing each fetched batch to the
agents in one step, and committing as ``streams.commits`` does.

Faust's fetch loop (``Consumer._drain_messages``) delivers every message inside its
own ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an
``asyncio.wait`` per message, so that a rebalance can interrupt a delivery that is
blocked (the stream's buffer full, flow control closed). Measured on the worker,
that was about a quarter of its CPU per event.

Here the same loop runs once per fetched batch: the batch's messages are delivered
one after the other inside one ``wait_first``, which a rebalance interrupts as before.
What differs when it does: Faust moves its read offset past every message of the
batch, delivered or not; this moves it only past those delivered, so a message
dropped by the interruption is never mistaken for one already read when its
partition is fetched again (``streams.commits`` covers the commits of that case).
Each message is still checked as Faust checks it (read offsets, gaps for offsets
the broker skipped), and the loop still gives the event loop a turn every 100
messages.

An agent takes the events already in its stream's buffer in one step too
(``delivered``), rather than one turn of the event loop per event, checking each as
the stream would.

The agents read the case topics as bytes (``raw_topic``): Faust's schema would look
up the "raw" codec for the key and for the value of every message to pass the bytes
through unchanged; ``RawSchema`` hands them over as they came.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP, AppT, EventT, Message, StreamT, TopicT
from mode import ServiceT

from streams.commits import StrictConsumer, StrictTransport

#: Messages delivered between turns given to the event loop (Faust's own figure).
YIELD_EVERY = 100


class BatchConsumer(StrictConsumer):
    """``StrictConsumer``, delivering what it fetched a batch at a time."""

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set  # type: ignore[attr-defined]  # noqa: SLF001
        diag = self.diag
        commit_every = self._commit_every
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                diag.set_flag(CONSUMER_FETCHING)
                batch = [pair async for pair in self.getmany(timeout=1.0)]
                # getmany can return at once again and again: let the loop run.
                await self.sleep(0)
                if batch and not self.should_stop:
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await self.wait_first(self._deliver(batch), self.suspend_flow.wait())
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

    async def _deliver(self, batch: Sequence[tuple[TP, Message]]) -> None:
        """Hand each message of `batch` to the conductor, in order, as Faust's loop does."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        since_yield = 0
        for tp, message in batch:
            since_yield += 1
            if since_yield > YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # read already (Faust logs it at its dev level)
            if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            await callback(message)
            read_offset[tp] = offset


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
