"""The plausibility bounds the worker applies to every decoded case event."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from adapters.versions import clock_version as adapter_clock_version
from streams.checks import EARLIEST, clock_version, implausible

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def record(**changes: Any) -> dict[str, Any]:
    return {
        "occurred_on": date(2026, 11, 1),
        "reported_at": datetime(2026, 11, 2, tzinfo=UTC),
        "record_version": 1,
        **changes,
    }


def test_the_version_clock_is_the_adapters() -> None:
    for now in (NOW, datetime(2020, 1, 1, tzinfo=UTC), datetime(2087, 6, 1, tzinfo=UTC)):
        assert clock_version(now) == adapter_clock_version(now.timestamp())


def test_plausible_records_pass() -> None:
    assert implausible(record(), NOW) is None
    assert implausible(record(occurred_on=EARLIEST, record_version=0), NOW) is None
    tomorrow = NOW + timedelta(days=1)
    assert implausible(record(occurred_on=tomorrow.date(), reported_at=tomorrow), NOW) is None
    assert implausible(record(record_version=clock_version(NOW)), NOW) is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"occurred_on": date(1989, 12, 31)}, "occurred_on"),
        ({"occurred_on": date(9999, 12, 31)}, "occurred_on"),
        ({"occurred_on": (NOW + timedelta(days=3)).date()}, "occurred_on"),
        ({"reported_at": datetime(1989, 12, 31, tzinfo=UTC)}, "reported_at"),
        ({"reported_at": NOW + timedelta(days=3)}, "reported_at"),
        ({"reported_at": datetime(9999, 1, 1)}, "reported_at"),
        ({"record_version": 2**31 - 1}, "record_version"),
        ({"record_version": clock_version(NOW + timedelta(days=2))}, "record_version"),
        ({"record_version": -1}, "record_version"),
        ({"record_version": None}, "record_version"),
    ],
)
def test_implausible_values_are_named(changes: dict[str, Any], field: str) -> None:
    assert implausible(record(**changes), NOW) == field
