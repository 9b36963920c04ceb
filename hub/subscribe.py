"""What analysts read: the published trend cells from ``partnership.trends.v1``.

``hub subscribe`` and the small Python API below read the trends topic (never
a case topic), keep the latest revision of every period, whole
(``hub.trends``: a cell an earlier revision had and the latest one dropped is
gone), and give rows an analyst can load anywhere::

    from hub.settings import HubSettings
    from hub.subscribe import published_rows

    rows = published_rows(HubSettings(), since="2026-01")
    # [{'publication': 'monthly', 'period_start': '2026-01-01', 'period_end': ...,
    #   'measure': 'events', 'dimension': 'risk_code', 'value': 'GROOMING',
    #   'count': 35, 'suppressed': False, 'revision': 0, 'published_at': ...}, ...]

A suppressed cell has ``count`` None (empty in CSV) and ``suppressed`` True:
it is withheld, not zero. With ``--follow``, rows of a period's new revision
replace every row printed before for that period.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any, TextIO

from hub.codec import Codec
from hub.errors import ConfigError, HubError
from hub.kafka.client import TopicReader
from hub.kafka.security import principal
from hub.periods import parse_period
from hub.settings import HubSettings
from hub.trends import Published, latest

COLUMNS = (
    "publication",
    "period_start",
    "period_end",
    "measure",
    "dimension",
    "value",
    "count",
    "suppressed",
    "revision",
    "published_at",
)


def parse_since(text: str | None) -> date | None:
    """'2026-01' or '2026Q1' or '2026-01-15' -> the first day it names."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        pass
    try:
        return parse_period(text)[1][0]
    except ConfigError:
        raise ConfigError(
            f"--from {text!r} is not a month (2026-01), a quarter (2026Q1) or a date"
        ) from None


def _row(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    row = {name: snapshot[name] for name in COLUMNS}
    row["period_start"] = snapshot["period_start"].isoformat()
    row["period_end"] = snapshot["period_end"].isoformat()
    row["published_at"] = snapshot["published_at"].isoformat()
    return row


def _rows(cells: Iterable[Mapping[str, Any]], first: date | None) -> list[dict[str, Any]]:
    rows = [_row(s) for s in cells if first is None or s["period_start"] >= first]
    return sorted(
        rows,
        key=lambda r: (
            r["publication"],
            r["period_start"],
            r["measure"],
            r["dimension"],
            r["value"],
        ),
    )


def rows_from(
    snapshots: Iterable[Mapping[str, Any]], first: date | None = None
) -> list[dict[str, Any]]:
    """The rows for these trend snapshots: the cells of every period's latest revision
    (``hub.trends``), periods from `first` on, sorted. What `published_rows` gives."""
    return _rows(latest(snapshots), first)


class TrendReader:
    """Reads the trends topic from the beginning, folded into ``published`` (the
    latest revision of every period, whole); `follow` keeps reading."""

    def __init__(self, settings: HubSettings, topic: str | None = None) -> None:
        self.topic = topic or settings.trends_topic
        self.codec = Codec("trend_snapshot")
        self.published = Published()
        self._reader = TopicReader(
            settings,
            self.topic,
            "hub-subscribe",
            HubError(
                f"no topic {self.topic}: nothing has been published on this hub yet, or"
                " HUB_TOPIC_NAMESPACE / the topic name is wrong"
            ),
            HubError(
                f"{principal(settings)} may not read {self.topic}: the agreement's readers"
                " section must list it for this principal, and an operator must run"
                " `hub security acls --apply`"
            ),
            isolation_level="read_committed",  # a release is seen whole or not at all
        )

    def _decoded(self, messages: Iterable[Any]) -> Iterator[dict[str, Any]]:
        for message in messages:
            if message.value is not None:
                yield self.codec.decode(message.value)

    def latest(self) -> list[dict[str, Any]]:
        """The cells of every period's latest revision, as published so far."""
        self.published.update(self._decoded(self._reader.read_to_end()))
        return self.published.snapshots()

    def follow(self) -> Iterator[dict[str, Any]]:
        """New publications as they arrive (after `latest`), until interrupted; a
        snapshot of a revision older than one already read is skipped."""
        while True:
            for snapshot in self._decoded(self._reader.poll(1000)):
                if self.published.add(snapshot):
                    yield snapshot

    def close(self) -> None:
        self._reader.close()


def published_rows(
    settings: HubSettings, since: str | date | None = None, topic: str | None = None
) -> list[dict[str, Any]]:
    """The cells of every period's latest revision, periods from `since` on, sorted."""
    first = parse_since(since) if isinstance(since, str) else since
    reader = TrendReader(settings, topic)
    try:
        cells = reader.latest()
    finally:
        reader.close()
    return _rows(cells, first)


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, out: TextIO, header: bool) -> None:
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        if header:
            writer.writeheader()
        for row in rows:
            writer.writerow({**row, "count": "" if row["count"] is None else row["count"]})
    else:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    out.flush()


def subscribe(
    settings: HubSettings,
    topic: str | None,
    since: str | None,
    fmt: str,
    follow: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Print the published cells; with `follow`, keep printing new ones. Rows printed."""
    first = parse_since(since)
    reader = TrendReader(settings, topic)
    printed = 0
    try:
        rows = _rows(reader.latest(), first)
        write_rows(rows, fmt, out, header=True)
        printed = len(rows)
        if follow:
            for snapshot in reader.follow():
                if first is None or snapshot["period_start"] >= first:
                    write_rows([_row(snapshot)], fmt, out, header=False)
                    printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return printed
