"""The scheduler on a fake clock, without Kafka: the agreement's timetable, the run
counter, and the loop that runs the publisher at each scheduled time until stopped."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from hub.agreement.model import Agreement, load_agreement
from hub.errors import HubError, PublishError
from hub.periods import parse_period
from hub.resources import deploy
from hub.settings import HubSettings
from streams.publish.publisher import Release, TrendsLog
from streams.publish.requests import Request, release_from_json, release_to_json
from streams.publish.scheduler import Scheduler
from tests.support.trends import offline_trends_log


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakePublisher:
    """What the scheduler uses of a Publisher; each run_due gives the next outcome."""

    agreement: Agreement
    trends: TrendsLog
    outcomes: list[list[Release] | HubError]
    settings: HubSettings = field(default_factory=HubSettings)
    moments: list[datetime] = field(default_factory=list)
    stop: threading.Event | None = None  # set when the outcomes run out

    def run_due(self, at: datetime | None = None) -> list[Release]:
        assert at is not None
        self.moments.append(at)
        outcome = self.outcomes.pop(0)
        if not self.outcomes and self.stop is not None:
            self.stop.set()
        if isinstance(outcome, HubError):
            raise outcome
        return outcome


class ClockedStop(threading.Event):
    """A stop event whose `wait` moves the fake clock on instead of sleeping."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if not self.is_set() and timeout is not None:
            self.clock.now += timedelta(seconds=timeout)
        return self.is_set()


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(deploy("agreement", "example.yaml"))


@pytest.fixture
def trends(monkeypatch: pytest.MonkeyPatch) -> TrendsLog:
    return offline_trends_log(monkeypatch, [])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def release(publication: str, period: str, changed: bool, revision: int = 0) -> Release:
    return Release(publication, parse_period(period)[1], revision, 120, 30, changed)


def scheduler(
    agreement: Agreement,
    trends: TrendsLog,
    clock: Clock,
    outcomes: list[list[Release] | HubError],
) -> tuple[Scheduler, FakePublisher, CollectorRegistry]:
    publisher = FakePublisher(agreement, trends, outcomes)
    registry = CollectorRegistry()
    # The scheduler only reads what a Publisher has, not its type.
    return Scheduler(publisher, registry, clock), publisher, registry  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Monthly on the 10th, quarterly on 15 Jan/Apr/Jul/Oct, both 09:00 in London.
        (utc(2026, 11, 20, 12), utc(2026, 12, 10, 9)),  # GMT: 09:00 UTC
        (utc(2026, 12, 20, 12), utc(2027, 1, 10, 9)),  # monthly before quarterly
        (utc(2027, 1, 10, 9), utc(2027, 1, 15, 9)),  # strictly after a scheduled time
        (utc(2026, 6, 1), utc(2026, 6, 10, 8)),  # BST: 08:00 UTC
        (utc(2026, 7, 10, 8, 30), utc(2026, 7, 15, 8)),
    ],
)
def test_the_next_time_follows_the_agreement_timetable(
    agreement: Agreement, trends: TrendsLog, now: datetime, expected: datetime
) -> None:
    sched, _, _ = scheduler(agreement, trends, Clock(now), [])
    assert sched.next_time() == expected


def runs(registry: CollectorRegistry, publication: str, outcome: str) -> float:
    labels = {"publication": publication, "outcome": outcome}
    return registry.get_sample_value("hub_publication_runs_total", labels) or 0.0


def test_every_outcome_is_served_at_zero_before_any_run(
    agreement: Agreement, trends: TrendsLog
) -> None:
    """A counter series that appears only at its first increment would hide that increment
    from increase() (the publication-failed alert)."""
    _, _, registry = scheduler(agreement, trends, Clock(utc(2026, 10, 15, 8)), [])
    for schedule in agreement.publication:
        for outcome in ("released", "unchanged", "failed"):
            labels = {"publication": schedule.name, "outcome": outcome}
            assert registry.get_sample_value("hub_publication_runs_total", labels) == 0.0


def test_each_run_is_counted_by_outcome(
    agreement: Agreement, trends: TrendsLog, capsys: pytest.CaptureFixture[str]
) -> None:
    at = utc(2026, 10, 15, 8)
    releases = [
        release("monthly", "2026-08", changed=False),
        release("monthly", "2026-09", changed=True, revision=1),
        release("board-quarterly", "2026Q3", changed=True),
    ]
    failure = PublishError("the stream workers are 12 events behind")
    sched, publisher, registry = scheduler(agreement, trends, Clock(at), [releases, failure])
    assert sched.run_at(at) == releases
    assert publisher.moments == [at]
    assert runs(registry, "monthly", "released") == 1
    assert runs(registry, "monthly", "unchanged") == 1
    assert runs(registry, "board-quarterly", "released") == 1
    assert runs(registry, "board-quarterly", "unchanged") == 0
    out = capsys.readouterr().out
    assert "monthly 2026-09-01..2026-09-30: revision 1, 120 cells (30 suppressed)\n" in out
    assert "monthly 2026-08-01..2026-08-31: revision 0, 120 cells (30 suppressed), unchanged" in out

    # A failed run counts as failed for every publication and releases nothing.
    assert sched.run_at(at + timedelta(days=1)) == []
    assert runs(registry, "monthly", "failed") == 1
    assert runs(registry, "board-quarterly", "failed") == 1
    assert runs(registry, "monthly", "released") == 1


def test_the_trend_gauges_are_registered_with_the_run_counter(
    agreement: Agreement, trends: TrendsLog
) -> None:
    sched, _, registry = scheduler(agreement, trends, Clock(utc(2026, 11, 20, 12)), [])
    labels = {"publication": "monthly"}
    expected = utc(2026, 12, 10, 9).timestamp()
    assert registry.get_sample_value("hub_next_publication_timestamp_seconds", labels) == expected
    assert sched.collector.trends is trends


def test_run_catches_up_then_runs_at_the_scheduled_moment(
    agreement: Agreement, trends: TrendsLog, capsys: pytest.CaptureFixture[str]
) -> None:
    start = utc(2026, 12, 10, 8, 58)  # two minutes before the monthly release (GMT)
    clock = Clock(start)
    outcomes: list[list[Release] | HubError] = [
        [],  # catching up: nothing missed
        [release("monthly", "2026-11", changed=True)],
    ]
    sched, publisher, registry = scheduler(agreement, trends, clock, outcomes)
    sched.stop = publisher.stop = ClockedStop(clock)
    sched.run()
    assert publisher.moments == [start, utc(2026, 12, 10, 9)]
    assert sched.stop.waits == [60.0, 60.0]  # waits in steps of at most a minute
    assert runs(registry, "monthly", "released") == 1
    assert "next publication at 2026-12-10T09:00:00+00:00" in capsys.readouterr().out


def test_run_waits_in_steps_up_to_a_scheduled_moment_far_ahead(
    agreement: Agreement, trends: TrendsLog
) -> None:
    start = utc(2026, 12, 9, 23, 30, 30)
    clock = Clock(start)
    sched, publisher, _ = scheduler(agreement, trends, clock, [[], []])
    sched.stop = publisher.stop = ClockedStop(clock)
    sched.run()
    assert publisher.moments == [start, utc(2026, 12, 10, 9)]
    waits = sched.stop.waits
    assert all(w is not None and 0 < w <= 60 for w in waits)
    assert sum(w or 0 for w in waits) == (utc(2026, 12, 10, 9) - start).total_seconds()
    assert waits[-1] == 30.0  # the last step ends exactly at the scheduled moment


def test_setting_stop_ends_the_loop_while_it_waits(agreement: Agreement, trends: TrendsLog) -> None:
    clock = Clock(utc(2026, 12, 10, 8, 58))  # the clock stands still: the loop keeps waiting
    sched, publisher, _ = scheduler(agreement, trends, clock, [[], []])
    caught_up = threading.Event()
    waiting = threading.Event()

    def run_due(at: datetime | None = None) -> list[Release]:
        caught_up.set()
        return FakePublisher.run_due(publisher, at)

    publisher.run_due = run_due  # type: ignore[method-assign]
    real_wait = sched.stop.wait

    def wait(timeout: float | None = None) -> bool:
        waiting.set()
        return real_wait(timeout)

    sched.stop.wait = wait  # type: ignore[method-assign]
    loop = threading.Thread(target=sched.run)
    loop.start()
    try:
        assert waiting.wait(5) and caught_up.is_set()
        sched.stop.set()
    finally:
        loop.join(5)
    assert not loop.is_alive()
    assert publisher.moments == [clock.now]  # only the catch-up ran
    assert publisher.outcomes == [[]]


def test_a_scheduled_time_that_is_already_past_runs_at_once(
    agreement: Agreement, trends: TrendsLog
) -> None:
    # The clock jumps past the scheduled moment while the loop waits (a suspended host).
    clock = Clock(utc(2026, 12, 10, 8, 59, 30))
    sched, publisher, _ = scheduler(agreement, trends, clock, [[], []])
    stop = ClockedStop(clock)

    def wait(timeout: float | None = None) -> bool:
        stop.waits.append(timeout)
        clock.now = utc(2026, 12, 10, 11)
        return stop.is_set()

    stop.wait = wait  # type: ignore[method-assign]
    sched.stop = publisher.stop = stop
    sched.run()
    # run_at gets the scheduled moment, not the late clock: the period it closes is the same.
    assert publisher.moments == [utc(2026, 12, 10, 8, 59, 30), utc(2026, 12, 10, 9)]
    assert stop.waits == [30.0]


@dataclass
class Queue:
    """What the scheduler uses of a RequestQueue: the requests, and what it said back."""

    waiting: list[Request]
    said: list[tuple[str, str, object]] = field(default_factory=list)

    def next(self, timeout: float) -> Request | None:
        return self.waiting[0] if self.waiting else None

    def accept(self, request: Request) -> None:
        self.said.append(("accepted", request.id, None))

    def answer(self, request: Request, release: Release | None, error: str | None) -> None:
        self.waiting.pop(0)
        self.said.append(("answer", request.id, release if error is None else error))


@dataclass
class Forcing:
    """What a forced release uses of a Publisher."""

    agreement: Agreement
    trends: TrendsLog
    settings: HubSettings = field(default_factory=HubSettings)
    calls: list[tuple[str, str | None, str | None, float | None]] = field(default_factory=list)

    def publish_now(
        self,
        period: str,
        publication: str | None = None,
        *,
        reason: str,
        user: str | None = None,
        principal: str | None = None,
        worker_timeout: float | None = None,
    ) -> Release:
        assert (reason, principal) == ("board meeting brought forward", "User:ops")
        self.calls.append((period, publication, user, worker_timeout))
        if period == "2099-01":
            raise PublishError("period 2099-01 has not ended")
        return Release("monthly", parse_period(period)[1], 2, 40, 3, True, forced=True)


def request(id: str, period: str, accept_in: float) -> Request:
    now = time.time()
    return Request(
        id,
        period,
        None,
        "operator",
        "board meeting brought forward",
        "User:ops",
        now + accept_in,
        now + accept_in + 60,
        30.0,
    )


def test_requests_are_carried_out_answered_and_expired_ones_refused(
    agreement: Agreement, trends: TrendsLog
) -> None:
    publisher = Forcing(agreement, trends)
    queue = Queue(
        [request("a", "2026-10", 15), request("b", "2026-09", -1), request("c", "2099-01", 15)]
    )
    scheduler = Scheduler(publisher, CollectorRegistry(), requests=queue)  # type: ignore[arg-type]
    scheduler.wait(0.5)
    assert [(kind, id) for kind, id, _ in queue.said] == [
        ("accepted", "a"),
        ("answer", "a"),
        ("answer", "b"),
        ("accepted", "c"),
        ("answer", "c"),
    ]
    assert queue.said[1][2] == Release(
        "monthly", parse_period("2026-10")[1], 2, 40, 3, True, forced=True
    )
    assert "expired" in str(queue.said[2][2])  # read after its accept_by: not carried out
    assert "has not ended" in str(queue.said[4][2])
    assert [call[:3] for call in publisher.calls] == [
        ("2026-10", None, "operator"),
        ("2099-01", None, "operator"),
    ]
    assert all(0 < (call[3] or 0) <= 30 for call in publisher.calls)


def test_answers_read_back_as_the_release_they_carry() -> None:
    release = Release(
        "monthly", parse_period("2026-10")[1], 1, 12, 4, True, True, 2, (("events", "sex"),)
    )
    assert release_from_json(json.loads(json.dumps(release_to_json(release)))) == release
