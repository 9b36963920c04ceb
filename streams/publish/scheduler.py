"""The timetable as a loop: `Publisher.run_due` at every scheduled time until stopped.

On start it releases any closed period whose scheduled time has passed but
which is not on the trends topic yet (the service was down at 09:00);
revisions of periods already released wait for a scheduled time. Each run is
counted in ``hub_publication_runs_total{publication,outcome}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter

from hub.errors import HubError
from streams.publish.exporter import TrendsCollector
from streams.publish.publisher import Publisher, Release
from streams.publish.requests import Request, RequestQueue

log = logging.getLogger(__name__)

#: The outcomes of a scheduled run, the ``outcome`` label of hub_publication_runs_total.
OUTCOMES = ("released", "unchanged", "failed")


class Scheduler:
    """Runs the publisher at every scheduled time until stopped."""

    def __init__(
        self,
        publisher: Publisher,
        registry: CollectorRegistry,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        requests: RequestQueue | None = None,
    ) -> None:
        self.publisher = publisher
        #: Forced releases asked by `hub publish --now`, served between scheduled times.
        self.requests = requests
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
        self.linked = Counter(
            "hub_publication_linked_suppressions",
            "Cells hidden only because, beside what the trends topic already holds (the"
            " months of a quarter, a period's earlier revisions), they would let a reader"
            " confine a hidden cell to the suppressed band.",
            ["publication"],
            registry=registry,
        )
        self.withheld = Counter(
            "hub_publication_withheld_breakdowns",
            "Breakdowns a release withheld whole for the same reason; the earlier"
            " revision's cells stay on the topic.",
            ["publication"],
            registry=registry,
        )
        # Every series exists at 0 from the start, so increase() sees the first failure.
        for schedule in self.agreement.publication:
            for outcome in OUTCOMES:
                self.runs.labels(schedule.name, outcome)
            self.linked.labels(schedule.name)
            self.withheld.labels(schedule.name)

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
            self.linked.labels(release.publication).inc(release.linked)
            self.withheld.labels(release.publication).inc(len(release.withheld))
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
                self.wait(min(remaining, 60.0))
            if not self.stop.is_set():
                self.run_at(moment)

    def wait(self, seconds: float) -> None:
        """Wait `seconds` (less if stopped), serving forced-release requests meanwhile."""
        if self.requests is None:
            self.stop.wait(seconds)
            return
        until = time.monotonic() + seconds
        while not self.stop.is_set() and (left := until - time.monotonic()) > 0:
            request = self.requests.next(min(left, 1.0))
            if request is not None:
                self.serve(request)

    def serve(self, request: Request) -> None:
        """Carry out one forced release and answer it (an expired request only answered)."""
        if self.requests is None:
            return
        if time.time() > request.accept_by:
            log.warning("a forced release request expired before it was read; not carried out")
            self.requests.answer(request, None, "expired: the publisher service read it too late")
            return
        self.requests.accept(request)
        try:
            release = self.publisher.publish_now(
                request.period,
                request.publication,
                reason=request.reason,
                user=request.user,
                principal=request.principal,
                worker_timeout=max(0.0, min(request.wait, request.deadline - time.time() - 5)),
            )
        except HubError as exc:
            self.requests.answer(request, None, str(exc))
            return
        self.requests.answer(request, release, None)
