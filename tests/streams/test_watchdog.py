"""The worker's watchdog: which step it takes, and when (``streams.watchdog``).

What each step does to a real Faust consumer is exercised by the stream tests that
kill and restart workers; here a worker stand-in and a clock drive the decisions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from streams.metrics import LagReport
from streams.watchdog import Watchdog


@dataclass
class Reading:
    recovering: bool = False
    read_count: int = 0


class Recorded(Watchdog):
    taken: list[str]
    registry: CollectorRegistry

    async def _resume(self, stalled: float) -> None:
        self.taken.append(f"resume after {stalled:.0f}")

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


def test_a_worker_reading_nothing_with_events_waiting_is_resumed_then_rejoined_then_exits() -> None:
    worker, waiting, now = Reading(), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 25)
    assert dog.taken == []
    tick(dog, now, 100)
    assert dog.taken == ["resume after 30", "rejoin after 60", "exit after 90"]
    assert (
        dog.registry.get_sample_value("hub_worker_stall_actions_total", {"action": "resume"}) == 1
    )


def test_reading_again_resets_it() -> None:
    worker, waiting, now = Reading(), [120], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 35)
    assert dog.taken == ["resume after 30"]
    worker.read_count += 10  # the resume worked
    tick(dog, now, 60)
    assert dog.taken == ["resume after 30"]
    tick(dog, now, 100)  # stalled again later: starts over from the first step
    assert dog.taken == ["resume after 30", "resume after 30", "rejoin after 60"]


def test_nothing_waiting_or_recovering_is_not_a_stall() -> None:
    worker, waiting, now = Reading(), [0], [0.0]
    dog = watchdog(worker, waiting, now)
    tick(dog, now, 200)
    waiting[0] = 50
    worker.recovering = True
    tick(dog, now, 400)
    assert dog.taken == []
