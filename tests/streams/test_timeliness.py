"""Submission deadlines and lateness per agency, on a controllable clock (no broker).

UK clocks go forward on 29 March 2026 (01:00 GMT -> 02:00 BST) and back on
25 October 2026 (02:00 BST -> 01:00 GMT).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from prometheus_client import CollectorRegistry, generate_latest

from hub.agreement.model import Agreement, load_agreement, next_local
from hub.errors import ConfigError
from streams.timeliness import Timeliness, TimelinessCollector, following_local, previous_local

EXAMPLE = Path(__file__).parents[2] / "deploy" / "agreement" / "example.yaml"
LONDON = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def example() -> Agreement:
    return load_agreement(EXAMPLE)


def with_deadline(agency: str, cron: str) -> Agreement:
    """The example agreement with one partner's submit_by changed (validated again)."""
    data: dict[str, Any] = example().model_dump(mode="json")
    for partner in data["partners"]:
        if partner["id"] == agency:
            partner["submit_by"] = {"cron": cron}
    return Agreement.model_validate(data)


def tracker(at: datetime, agreement: Agreement | None = None) -> tuple[Timeliness, Clock]:
    clock = Clock(at)
    return Timeliness(agreement or example(), now=clock), clock


# -- the example: "0 17 5 * *", each month's data in by 17:00 London time on the 5th --


def test_nothing_submitted_lateness_is_zero_at_the_deadline_and_grows_after() -> None:
    timeliness, clock = tracker(utc(2026, 2, 5, 17))
    status = timeliness.status("camhs")
    assert status.last_submission is None and status.first_submission is None
    assert status.last_deadline == utc(2026, 2, 5, 17)  # GMT: 17:00 local is 17:00 UTC
    assert status.next_deadline == utc(2026, 3, 5, 17)
    assert status.due_period == (date(2026, 1, 1), date(2026, 1, 31))
    assert (status.submitted, status.on_time, status.lateness_seconds) == (False, False, 0.0)
    clock.now = utc(2026, 2, 5, 18)
    assert timeliness.status("camhs").lateness_seconds == 3600
    clock.now = utc(2026, 3, 5, 16, 59)
    assert timeliness.status("camhs").lateness_seconds == 28 * 86400 - 60


def test_lateness_is_zero_before_the_deadline_then_grows_until_data_arrives() -> None:
    timeliness, clock = tracker(utc(2026, 2, 5, 16, 59, 59))
    timeliness.observe("camhs", utc(2026, 1, 4, 12))  # December's data, on time
    before = timeliness.status("camhs")
    assert before.due_period == (date(2025, 12, 1), date(2025, 12, 31))
    assert before.last_deadline == utc(2026, 1, 5, 17)
    assert (before.submitted, before.on_time, before.lateness_seconds) == (True, True, 0.0)
    # From the deadline January is due; nothing has come since 1 February.
    clock.now = utc(2026, 2, 5, 17)
    at = timeliness.status("camhs")
    assert at.due_period == (date(2026, 1, 1), date(2026, 1, 31))
    assert at.last_submission == utc(2026, 1, 4, 12)
    assert (at.submitted, at.on_time, at.lateness_seconds) == (False, False, 0.0)
    clock.now = utc(2026, 2, 6, 17)
    assert timeliness.status("camhs").lateness_seconds == 86400


def test_submission_after_the_period_end_and_before_the_deadline_is_on_time() -> None:
    timeliness, clock = tracker(utc(2026, 2, 10))
    timeliness.observe("camhs", utc(2026, 2, 2, 9))
    timeliness.observe("camhs", utc(2026, 2, 8, 9))  # later messages change nothing
    status = timeliness.status("camhs")
    assert status.first_submission == utc(2026, 2, 2, 9)
    assert status.last_submission == utc(2026, 2, 8, 9)
    assert (status.submitted, status.on_time, status.lateness_seconds) == (True, True, 0.0)


def test_a_message_stamped_at_the_deadline_is_on_time() -> None:
    timeliness, _ = tracker(utc(2026, 2, 20))
    timeliness.observe("camhs", utc(2026, 2, 5, 17))
    status = timeliness.status("camhs")
    assert (status.on_time, status.lateness_seconds) == (True, 0.0)


def test_the_period_ends_at_local_midnight() -> None:
    # June's data: the period ends at 00:00 BST on 1 July (23:00 UTC on 30 June);
    # the deadline is 17:00 BST on 5 July (16:00 UTC).
    timeliness, _ = tracker(utc(2026, 7, 10))
    timeliness.observe("camhs", utc(2026, 6, 30, 22, 59, 59))  # still June in London
    timeliness.observe("spa", utc(2026, 6, 30, 23))  # 00:00 on 1 July in London
    camhs, spa = timeliness.status("camhs"), timeliness.status("spa")
    assert camhs.last_deadline == utc(2026, 7, 5, 16)
    assert camhs.due_period == (date(2026, 6, 1), date(2026, 6, 30))
    assert (camhs.submitted, camhs.lateness_seconds) == (False, 4 * 86400 + 8 * 3600)
    assert (spa.submitted, spa.on_time, spa.lateness_seconds) == (True, True, 0.0)


def test_a_first_submission_after_the_deadline_fixes_the_lateness() -> None:
    timeliness, clock = tracker(utc(2026, 2, 6, 17))
    timeliness.observe("camhs", utc(2026, 1, 20))  # before the period end: does not count
    timeliness.observe("camhs", utc(2026, 2, 6, 17))  # a day late
    status = timeliness.status("camhs")
    assert (status.submitted, status.on_time, status.lateness_seconds) == (True, False, 86400)
    assert status.first_submission == utc(2026, 2, 6, 17)
    clock.now = utc(2026, 2, 20)
    timeliness.observe("camhs", utc(2026, 2, 19))
    later = timeliness.status("camhs")
    assert (later.lateness_seconds, later.first_submission) == (86400, utc(2026, 2, 6, 17))
    assert later.last_submission == utc(2026, 2, 19)


def test_an_earlier_message_read_late_counts_by_its_timestamp() -> None:
    # Two partitions: the one with the 4 February message is read after the other.
    timeliness, _ = tracker(utc(2026, 2, 20))
    timeliness.observe("camhs", utc(2026, 2, 7))
    timeliness.observe("camhs", utc(2026, 2, 4))
    status = timeliness.status("camhs")
    assert (status.on_time, status.lateness_seconds) == (True, 0.0)
    assert status.last_submission == utc(2026, 2, 7)


def test_agencies_are_independent_and_keep_their_own_deadlines() -> None:
    timeliness, _ = tracker(utc(2026, 2, 4, 12))
    timeliness.observe("camhs", utc(2026, 1, 3))
    timeliness.observe("counselling", utc(2026, 2, 3, 18))  # an hour after its deadline
    camhs, spa, counselling = (timeliness.status(a) for a in ("camhs", "spa", "counselling"))
    # camhs and spa: December is due (5 January); counselling: January (3 February).
    assert camhs.due_period == spa.due_period == (date(2025, 12, 1), date(2025, 12, 31))
    assert (camhs.on_time, camhs.lateness_seconds) == (True, 0.0)
    assert (spa.submitted, spa.last_submission) == (False, None)
    assert spa.lateness_seconds == (utc(2026, 2, 4, 12) - utc(2026, 1, 5, 17)).total_seconds()
    assert counselling.last_deadline == utc(2026, 2, 3, 17)
    assert counselling.due_period == (date(2026, 1, 1), date(2026, 1, 31))
    assert (counselling.on_time, counselling.lateness_seconds) == (False, 3600)


def test_every_month_of_a_year() -> None:
    timeliness, clock = tracker(utc(2026, 1, 1))
    for month in range(1, 13):
        clock.now = utc(2026, month, 4)
        timeliness.observe("camhs", utc(2026, month, 3, 9))
        if month % 2:
            timeliness.observe("spa", utc(2026, month, 6, 9))
        clock.now = utc(2026, month, 20)
        camhs, spa = timeliness.status("camhs"), timeliness.status("spa")
        assert (camhs.on_time, camhs.lateness_seconds) == (True, 0.0), month
        assert spa.submitted is bool(month % 2), month
        deadline = next_local("0 17 5 * *", LONDON, utc(2026, month, 1))
        expected = utc(2026, month, 6, 9) - deadline if month % 2 else clock.now - deadline
        assert spa.lateness_seconds == expected.total_seconds(), month


def test_unknown_agencies_and_unusable_timestamps_are_ignored() -> None:
    timeliness, _ = tracker(utc(2026, 2, 10))
    timeliness.observe("not-a-partner", utc(2026, 2, 2))
    for seconds in (-1.0, math.nan, math.inf, 1e300):
        timeliness.observe_timestamp("camhs", seconds)
    assert [s.agency for s in timeliness.statuses()] == [p.id for p in example().partners]
    assert timeliness.status("camhs").last_submission is None
    with pytest.raises(ConfigError, match="not-a-partner"):
        timeliness.status("not-a-partner")
    with pytest.raises(ValueError, match="no timezone"):
        timeliness.observe("camhs", datetime(2026, 2, 2))
    timeliness.observe_timestamp("camhs", utc(2026, 2, 2).timestamp())
    assert timeliness.status("camhs").on_time


# -- deadlines on the days the clocks change, as hub.agreement.model.next_local places them --


def test_a_deadline_in_the_skipped_hour_falls_an_hour_later_on_the_wall_clock() -> None:
    # 01:30 on 29 March 2026 does not exist in London: the deadline is 02:30 BST (01:30 UTC).
    agreement = with_deadline("camhs", "30 1 29 * *")
    # 01:29 UTC is 02:29 BST: already past 01:30 on the wall, still before the deadline.
    timeliness, clock = tracker(utc(2026, 3, 29, 1, 29), agreement)
    before = timeliness.status("camhs")
    assert before.last_deadline == utc(2026, 1, 29, 1, 30)  # no 29 February in 2026
    assert before.next_deadline == utc(2026, 3, 29, 1, 30)
    assert before.next_deadline == next_local("30 1 29 * *", LONDON, utc(2026, 3, 28))
    clock.now = utc(2026, 3, 29, 1, 30)
    at = timeliness.status("camhs")
    assert at.last_deadline == utc(2026, 3, 29, 1, 30)
    assert (at.last_deadline.hour, at.last_deadline.minute) == (2, 30)
    assert at.due_period == (date(2026, 2, 1), date(2026, 2, 28))
    assert at.lateness_seconds == 0.0
    timeliness.observe("camhs", utc(2026, 3, 29, 1, 45))
    assert timeliness.status("camhs").lateness_seconds == 15 * 60


def test_a_deadline_in_the_repeated_hour_is_the_first_one() -> None:
    # 01:30 on 25 October 2026 happens twice in London; the deadline is the first,
    # 01:30 BST (00:30 UTC). Compare in UTC: an ambiguous local time never compares
    # equal to another zone's (PEP 495).
    agreement = with_deadline("camhs", "30 1 25 * *")
    timeliness, clock = tracker(utc(2026, 10, 25, 1, 15), agreement)
    # 01:15 GMT: the wall clock reads before 01:30 again, but the deadline has passed.
    status = timeliness.status("camhs")
    assert status.last_deadline.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert status.last_deadline.utcoffset() == timedelta(hours=1)
    assert status.next_deadline == utc(2026, 11, 25, 1, 30)
    assert status.due_period == (date(2026, 9, 1), date(2026, 9, 30))
    assert status.lateness_seconds == 45 * 60
    # A message at 01:00 GMT, on the wall before 01:30, is half an hour late.
    timeliness.observe("camhs", utc(2026, 10, 25, 1))
    clock.now = utc(2026, 10, 25, 1, 45)  # past the second 01:30: no second deadline
    later = timeliness.status("camhs")
    assert later.last_deadline.astimezone(UTC) == utc(2026, 10, 25, 0, 30)
    assert (later.on_time, later.lateness_seconds) == (False, 1800)


def cron_instants(cron: str, first: datetime, last: datetime) -> list[datetime]:
    """Every instant `cron` names between two London wall times, read as next_local reads them."""
    walker, instants = croniter(cron, first), []
    while (wall := walker.get_next(datetime)) < last:
        instants.append(wall.replace(tzinfo=LONDON).astimezone(UTC))
    return sorted(instants)


@pytest.mark.parametrize(
    "cron", ["30 1 * * *", "0,30 1,2 * * *", "10,30 1,2 * * *", "0 17 5 * *", "59 0 1 * *"]
)
def test_previous_and_following_deadlines_around_both_clock_changes(cron: str) -> None:
    instants = cron_instants(cron, datetime(2025, 12, 1), datetime(2026, 12, 31))
    for start in (utc(2026, 3, 28, 12), utc(2026, 10, 24, 12)):
        for step in range(0, 36 * 60, 10):
            at = start + timedelta(minutes=step)
            expected_previous = instants[bisect_right(instants, at) - 1]
            expected_following = instants[bisect_right(instants, at)]
            assert previous_local(cron, LONDON, at).astimezone(UTC) == expected_previous, at
            assert following_local(cron, LONDON, at).astimezone(UTC) == expected_following, at


def test_following_local_agrees_with_next_local() -> None:
    for cron in ("0 17 5 * *", "30 1 * * *", "0 9 * * 1"):
        at = utc(2026, 1, 1)
        for _ in range(60):
            expected = next_local(cron, LONDON, at)
            assert following_local(cron, LONDON, at).astimezone(UTC) == expected.astimezone(UTC)
            at = expected


# -- the Prometheus collector --


def test_collector_samples() -> None:
    timeliness, _ = tracker(utc(2026, 2, 10))
    timeliness.observe("camhs", utc(2026, 2, 2, 9))
    timeliness.observe("police", utc(2026, 2, 6, 17))
    timeliness.observe("not-a-partner", utc(2026, 2, 2, 9))
    registry = CollectorRegistry()
    registry.register(TimelinessCollector(timeliness))

    def sample(name: str, agency: str) -> float | None:
        return registry.get_sample_value(f"hub_agency_{name}", {"agency": agency})

    deadline, upcoming = utc(2026, 2, 5, 17).timestamp(), utc(2026, 3, 5, 17).timestamp()
    assert sample("last_submission_timestamp_seconds", "camhs") == utc(2026, 2, 2, 9).timestamp()
    assert sample("last_submission_timestamp_seconds", "spa") is None
    assert sample("deadline_timestamp_seconds", "camhs") == deadline
    assert sample("next_deadline_timestamp_seconds", "camhs") == upcoming
    assert sample("lateness_seconds", "camhs") == 0
    assert sample("submitted_for_period", "camhs") == 1
    assert sample("lateness_seconds", "police") == 86400
    assert sample("submitted_for_period", "police") == 1
    assert sample("lateness_seconds", "spa") == utc(2026, 2, 10).timestamp() - deadline
    assert sample("submitted_for_period", "spa") == 0
    assert sample("deadline_timestamp_seconds", "counselling") == utc(2026, 2, 3, 17).timestamp()
    for family in ("deadline_timestamp_seconds", "lateness_seconds", "submitted_for_period"):
        assert sample(family, "not-a-partner") is None
    text = generate_latest(registry).decode()
    assert text.count("hub_agency_deadline_timestamp_seconds{") == len(example().partners)
    assert 'agency="not-a-partner"' not in text
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(TimelinessCollector(timeliness))
