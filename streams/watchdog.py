"""Liveness: a worker that owns partitions with events waiting, yet reads nothing,
or has read events it cannot commit.

faust-streaming can come out of a rebalance with its partitions assigned and
"Worker ready" logged, and never fetch from them again (faust-streaming issue
629; seen here after a worker of a pair is killed and restarted). Nothing fails,
so nothing restarts it, and the publisher waits for events no one applies. And
Faust's stream can drop an event silently (``streams.commits``), which the
strict commits then refuse to pass: its partition stops committing.

Every few seconds (a Faust timer) the watchdog looks at what the worker has read
and committed, and at the lag probe's view of its partitions. When the worker
is not recovering and has read nothing for 5 s with events waiting, it looks
once whether its consumer has fetched past what it read: a restarted worker
was seen with every partition fetched to its end and none of it delivered,
and nothing new arriving to show the hole (a fetch handed over partitions
Faust still held paused; ``BatchConsumer._getmany`` explains it and closes
that way in). If so, it seeks each such partition back to the next offset
the worker needs (``refetch``; not to the committed offset, which the group
may not have yet). When it has read nothing for ``after`` seconds:

* if its partitions have events waiting, it logs what Faust's consumer holds
  (flow, active, paused and buffered partitions), resumes its partitions and
  flow, seeks them to their committed offsets and asks the consumer group to
  rebalance (a rejoin); if it still reads nothing after as long again (from the
  end of the rejoin's recovery, which it looks at the consumer after too), it exits
  with status 4 and says so: a supervisor (Kubernetes, systemd, `docker
  compose`) starts it again, and the next owner of its partitions reads them
  from the committed offsets;
* if it has read events it has not committed, it seeks its partitions back to
  the committed offsets, so the event the commits wait for is read again.

Seeking back is always safe: events read again are dropped as duplicates, so
counts stay exact. Each action is counted (``hub_worker_stall_actions_total``)
and logged.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from streams.app import Worker
from streams.metrics import LagReport

log = logging.getLogger(__name__)

#: The process's exit status when it gives up on a stall.
STALLED = 4
ACTIONS = ("refetch", "rejoin", "exit", "reseek")
#: Reading nothing for this long with events waiting, the watchdog looks once whether
#: the consumer has fetched past what the worker read (``_fetched_past``).
REFETCH_AFTER = 5.0


class Watchdog:
    def __init__(
        self,
        worker: Worker,
        lag: Callable[[], LagReport | None],
        registry: CollectorRegistry,
        after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker = worker
        self.lag = lag
        self.after = after
        self.clock = clock
        self.seen = -1
        self.recoveries = -1  # the worker's recoveries when it last read anything
        self.since = clock()
        self.step = 0
        self.before = 0  # the steps taken before the last recovery of this stall
        self.refetch_after = min(REFETCH_AFTER, after)
        self.refetched = False  # looked already, since the worker last read anything
        self.actions = Counter(
            "hub_worker_stall_actions",
            "What the worker did about reading nothing: refetch (sought back to the next"
            " offset it needs: its consumer had fetched past events it never delivered),"
            " rejoin (its partitions resumed,"
            " sought to committed offsets, the group asked to rebalance) and exit (status"
            " 4, for a supervisor) when events are waiting; reseek (sought back to the"
            " committed offsets) when events it read are not committed.",
            ["action"],
            registry=registry,
        )
        for action in ACTIONS:
            self.actions.labels(action)

    def waiting(self) -> int:
        """Events on this worker's partitions it has not read (0 when unknown)."""
        report = self.lag()
        mine = report[0] if report is not None else None
        return sum(mine.values()) if mine else 0

    def uncommitted(self) -> int:
        """This worker's partitions where it has read past the committed offset."""
        consumer: Any = self.worker.app._consumer  # noqa: SLF001
        if consumer is None:
            return 0
        committed: dict[Any, int | None] = dict(consumer._committed_offset)  # noqa: SLF001
        behind = 0
        for tp, last in list(self.worker.positions.items()):
            offset = committed.get(tp)
            behind += offset is None or offset < last + 1
        return behind

    async def check(self) -> None:
        now = self.clock()
        read = self.worker.read_count
        recoveries = self.worker.recoveries
        waiting = 0 if self.worker.recovering else self.waiting()
        behind = 0 if self.worker.recovering or waiting else self.uncommitted()
        if read != self.seen or not (waiting or behind):
            self.seen, self.recoveries = read, recoveries
            self.since, self.step, self.before, self.refetched = now, 0, 0, False
            return
        if recoveries != self.recoveries:
            # A recovery (the rejoin's, say) that began and ended between two checks,
            # and still nothing read: the next step comes `after` seconds from now, not
            # from the start of the stall, and the consumer is looked at again.
            self.recoveries = recoveries
            self.since, self.before, self.refetched = now, self.step, False
            return
        if waiting and not self.refetched and now - self.since >= self.refetch_after:
            self.refetched = True
            try:
                past = await self.fetched_past()
            except Exception as exc:  # Kafka unreachable meanwhile: the later steps remain
                log.warning("could not look at what the consumer has fetched: %r", exc)
                past = {}
            if past:
                self.actions.labels("refetch").inc()
                await self._refetch(now - self.since, past)
                return
        if now - self.since < self.after * (self.step - self.before + 1):
            return
        self.step += 1
        stalled = now - self.since
        if behind:
            self.actions.labels("reseek").inc()
            await self._reseek(stalled, behind)
        elif self.step == 1:
            self.actions.labels("rejoin").inc()
            await self._resume(stalled)
            await self._rejoin(stalled)
        else:
            self.actions.labels("exit").inc()
            self._exit(stalled)

    async def fetched_past(self) -> dict[Any, int]:
        """This worker's partitions whose consumer position is past the next offset the
        worker has to read, with nothing fetched for them waiting to be delivered: events
        fetched and never handed to the worker (Faust can drop the rest of a fetched
        batch), which nothing reads again until the partition is sought back. Each with
        the offset to read it from again."""
        consumer: Any = self.worker.app._consumer  # noqa: SLF001
        if consumer is None:
            return {}
        committed: dict[Any, int | None] = dict(consumer._committed_offset)  # noqa: SLF001
        known = {
            tp: self.next_offset(tp, committed.get(tp))
            for tp in consumer.assignment()
            if tp.topic in self.worker.topics
        }
        nexts = {tp: offset for tp, offset in known.items() if offset is not None}
        unknown = [tp for tp, offset in known.items() if offset is None]
        if unknown:  # the first offset each holds, asked in one request
            earliest = await consumer.earliest_offsets(*unknown)
            nexts.update({tp: int(earliest.get(tp) or 0) for tp in unknown})
        thread: Any = consumer._thread  # noqa: SLF001
        past = await thread.call_thread(_fetched_past, thread._ensure_consumer(), nexts)  # noqa: SLF001
        return {tp: nexts[tp] for tp in past}

    def next_offset(self, tp: Any, committed: int | None) -> int | None:
        """The next offset of `tp` the worker has to read: after the last it read, or
        where ``InOrder`` expects it to go on, or after the last the changelog records
        as applied, or the committed offset; None: the first the partition holds."""
        worker = self.worker
        last = worker.positions.get(tp)
        if last is not None:
            return last + 1
        expected = worker.in_order.expected.get(tp)
        if expected is not None:
            return expected
        applied = worker.applied(tp)
        if applied is not None:
            return applied + 1
        return committed

    async def _refetch(self, stalled: float, past: dict[Any, int]) -> None:
        log.warning(
            "read nothing for %.0f s with events waiting, and its consumer has fetched past"
            " them on %d of its partitions: reading those again from the next offset the"
            " worker needs (events read again are dropped as duplicates)",
            stalled,
            len(past),
        )
        await self._log_fetcher()
        consumer: Any = self.worker.app.consumer
        for tp, offset in past.items():
            await consumer.seek(tp, offset)

    async def _log_fetcher(self) -> None:
        """Log where aiokafka's fetcher stands on each partition (a diagnosis)."""
        consumer: Any = self.worker.app.consumer
        thread: Any = consumer._thread  # noqa: SLF001
        try:
            fetcher = await thread.call_thread(_fetcher_state, thread._ensure_consumer())  # noqa: SLF001
        except Exception as exc:  # a diagnosis only: never in the way of the remedy
            fetcher = f"not read ({type(exc).__name__})"
        log.warning("the consumer's fetcher: %s", fetcher)

    async def _reseek(self, stalled: float, behind: int) -> None:
        log.warning(
            "read nothing for %.0f s and %d of its partitions are read past their committed"
            " offset: seeking them back to it (events read again are dropped as"
            " duplicates)",
            stalled,
            behind,
        )
        consumer: Any = self.worker.app.consumer
        await consumer.perform_seek()

    async def _resume(self, stalled: float) -> None:
        app = self.worker.app
        consumer: Any = app.consumer
        assigned = {tp for tp in consumer.assignment() if tp.topic in self.worker.topics}
        log.warning(
            "read nothing for %.0f s with %d events waiting on its partitions: resuming"
            " them, seeking to the committed offsets (flow %s; flow control %s; seeks %s;"
            " active %s; paused %s; buffered %s)",
            stalled,
            self.waiting(),
            "on" if consumer.flow_active else "off",
            "active" if app.flow_control.is_active() else "suspended",
            getattr(consumer, "_seeks", "-"),
            _partitions(consumer._active_partitions),  # noqa: SLF001
            _partitions(consumer._paused_partitions),  # noqa: SLF001
            _partitions(consumer._buffered_partitions),  # noqa: SLF001
        )
        await self._log_fetcher()
        consumer.resume_partitions(assigned)
        consumer.resume_flow()
        app.flow_control.resume()
        await consumer.perform_seek()

    async def _rejoin(self, stalled: float) -> None:
        log.warning(
            "read nothing for %.0f s with events waiting: asking the group to rebalance",
            stalled,
        )
        consumer: Any = self.worker.app.consumer
        thread: Any = consumer._thread  # noqa: SLF001
        await thread.call_thread(_request_rejoin, thread._ensure_consumer())  # noqa: SLF001

    def _exit(self, stalled: float) -> None:
        message = (
            f"the worker has read nothing for {stalled:.0f} s while its partitions have"
            " events waiting, after seeking them back and rejoining its group; exiting"
            f" (status {STALLED}) to be started again: the next owner of its partitions"
            " reads them from the committed offsets"
        )
        log.error(message)
        print(message, file=sys.stderr, flush=True)
        os._exit(STALLED)


async def _request_rejoin(consumer: Any) -> None:
    """Runs in the consumer's own thread: aiokafka's coordinator belongs to its loop."""
    consumer._coordinator.request_rejoin()  # noqa: SLF001


async def _fetched_past(consumer: Any, nexts: dict[Any, int]) -> list[Any]:
    """Runs in the consumer's own thread: the partitions of `nexts` (partition -> the
    next offset the worker has to read) aiokafka has fetched past, nothing of them
    buffered."""
    subscription = consumer._subscription.subscription  # noqa: SLF001
    assignment = None if subscription is None else subscription.assignment
    if assignment is None or not assignment.active:
        return []
    buffered = consumer._fetcher._records  # noqa: SLF001
    past = []
    for tp, offset in nexts.items():
        if tp in buffered or tp not in assignment.tps:
            continue
        state = assignment.state_value(tp)
        if state.has_valid_position and state.position > offset:
            past.append(tp)
    return past


async def _fetcher_state(consumer: Any) -> str:
    """Runs in the consumer's own thread: where aiokafka's fetcher stands on each
    partition (position and high watermark) and which it holds records for."""
    fetcher = consumer._fetcher  # noqa: SLF001
    subscription = consumer._subscription.subscription  # noqa: SLF001
    assignment = None if subscription is None else subscription.assignment
    if assignment is None:
        return "no assignment"
    parts = [f"assignment {'active' if assignment.active else 'inactive'}"]
    for tp in sorted(assignment.tps):
        state = assignment.state_value(tp)
        where = state.position if state.has_valid_position else "awaiting reset"
        flags = " paused" if state.paused else ""
        parts.append(f"{tp.topic}[{tp.partition}] at {where} of {state.highwater}{flags}")
    parts.append(f"buffered {_partitions(fetcher._records)}")  # noqa: SLF001
    return "; ".join(parts)


def _partitions(tps: Any) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps or ())) or "none"
