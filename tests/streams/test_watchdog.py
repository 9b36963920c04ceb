"""The worker's watchdog: which step it takes, and when (``streams.watchdog``).

What each step does to a real Faust consumer is exercised by the stream tests that
kill and restart workers; here a worker stand-in and a clock drive the decisions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from streams.metrics import LagReport
from streams.watchdog import Watchdog


@dataclass
class Reading:
    recovering: bool = False
    recoveries: int = 0
    read_count: int = 0
    behind: int = 0  # partitions read past their committed offset
    past: int = 0  # partitions fetched past what the worker read, nothing buffered


class Recorded(Watchdog):
    taken: list[str]
    registry: CollectorRegistry

    def uncommitted(self) -> int:
        return self.worker.behind  # type: ignore[attr-defined,no-any-return]

    async def fetched_past(self) -> dict[Any, int]:
        if self.worker.past < 0:  # type: ignore[attr-defined]
            raise ConnectionError("Kafka unreachable")
        return {f"t[{n}]": 0 for n in range(self.worker.past)}  # type: ignore[attr-defined]

    async def _refetch(self, stalled: float, past: dict[Any, int]) -> None:
        self.taken.append(f"refetch {len(past)} after {stalled:.0f}")

    async def _resume(self, stalled: float) -> None:
        self.taken.append(f"resume after {stalled:.0f}")

    async def _reseek(self, stalled: float, behind: int) -> None:
        self.taken.append(f"reseek {behind} after {stalled:.0f}")

    async def _rejoin(self, stalled: float) -> None:
        self.taken.append(f"rejoin after {stalled:.0f}")

    def _exit(self, stalled: float) -> None:
        self.taken.append(f"exit after {stalled:.0f}")


def watchdog(worker: Reading, waiting: list[int], now: list[float]) -> Recorded:
    def lag() -> LagReport:
        return ({"t.cases.police": waiting[0]}, {}, 0)

    registry = CollectorRegistry()
    dog = Recorded(worker, lag, registry, after=30, clock=lambda: now[0])  # type: ignore[arg-type]
    dog.taken = []
    dog.registry = registry
    return dog


def tick(dog: Watchdog, now: list[float], to: float) -> None:
    while now[0] < to:
        now[0] += 5
        asyncio.run(dog.check())


def test_a_worker_reading_nothing_with_events_waiting_rejoins_then_exits() -> None:
    worker, waiting, now = Reading(), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 25)
    assert dog.taken == []
    tick(dog, now, 70)
    assert dog.taken == ["resume after 30", "rejoin after 30", "exit after 60"]
    assert (
        dog.registry.get_sample_value("hub_worker_stall_actions_total", {"action": "rejoin"}) == 1
    )


def test_reading_again_resets_it() -> None:
    worker, waiting, now = Reading(), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 35)
    assert dog.taken == ["resume after 30", "rejoin after 30"]
    worker.read_count += 10  # the rejoin worked
    tick(dog, now, 60)
    assert len(dog.taken) == 2
    tick(dog, now, 100)  # stalled again later: starts over from the first step
    assert dog.taken[2:] == ["resume after 30", "rejoin after 30", "exit after 60"]


def test_events_read_but_not_committed_are_read_again() -> None:
    worker, waiting, now = Reading(behind=2), [0], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 65)
    assert dog.taken == ["reseek 2 after 30", "reseek 2 after 60"]
    worker.behind = 0  # the commit went through
    tick(dog, now, 200)
    assert len(dog.taken) == 2


def test_nothing_waiting_or_recovering_is_not_a_stall() -> None:
    worker, waiting, now = Reading(), [0], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 200)
    waiting[0] = 50
    worker.recovering = True
    tick(dog, now, 400)
    assert dog.taken == []


def test_events_fetched_past_are_sought_back_once_after_five_seconds() -> None:
    """A consumer that fetched past events it never delivered is sought back at the
    first look (5 s), once per stall; the usual steps follow if that does not help."""
    worker, waiting, now = Reading(past=3), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 10)  # the first check (at 5) sees the worker for the first time
    assert dog.taken == ["refetch 3 after 5"]
    tick(dog, now, 35)
    assert dog.taken == ["refetch 3 after 5", "resume after 30", "rejoin after 30"]
    assert (
        dog.registry.get_sample_value("hub_worker_stall_actions_total", {"action": "refetch"}) == 1
    )
    worker.read_count += 1  # reading again: the next stall is looked at afresh
    tick(dog, now, 45)
    assert dog.taken[3:] == ["refetch 3 after 5"]


def test_nothing_fetched_past_goes_on_to_the_usual_steps() -> None:
    worker, waiting, now = Reading(past=0), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 35)
    assert dog.taken == ["resume after 30", "rejoin after 30"]


def test_a_failed_look_at_the_consumer_leaves_the_usual_steps() -> None:
    worker, waiting, now = Reading(past=-1), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 35)
    assert dog.taken == ["resume after 30", "rejoin after 30"]


def test_a_recovery_between_two_checks_gives_the_next_step_its_full_wait() -> None:
    """The rejoin's recovery can begin and end between two checks (5 s apart), so the
    watchdog never sees the worker recovering. If nothing is read after it, the exit
    comes `after` seconds from the recovery, not sooner, and the consumer is looked at
    again first."""
    worker, waiting, now = Reading(), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 35)
    assert dog.taken == ["resume after 30", "rejoin after 30"]
    worker.recoveries += 1  # the rejoin's recovery, unseen, and still nothing read
    worker.past = 2
    tick(dog, now, 40)  # the recovery noticed at 40
    tick(dog, now, 65)
    assert dog.taken[2:] == ["refetch 2 after 5"]
    tick(dog, now, 70)
    assert dog.taken[2:] == ["refetch 2 after 5", "exit after 30"]
