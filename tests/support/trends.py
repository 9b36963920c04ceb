"""Trend snapshots as the publisher writes them, and a real ``TrendsLog`` that has read
a given list of them, without Kafka.

The log's topic reader is replaced by one that hands back the encoded snapshots,
so the log decodes and folds them as it does the trends topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hub.codec import Codec
from hub.models import TrendSnapshot
from hub.periods import period_starting
from hub.settings import HubSettings
from streams.publish import publisher
from streams.publish.publisher import TrendsLog

SEP, OCT = date(2026, 9, 1), date(2026, 10, 1)
RELEASED = datetime(2026, 10, 10, 8, 0, tzinfo=UTC)  # 09:00 in London (BST)
REVISED = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # 09:00 in London (GMT)


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes | None


class OfflineReader:
    """Stands in for ``hub.kafka.client.TopicReader``: `pending`, then nothing new."""

    def __init__(self, pending: list[Message]) -> None:
        self.pending = pending

    def read_to_end(self) -> Iterator[Message]:
        messages, self.pending = self.pending, []
        return iter(messages)

    def close(self) -> None:
        pass


def snapshot(
    start: date,
    value: str,
    count: int | None,
    revision: int = 0,
    published_at: datetime = RELEASED,
    measure: str = "events",
    dimension: str = "risk_code",
    publication: str = "monthly",
) -> TrendSnapshot:
    kind = "quarter" if publication == "board-quarterly" else "month"
    return TrendSnapshot(
        partnership="example",
        publication=publication,
        period_start=start,
        period_end=period_starting(kind, start)[1],
        measure=measure,
        dimension=dimension,
        value=value,
        count=count,
        suppressed=count is None,
        revision=revision,
        published_at=published_at,
    )


def message(s: TrendSnapshot) -> Message:
    key = f"{s.publication}|{s.period_start}|{s.measure}|{s.dimension}|{s.value}".encode()
    return Message(key, Codec("trend_snapshot").encode(s.to_avro()))


def offline_trends_log(
    monkeypatch: pytest.MonkeyPatch, snapshots: list[TrendSnapshot]
) -> TrendsLog:
    """A real TrendsLog that has read `snapshots` (in this order) from its topic."""
    pending = [message(s) for s in snapshots]

    def reader(*args: Any, **config: Any) -> OfflineReader:
        return OfflineReader(pending)

    monkeypatch.setattr(publisher, "TopicReader", reader)
    trends = TrendsLog(HubSettings())
    trends.catch_up()
    return trends


#: September once; October twice: revision 1 changes two counts and drops SEXTORTION.
RELEASES = [
    snapshot(SEP, "all", 90, measure="events", dimension="total"),
    snapshot(SEP, "GROOMING", 30),
    snapshot(SEP, "CYBERBULLYING", None),
    snapshot(OCT, "all", 100, dimension="total"),
    snapshot(OCT, "GROOMING", 40),
    snapshot(OCT, "SEXTORTION", 10),
    snapshot(OCT, "CYBERBULLYING", None),
    snapshot(OCT, "all", 105, revision=1, published_at=REVISED, dimension="total"),
    snapshot(OCT, "GROOMING", 45, revision=1, published_at=REVISED),
    snapshot(OCT, "CYBERBULLYING", None, revision=1, published_at=REVISED),
]


def monthly_snapshot(
    period: date, value: str, count: int | None, revision: int = 0, measure: str = "events"
) -> TrendSnapshot:
    """A monthly risk-code snapshot, published on 10 November 2026 at 09:00 UTC."""
    return TrendSnapshot(
        partnership="example",
        publication="monthly",
        period_start=period,
        period_end=period_starting("month", period)[1],
        measure=measure,
        dimension="risk_code",
        value=value,
        count=count,
        suppressed=count is None,
        revision=revision,
        published_at=datetime(2026, 11, 10, 9, tzinfo=UTC),
    )
