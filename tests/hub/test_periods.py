"""Periods: parsing, labels, and the history a publisher releases on its first start."""

from __future__ import annotations

from datetime import date

import pytest

from hub.errors import ConfigError
from streams.publish.publisher import add_months, history_periods, parse_period, period_label


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
