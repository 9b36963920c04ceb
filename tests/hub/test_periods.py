"""Periods (``hub.periods``): parsing, labels, month and quarter arithmetic, and the history
a publisher releases on its first start."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from hub.agreement.model import load_agreement
from hub.errors import ConfigError
from hub.periods import (
    add_months,
    history_periods,
    months_in,
    parse_period,
    period_before,
    period_containing,
    period_label,
    period_start,
    period_starting,
    quarter_of,
)
from hub.resources import deploy


def starts(periods: set[tuple[date, date]]) -> list[str]:
    return sorted(p[0].isoformat() for p in periods)


def test_parse_and_label_round_trip() -> None:
    for text in ("2026-01", "2026-12", "2026Q1", "2026Q4"):
        kind, period = parse_period(text)
        assert period_label(kind, period) == text
    assert parse_period("2026Q3") == ("quarter", (date(2026, 7, 1), date(2026, 9, 30)))
    assert parse_period("2024-02") == ("month", (date(2024, 2, 1), date(2024, 2, 29)))
    for bad in ("2026Q5", "2026-13", "October", "2026"):
        with pytest.raises(ConfigError, match="is not a month"):
            parse_period(bad)


def test_add_months_crosses_years() -> None:
    assert add_months(date(2026, 10, 1), -24) == date(2024, 10, 1)
    assert add_months(date(2026, 1, 15), -1) == date(2025, 12, 1)
    assert add_months(date(2026, 3, 1), 0) == date(2026, 3, 1)
    assert add_months(date(2026, 11, 1), 2) == date(2027, 1, 1)


def test_history_goes_back_to_the_first_record() -> None:
    october = parse_period("2026-10")[1]
    assert starts(history_periods("month", october, date(2026, 7, 15), 24)) == [
        "2026-07-01",
        "2026-08-01",
        "2026-09-01",
        "2026-10-01",
    ]
    q3 = parse_period("2026Q3")[1]
    # A quarter holding the first record's day is part of the history.
    assert starts(history_periods("quarter", q3, date(2026, 6, 30), 24)) == [
        "2026-04-01",
        "2026-07-01",
    ]
    assert starts(history_periods("quarter", q3, date(2026, 7, 1), 24)) == ["2026-07-01"]


def test_history_is_bounded_by_the_window_and_needs_records() -> None:
    october = parse_period("2026-10")[1]
    months = history_periods("month", october, date(2019, 1, 1), 24)
    assert len(months) == 25 and min(starts(months)) == "2024-10-01"
    assert starts(history_periods("month", october, date(2019, 1, 1), 0)) == ["2026-10-01"]
    # No records at all, or none before the closed period: only the closed period.
    assert starts(history_periods("month", october, None, 24)) == ["2026-10-01"]
    assert starts(history_periods("month", october, date(2026, 11, 3), 24)) == ["2026-10-01"]
    q3 = parse_period("2026Q3")[1]
    quarters = history_periods("quarter", q3, date(2019, 1, 1), 24)
    assert starts(quarters)[0] == "2024-07-01" and len(quarters) == 9


def test_periods_start_end_and_step_across_years() -> None:
    assert (months_in("month"), months_in("quarter")) == (1, 3)
    assert period_starting("month", date(2025, 12, 1)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert period_starting("month", date(2024, 2, 1)) == (date(2024, 2, 1), date(2024, 2, 29))
    assert period_starting("month", date(2026, 2, 1)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert period_starting("quarter", date(2025, 10, 1)) == (date(2025, 10, 1), date(2025, 12, 31))
    assert period_starting("quarter", date(2026, 1, 1)) == (date(2026, 1, 1), date(2026, 3, 31))
    assert [quarter_of(date(2026, m, 1)) for m in range(1, 13)] == [
        *[1] * 3,
        *[2] * 3,
        *[3] * 3,
        *[4] * 3,
    ]
    assert period_start("quarter", date(2026, 9, 30)) == date(2026, 7, 1)
    assert period_start("month", date(2026, 9, 30)) == date(2026, 9, 1)
    assert period_containing("quarter", date(2026, 11, 5)) == parse_period("2026Q4")[1]
    assert period_containing("month", date(2026, 11, 5)) == parse_period("2026-11")[1]
    assert period_before("quarter", parse_period("2026Q1")[1]) == parse_period("2025Q4")[1]
    assert period_before("month", parse_period("2026-01")[1]) == parse_period("2025-12")[1]
    assert period_before("month", parse_period("2024-03")[1]) == parse_period("2024-02")[1]


def test_every_day_lies_in_one_period_of_each_kind() -> None:
    day = date(2023, 1, 1)
    while day < date(2027, 1, 1):
        for kind in ("month", "quarter"):
            start, end = period_containing(kind, day)
            assert start <= day <= end
            assert start == period_start(kind, day) and start.day == 1
            assert add_months(start, months_in(kind)) == date.fromordinal(end.toordinal() + 1)
            assert parse_period(period_label(kind, (start, end))) == (kind, (start, end))
        day = date.fromordinal(day.toordinal() + 1)


def test_a_publication_closes_the_period_before_its_scheduled_time() -> None:
    agreement = load_agreement(deploy("agreement", "example.yaml"))
    london = ZoneInfo("Europe/London")
    monthly, quarterly = "monthly", "board-quarterly"
    at = datetime(2026, 1, 10, 9, tzinfo=london)
    assert agreement.closed_period(monthly, at) == parse_period("2025-12")[1]
    assert agreement.closed_period(quarterly, at) == parse_period("2025Q4")[1]
    at = datetime(2024, 3, 10, 9, tzinfo=london)
    assert agreement.closed_period(monthly, at) == parse_period("2024-02")[1]
    assert agreement.closed_period(quarterly, at) == parse_period("2023Q4")[1]
    at = datetime(2026, 7, 15, 9, tzinfo=london)
    assert agreement.closed_period(quarterly, at) == parse_period("2026Q2")[1]
    # Local time decides: 00:30 on 1 October in London is still 30 September in UTC.
    at = datetime(2026, 9, 30, 23, 30, tzinfo=UTC)
    assert agreement.closed_period(monthly, at) == parse_period("2026-09")[1]
    assert agreement.closed_period(quarterly, at) == parse_period("2026Q3")[1]
