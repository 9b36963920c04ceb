"""`hub streams publisher`: the timetable as a service, and the published trends as metrics.

The service sleeps until the next scheduled time of any publication in the
agreement, then runs ``Publisher.run_due`` for that moment. On start it
releases any closed period whose scheduled time has passed but which is not
on the trends topic yet (the service was down at 09:00); revisions of
periods already released wait for a scheduled time.

Metrics (bounded labels: publication names, measures, dimensions and their
values come from the agreement and the taxonomy; never a pseudonym):

* ``hub_trend_count{publication,measure,dimension,value}``: the latest
  released period's published count (absent when suppressed);
* ``hub_trend_suppressed{...}``: 1 when that cell is suppressed;
* ``hub_trend_history_count{publication,period,measure,dimension,value}`` and
  ``hub_trend_history_suppressed{...}``: the same for every released period
  of the last ``HUB_HISTORY_MONTHS`` (``period`` is ``2026-10`` or
  ``2026Q3``), each at its latest revision: the trend history the board's
  panels draw, there as soon as the service has read the trends topic;
* ``hub_trend_period_start_timestamp_seconds{publication}`` and
  ``hub_trend_revision{publication}`` for that period;
* ``hub_last_publication_timestamp_seconds{publication}``,
  ``hub_next_publication_timestamp_seconds{publication}``,
  ``hub_publication_runs_total{publication,outcome}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.agreement import Agreement
from hub.errors import HubError, PublishError
from hub.publish import (
    Publisher,
    Release,
    TrendsLog,
    add_months,
    period_label,
    period_starting,
)
from hub.settings import HubSettings

log = logging.getLogger(__name__)


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
            "hub_trend_count",
            "Published count of the latest released period, after disclosure control"
            " (absent when suppressed).",
            labels=labels,
        )
        suppressed = GaugeMetricFamily(
            "hub_trend_suppressed",
            "1 when the cell of the latest released period is suppressed (not zero: withheld).",
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
            "hub_trend_history_count",
            "Published count of every released period of the history window, latest"
            " revision (absent when suppressed).",
            labels=history_labels,
        )
        history_suppressed = GaugeMetricFamily(
            "hub_trend_history_suppressed",
            "1 when the cell of that period is suppressed (not zero: withheld).",
            labels=history_labels,
        )
        with self.trends.lock:
            periods = dict(self.trends.periods)
            snapshots = list(self.trends.snapshots.values())
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
            period_labels = {
                start: period_label(schedule.closes, period_starting(schedule.closes, start))
                for start in mine
            }
            for snapshot in snapshots:
                period_start = snapshot["period_start"]
                if snapshot["publication"] != name or period_start < oldest:
                    continue
                if snapshot["revision"] != mine[period_start].revision:
                    continue  # a cell the latest revision no longer has
                cell = [name, snapshot["measure"], snapshot["dimension"], snapshot["value"]]
                flag = 1 if snapshot["suppressed"] else 0
                label = period_labels[period_start]
                history_suppressed.add_metric([name, label, *cell[1:]], flag)
                if snapshot["count"] is not None:
                    history.add_metric([name, label, *cell[1:]], snapshot["count"])
                if period_start == latest_start:
                    suppressed.add_metric(cell, flag)
                    if snapshot["count"] is not None:
                        count.add_metric(cell, snapshot["count"])
        yield from (count, suppressed, history, history_suppressed)
        yield from (start, revision, last, upcoming)


class Scheduler:
    """Runs the publisher at every scheduled time until stopped."""

    def __init__(
        self,
        publisher: Publisher,
        registry: CollectorRegistry,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.publisher = publisher
        self.agreement = publisher.agreement
        self.now = now
        self.stop = threading.Event()
        self.collector = TrendsCollector(
            publisher.trends, self.agreement, now, publisher.settings.history_months
        )
        registry.register(self.collector)
        self.runs = Counter(
            "hub_publication_runs",
            "Scheduled runs of each publication: released (cells sent), unchanged, failed.",
            ["publication", "outcome"],
            registry=registry,
        )

    def next_time(self) -> datetime:
        now = self.now()
        return min(self.agreement.next_publication(s.name, now) for s in self.agreement.publication)

    def run_at(self, moment: datetime) -> list[Release]:
        try:
            releases = self.publisher.run_due(moment)
        except HubError as exc:
            log.error("publication at %s failed: %s", moment.isoformat(), exc)
            for schedule in self.agreement.publication:
                self.runs.labels(schedule.name, "failed").inc()
            return []
        for release in releases:
            outcome = "released" if release.changed else "unchanged"
            self.runs.labels(release.publication, outcome).inc()
            print(
                f"{release.publication} {release.period[0]}..{release.period[1]}:"
                f" revision {release.revision}, {release.cells} cells"
                f" ({release.suppressed} suppressed){'' if release.changed else ', unchanged'}",
                flush=True,
            )
        return releases

    def run(self) -> None:
        """Catch up on missed first releases, then follow the timetable until `stop`."""
        self.run_at(self.now())
        while not self.stop.is_set():
            moment = self.next_time()
            print(f"next publication at {moment.isoformat()}", flush=True)
            while not self.stop.is_set():
                remaining = (moment - self.now()).total_seconds()
                if remaining <= 0:
                    break
                self.stop.wait(min(remaining, 60.0))
            if not self.stop.is_set():
                self.run_at(moment)


def _connect(settings: HubSettings, agreement: Agreement) -> Publisher:
    """The publisher, once a stream worker has created its changelog (waits until then)."""
    said = 0.0
    while True:
        try:
            return Publisher(settings, agreement)
        except PublishError as exc:
            if "does not exist" not in str(exc):
                raise
            if time.monotonic() - said > 30:
                print(f"waiting: {exc}", flush=True)
                said = time.monotonic()
            time.sleep(2)


def run_publisher(settings: HubSettings, agreement: Agreement) -> None:
    registry = CollectorRegistry()
    publisher = _connect(settings, agreement)
    try:
        scheduler = Scheduler(publisher, registry)
        try:
            start_http_server(settings.publisher_metrics_port, settings.metrics_host, registry)
        except OSError as exc:
            raise HubError(
                f"cannot serve metrics on {settings.metrics_host}:"
                f"{settings.publisher_metrics_port} ({exc}); choose another port with"
                " HUB_PUBLISHER_METRICS_PORT"
            ) from exc
        print(
            f"publisher metrics on http://{settings.metrics_host}:"
            f"{settings.publisher_metrics_port}/metrics",
            flush=True,
        )
        try:
            scheduler.run()
        except KeyboardInterrupt:
            scheduler.stop.set()
    finally:
        publisher.close()
