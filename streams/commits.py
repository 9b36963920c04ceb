"""Offset commits that never pass an event the worker has not acknowledged.

Faust commits, per partition, the run of consecutive acknowledged offsets. When
the first acknowledged offset is exactly one past the committed one, its check
for a gap at the head (``min(acked) - committed > 1``) lets the run through,
so an event at the committed offset that was never acknowledged is committed
past and never read again (faust-streaming issue 606). Faust's stream drops an
event silently when it arrives while flow is suspended or from an earlier
generation, so that event exists: seen here as one event of a restarted worker
missing from the counts, its partition fully committed.

The case topics hold no transaction markers and are never compacted, so
offsets are consecutive: the run committed here must start exactly at the
committed offset. Offsets Faust never read at all (``_gap``: deleted by
retention, say) still count as acknowledged, as in Faust. Where the head event
is missing, nothing is committed for that partition; the worker's watchdog
then seeks it back to the committed offset, and the event is read again
(``streams.watchdog``).
"""

from __future__ import annotations

import faust
from faust.transport.drivers.aiokafka import Consumer, Transport
from faust.types import TP, Message
from faust.utils.functional import consecutive_numbers


class StrictConsumer(Consumer):
    """Faust's aiokafka consumer, committing only from the committed offset on."""

    def forget(self, message: Message) -> None:
        """Stop waiting for `message`'s acknowledgement: it is not applied, and will be
        read again (a rebalance waits for every message it tracks)."""
        self._unacked_messages.discard(message)

    def _new_offset(self, tp: TP) -> int | None:
        acked: list[int] = self._acked[tp]
        if not acked:
            return None
        gap = self._gap[tp]
        if gap:
            filled = sorted(gap.overlap(0, max(acked)), key=lambda interval: interval.begin)
            for interval in filled:
                acked.extend(range(interval.begin, interval.end))
            if filled:
                gap.chop(0, max(max(acked), filled[-1].end - 1) + 1)
        acked.sort()
        committed = self._committed_offset[tp]
        if committed is not None and acked[0] > committed:
            return None  # the event at the committed offset is not acknowledged
        batch = next(consecutive_numbers(acked))
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        return int(batch[-1]) + 1


class StrictTransport(Transport):
    Consumer = StrictConsumer


def strict(app: faust.App) -> faust.App:
    """``app``, its consumer committing with ``StrictConsumer``: call before it starts."""
    app.transport = StrictTransport(app.conf.broker_consumer, app)
    return app
