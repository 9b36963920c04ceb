"""The published trends as Prometheus gauges, read from the trends topic.

Bounded labels: publication names, measures, dimensions and their values come
from the agreement and the taxonomy; never a pseudonym.

* ``hub_trend_published{publication,measure,dimension,value}``: the latest
  released period's published count (absent when suppressed);
* ``hub_trend_suppressed{...}``: 1 for each suppressed cell of that period, and
  only for those (a published cell has no ``_suppressed`` series, so a release
  of thousands of cells does not add thousands of zeros);
* ``hub_trend_history_published{publication,period,measure,dimension,value}`` and
  ``hub_trend_history_suppressed{...}``: the same for every released period
  of the last ``HUB_HISTORY_MONTHS`` (``period`` is ``2026-10`` or
  ``2026Q3``), each at its latest revision and only that revision's cells
  (``hub.trends``): the trend history the board's panels draw, there as soon
  as the service has read the trends topic;
* ``hub_trend_period_start_timestamp_seconds{publication}`` and
  ``hub_trend_revision{publication}`` for that period;
* ``hub_last_publication_timestamp_seconds{publication}``,
  ``hub_next_publication_timestamp_seconds{publication}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.agreement.model import Agreement
from hub.periods import add_months, period_label, period_starting
from streams.publish.publisher import TrendsLog


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


class TrendsCollector(Collector):
    """The trends topic as Prometheus gauges: per publication, its latest period."""

    def __init__(
        self,
        trends: TrendsLog,
        agreement: Agreement,
        now: Callable[[], datetime],
        history_months: int = 24,
    ) -> None:
        self.trends = trends
        self.agreement = agreement
        self.now = now
        self.history_months = history_months

    def collect(self) -> Iterator[Metric]:
        labels = ["publication", "measure", "dimension", "value"]
        count = GaugeMetricFamily(
            "hub_trend_published",
            "Published count of the latest released period, after disclosure control"
            " (absent when suppressed).",
            labels=labels,
        )
        suppressed = GaugeMetricFamily(
            "hub_trend_suppressed",
            "1 for each suppressed cell of the latest released period (withheld, not zero);"
            " absent for a published cell.",
            labels=labels,
        )
        start = GaugeMetricFamily(
            "hub_trend_period_start_timestamp_seconds",
            "Start (00:00 UTC) of the latest released period.",
            labels=["publication"],
        )
        revision = GaugeMetricFamily(
            "hub_trend_revision",
            "Revision of the latest released period (0: first release).",
            labels=["publication"],
        )
        last = GaugeMetricFamily(
            "hub_last_publication_timestamp_seconds",
            "When the publication last released cells (any period, any revision).",
            labels=["publication"],
        )
        upcoming = GaugeMetricFamily(
            "hub_next_publication_timestamp_seconds",
            "The publication's next scheduled time.",
            labels=["publication"],
        )
        history_labels = ["publication", "period", "measure", "dimension", "value"]
        history = GaugeMetricFamily(
            "hub_trend_history_published",
            "Published count of every released period of the history window, latest"
            " revision (absent when suppressed).",
            labels=history_labels,
        )
        history_suppressed = GaugeMetricFamily(
            "hub_trend_history_suppressed",
            "1 for each suppressed cell of that period (withheld, not zero); absent for a"
            " published cell.",
            labels=history_labels,
        )
        periods = self.trends.copy().periods  # the latest revision of each period, whole
        now = self.now()
        for schedule in self.agreement.publication:
            name = schedule.name
            upcoming.add_metric([name], self.agreement.next_publication(name, now).timestamp())
            mine = {start: p for (pub, start), p in periods.items() if pub == name}
            if not mine:
                continue
            last.add_metric([name], max(p.published_at for p in mine.values()).timestamp())
            latest_start = max(mine)
            latest = mine[latest_start]
            start.add_metric([name], _midnight(latest_start))
            revision.add_metric([name], latest.revision)
            oldest = add_months(latest_start, -self.history_months)
            for period_start in sorted(mine):
                if period_start < oldest:
                    continue
                label = period_label(
                    schedule.closes, period_starting(schedule.closes, period_start)
                )
                latest_cell = period_start == latest_start
                for snapshot in mine[period_start].snapshots.values():
                    cell = [name, snapshot["measure"], snapshot["dimension"], snapshot["value"]]
                    if snapshot["suppressed"]:
                        history_suppressed.add_metric([name, label, *cell[1:]], 1)
                        if latest_cell:
                            suppressed.add_metric(cell, 1)
                    if snapshot["count"] is not None:
                        history.add_metric([name, label, *cell[1:]], snapshot["count"])
                        if latest_cell:
                            count.add_metric(cell, snapshot["count"])
        yield from (count, suppressed, history, history_suppressed)
        yield from (start, revision, last, upcoming)
