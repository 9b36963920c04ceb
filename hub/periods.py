"""Publication periods: calendar months and quarters, and the arithmetic on them.

A period is a pair of dates, its first and last day, both included
(``Period``). Its kind is ``"month"`` or ``"quarter"`` (a schedule's
``closes``); a quarter starts in January, April, July or October. Its label is
``2026-10`` for a month and ``2026Q3`` for a quarter, as operators type it
(``parse_period``) and as the board pack and the metrics show it
(``period_label``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import date, timedelta

from hub.errors import ConfigError

Period = tuple[date, date]

#: How many calendar months a period of each kind spans.
MONTHS = {"month": 1, "quarter": 3}


def months_in(kind: str) -> int:
    """1 for a month, 3 for a quarter."""
    return MONTHS[kind]


def add_months(start: date, months: int) -> date:
    """The first of the month `months` after `start`'s month (before it when negative)."""
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def quarter_of(day: date) -> int:
    """The calendar quarter (1..4) holding `day`."""
    return (day.month - 1) // 3 + 1


def period_start(kind: str, day: date) -> date:
    """The first day of the month or quarter holding `day`."""
    month = 3 * quarter_of(day) - 2 if kind == "quarter" else day.month
    return date(day.year, month, 1)


def period_starting(kind: str, start: date) -> Period:
    """The month or quarter that begins on `start`, inclusive."""
    end = add_months(start, months_in(kind))
    return start, end - timedelta(days=1)


def period_containing(kind: str, day: date) -> Period:
    """The month or quarter holding `day`."""
    return period_starting(kind, period_start(kind, day))


def period_before(kind: str, period: Period) -> Period:
    """The month or quarter just before `period`."""
    return period_starting(kind, add_months(period[0], -months_in(kind)))


def parse_period(text: str) -> tuple[str, Period]:
    """'2026-10' -> ('month', (2026-10-01, 2026-10-31)); '2026Q3' -> ('quarter', ...)."""
    text = text.strip().upper()
    try:
        if "Q" in text:
            year_text, quarter_text = text.split("Q")
            year, quarter = int(year_text.rstrip("-")), int(quarter_text)
            if not 1 <= quarter <= 4:
                raise ValueError
            start = date(year, 3 * quarter - 2, 1)
            kind = "quarter"
        else:
            year_text, month_text = text.split("-")
            start = date(int(year_text), int(month_text), 1)
            kind = "month"
    except ValueError:
        raise ConfigError(
            f"period {text!r} is not a month (2026-10) or a quarter (2026Q3)"
        ) from None
    return kind, period_starting(kind, start)


def period_label(kind: str, period: Period) -> str:
    """'2026-10' for a month, '2026Q3' for a quarter (from the period's first day)."""
    start = period[0]
    if kind == "quarter":
        return f"{start.year}Q{quarter_of(start)}"
    return f"{start.year}-{start.month:02d}"


def history_periods(kind: str, closed: Period, first: date | None, months: int) -> set[Period]:
    """`closed` and the periods before it back to the one holding `first` (the
    earliest record), none starting more than `months` months before `closed`."""
    oldest = add_months(closed[0], -months)
    periods = {closed}
    period = closed
    while first is not None:
        period = period_before(kind, period)
        if period[1] < first or period[0] < oldest:
            break
        periods.add(period)
    return periods
