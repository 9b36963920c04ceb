"""The trends exporter (``TrendsCollector``) on a fixed clock, without Kafka.

The collector reads a real ``TrendsLog`` whose topic reader is replaced by one that
hands back encoded trend snapshots, so the log decodes and folds them as it does
the trends topic.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hub.agreement.model import Agreement, load_agreement
from hub.resources import deploy
from streams.publish.exporter import TrendsCollector
from streams.publish.publisher import TrendsLog
from tests.support.promtool import check_metrics
from tests.support.trends import OCT, RELEASES, REVISED, offline_trends_log, snapshot

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return load_agreement(deploy("agreement", "example.yaml"))


def collect(trends: TrendsLog, agreement: Agreement, history_months: int = 24) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(TrendsCollector(trends, agreement, lambda: NOW, history_months))
    return registry


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, ...], float]:
    """The samples of one gauge: label values (in label order) -> value."""
    return {
        tuple(sample.labels.values()): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def latest_cells(registry: CollectorRegistry) -> set[tuple[str, ...]]:
    """The latest period's cells, published or suppressed, from one scrape."""
    cells: set[tuple[str, ...]] = set()
    for family in registry.collect():
        if family.name in ("hub_trend_published", "hub_trend_suppressed"):
            cells |= {tuple(sample.labels.values()) for sample in family.samples}
    return cells


def test_the_latest_period_at_its_latest_revision(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    registry = collect(offline_trends_log(monkeypatch, RELEASES), agreement)
    assert samples(registry, "hub_trend_published") == {
        ("monthly", "events", "total", "all"): 105,
        ("monthly", "events", "risk_code", "GROOMING"): 45,
    }  # CYBERBULLYING is suppressed (absent, not 0); SEXTORTION left with revision 0
    assert samples(registry, "hub_trend_suppressed") == {
        ("monthly", "events", "risk_code", "CYBERBULLYING"): 1,
    }  # only the suppressed cell: a published one has no _suppressed series
    assert samples(registry, "hub_trend_revision") == {("monthly",): 1}
    assert samples(registry, "hub_trend_period_start_timestamp_seconds") == {
        ("monthly",): datetime(2026, 10, 1, tzinfo=UTC).timestamp()
    }
    assert samples(registry, "hub_last_publication_timestamp_seconds") == {
        ("monthly",): REVISED.timestamp()
    }


def test_the_history_is_labelled_by_period(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    registry = collect(offline_trends_log(monkeypatch, RELEASES), agreement)
    assert samples(registry, "hub_trend_history_published") == {
        ("monthly", "2026-09", "events", "total", "all"): 90,
        ("monthly", "2026-09", "events", "risk_code", "GROOMING"): 30,
        ("monthly", "2026-10", "events", "total", "all"): 105,
        ("monthly", "2026-10", "events", "risk_code", "GROOMING"): 45,
    }
    assert samples(registry, "hub_trend_history_suppressed") == {
        ("monthly", "2026-09", "events", "risk_code", "CYBERBULLYING"): 1,
        ("monthly", "2026-10", "events", "risk_code", "CYBERBULLYING"): 1,
    }


def test_the_exposition_passes_promtool(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    """What the publisher serves for these gauges, through `promtool check metrics`."""
    registry = collect(offline_trends_log(monkeypatch, RELEASES), agreement)
    text = generate_latest(registry).decode()
    assert "hub_trend_history_suppressed{" in text and "hub_trend_published{" in text
    check_metrics(text)


def test_the_history_window_counts_back_from_the_latest_period(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    august = snapshot(date(2026, 8, 1), "all", 80, dimension="total")
    trends = offline_trends_log(monkeypatch, [august, *RELEASES])
    periods = {
        labels[1]
        for labels in samples(collect(trends, agreement, 1), "hub_trend_history_published")
    }
    assert periods == {"2026-09", "2026-10"}
    periods = {
        labels[1]
        for labels in samples(collect(trends, agreement, 2), "hub_trend_history_published")
    }
    assert periods == {"2026-08", "2026-09", "2026-10"}


def test_quarters_are_labelled_and_every_publication_has_its_next_time(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    q3 = snapshot(date(2026, 7, 1), "all", 300, dimension="total", publication="board-quarterly")
    registry = collect(offline_trends_log(monkeypatch, [q3]), agreement)
    assert samples(registry, "hub_trend_history_published") == {
        ("board-quarterly", "2026Q3", "events", "total", "all"): 300
    }
    assert samples(registry, "hub_trend_revision") == {("board-quarterly",): 0}
    # At NOW (20 November 2026): 10 December and 15 January, 09:00 in London (GMT).
    assert samples(registry, "hub_next_publication_timestamp_seconds") == {
        ("monthly",): datetime(2026, 12, 10, 9, tzinfo=UTC).timestamp(),
        ("board-quarterly",): datetime(2027, 1, 15, 9, tzinfo=UTC).timestamp(),
    }


def test_nothing_published_yet_gives_only_the_timetable(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    registry = collect(offline_trends_log(monkeypatch, []), agreement)
    assert samples(registry, "hub_trend_published") == {}
    assert samples(registry, "hub_trend_revision") == {}
    assert set(samples(registry, "hub_next_publication_timestamp_seconds")) == {
        ("monthly",),
        ("board-quarterly",),
    }


def test_a_scrape_while_snapshots_are_added_sees_whole_periods(
    monkeypatch: pytest.MonkeyPatch, agreement: Agreement
) -> None:
    trends = offline_trends_log(monkeypatch, RELEASES)
    registry = collect(trends, agreement)
    done = threading.Event()

    def add() -> None:
        try:
            for i in range(3000):
                trends.add(snapshot(OCT, f"CODE_{i}", 10, revision=1).to_avro())
        finally:
            done.set()

    adder = threading.Thread(target=add)
    adder.start()
    try:
        while not done.is_set():
            cells = latest_cells(registry)
            assert ("monthly", "events", "risk_code", "SEXTORTION") not in cells
    finally:
        adder.join()
    assert len(latest_cells(registry)) == 3 + 3000
