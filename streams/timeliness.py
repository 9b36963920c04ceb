"""Did each agency send its monthly data on time? Lateness metrics for the board.

Each partner in the agreement has a ``submit_by`` cron, read on the wall clock
of the agreement's timezone ("0 17 5 * *": by 17:00 local on the 5th). Every
deadline covers one calendar month, the *due period*: the month before the
deadline's local month (the deadline of 5 February covers January).

What "on time" means, precisely. For an agency at the instant ``now``:

- the *last deadline* D is the latest cron time at or before ``now`` (so from
  D itself onwards the new period is due), the *next deadline* the first one
  strictly after ``now``, both among the instants `hub.agreement.model.next_local`
  yields (a wall time skipped when clocks go forward falls an hour later, one
  repeated when they go back counts once, the first time): see
  `previous_local` and `following_local`;
- the due period ends at the *period end* E: 00:00 local on the first day of
  D's local month (the first instant of that day if midnight is skipped);
- a *submission* is any message on the agency's topic, timed by its Kafka
  timestamp; F is the first submission at or after E;
- the agency has *submitted* for the period when F exists;
- it was *on time* when E <= F <= D (a message stamped exactly at the deadline
  is on time);
- *lateness* is 0 when on time; F - D when F came after D (fixed from then
  on); ``now`` - D while nothing has arrived since E (it grows until data
  arrives; it is 0 at the deadline instant itself).

Any message after the period end counts, whichever month's records it
carries: the hub sees that an agency sent data, not what the data covers.

Timeliness keeps, per agency, its latest submission and the first submission
in each local calendar month; F is the earliest of those from the month
starting at E on.
`Timeliness.observe` is a few dictionary lookups, one max and one min per
message (plus one timezone conversion when a message falls in another month
than the one before); all cron work is done when the state is read (a
Prometheus scrape), and deadlines are cached until the next one passes.
Months older than the period last read for an agency are forgotten, so the
state stays a few entries per agency; this assumes the clock does not go back.

A worker sees only the messages it reads:

- with two or more workers each sees only its own partitions, so a worker
  that owns none of an agency's partitions reports it as never having
  submitted. Dashboards combine workers per agency:
  ``max by (agency) (hub_agency_last_submission_timestamp_seconds)``,
  ``max by (agency) (hub_agency_submitted_for_period)`` and
  ``min by (agency) (hub_agency_lateness_seconds)`` (lateness is computed
  from the first submission, so the worker that saw the earliest one, the
  smallest lateness, is right; ``max`` would pick a worker that saw nothing).
  Deadlines are the same on every worker;
- after a restart a worker rebuilds this state only from the messages it reads
  from then on (from its committed offsets), so an agency that sent its data
  before the restart appears not to have submitted until it sends again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.agreement.model import Agreement, aware, following_local, previous_local
from hub.periods import add_months, period_before, period_starting

# Kafka stamps -1 when a message has no timestamp; ignore that and absurd values.
_LAST_USABLE = datetime(9000, 1, 1, tzinfo=UTC).timestamp()


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Wall time maps to instants out of order only near a change of UTC offset (an hour
# or two; Samoa once skipped a whole day): looking this far either side is enough.
def _month_start(first: date, zone: ZoneInfo) -> float:
    """The instant (Unix seconds) the local day `first` begins in `zone`."""
    # Through UTC, as next_local does: a skipped midnight becomes the day's first real instant.
    return datetime.combine(first, time(), tzinfo=zone).astimezone(UTC).timestamp()


@dataclass(frozen=True)
class AgencyStatus:
    """One agency's timeliness at one instant; see the module docstring for the rules."""

    agency: str
    last_submission: datetime | None  # latest message seen, UTC
    first_submission: datetime | None  # F: first message at or after the period end, UTC
    last_deadline: datetime  # D, in the agreement's timezone
    next_deadline: datetime
    due_period: tuple[date, date]  # the month D covers (first day, last day)
    on_time: bool
    lateness_seconds: float

    @property
    def submitted(self) -> bool:
        """Something arrived after the due period ended (on time or late)."""
        return self.first_submission is not None


class Timeliness:
    """Per-agency submission times, observed per message, judged at read time.

    `observe` runs in the worker's event loop, `status` in the Prometheus scrape
    thread; the shared dictionaries are changed one item at a time (atomic under
    the GIL), and the one the reader iterates is copied first.
    """

    def __init__(self, agreement: Agreement, now: Callable[[], datetime] = _utc_now) -> None:
        self._agreement = agreement
        self._zone = ZoneInfo(agreement.timezone)
        self._now = now
        self._latest: dict[str, float] = {}
        # agency -> start of a local month (Unix s) -> first submission in that month
        self._firsts: dict[str, dict[float, float]] = {p.id: {} for p in agreement.partners}
        # agency -> start of the earliest month still needed (the period end last read)
        self._needed: dict[str, float] = {}
        self._month = (math.inf, -math.inf)  # [start, end) of the month last observed
        # cron -> (last deadline, next deadline), valid while last <= now < next
        self._deadlines: dict[str, tuple[datetime, datetime]] = {}

    @property
    def agreement(self) -> Agreement:
        return self._agreement

    def observe(self, agency: str, submitted_at: datetime) -> None:
        """Record one message from `agency` (partner id) stamped `submitted_at` (aware)."""
        if submitted_at.tzinfo is None:
            raise ValueError(f"{submitted_at.isoformat()} has no timezone; pass an aware datetime")
        self.observe_timestamp(agency, submitted_at.timestamp())

    def observe_timestamp(self, agency: str, seconds: float) -> None:
        """`observe` with a Unix timestamp in seconds (a Kafka message timestamp).

        Agencies not in the agreement, and timestamps that are missing (-1),
        not a number or absurd, are ignored.
        """
        firsts = self._firsts.get(agency)
        if firsts is None or not 0 <= seconds < _LAST_USABLE:
            return
        latest = self._latest.get(agency)
        if latest is None or seconds > latest:
            self._latest[agency] = seconds
        start, end = self._month
        if not start <= seconds < end:
            start, end = self._month = self._month_around(seconds)
        first = firsts.get(start)
        if first is None:
            self._forget_old_months(agency, firsts)
            firsts[start] = seconds
        elif seconds < first:
            firsts[start] = seconds

    def status(self, agency: str) -> AgencyStatus:
        """`agency`'s timeliness now; raises ConfigError for an agency not in the agreement."""
        self._agreement.partner(agency)
        return self._status(agency, aware(self._now()))

    def statuses(self) -> list[AgencyStatus]:
        """Every partner's timeliness at one instant, in the agreement's order."""
        now = aware(self._now())
        return [self._status(p.id, now) for p in self._agreement.partners]

    def _status(self, agency: str, now: datetime) -> AgencyStatus:
        cron = self._agreement.partner(agency).submit_by.cron
        deadline, upcoming = self._deadlines_around(cron, now)
        month = deadline.astimezone(self._zone).date().replace(day=1)
        period_end = _month_start(month, self._zone)
        if self._needed.get(agency, -math.inf) < period_end:
            self._needed[agency] = period_end
        firsts = self._firsts[agency].copy()
        first = min((t for m, t in firsts.items() if m >= period_end), default=None)
        due = deadline.timestamp()
        if first is None:
            lateness = max(0.0, now.timestamp() - due)
        else:
            lateness = max(0.0, first - due)
        latest = self._latest.get(agency)
        return AgencyStatus(
            agency=agency,
            last_submission=None if latest is None else datetime.fromtimestamp(latest, UTC),
            first_submission=None if first is None else datetime.fromtimestamp(first, UTC),
            last_deadline=deadline,
            next_deadline=upcoming,
            due_period=period_before("month", period_starting("month", month)),
            on_time=first is not None and first <= due,
            lateness_seconds=lateness,
        )

    def _deadlines_around(self, cron: str, now: datetime) -> tuple[datetime, datetime]:
        """The last deadline at or before `now` and the next one after it, in the local zone."""
        cached = self._deadlines.get(cron)
        if cached is None or not cached[0] <= now < cached[1]:
            # Kept in UTC: a local time in the repeated hour never compares equal (PEP 495).
            last = previous_local(cron, self._zone, now).astimezone(UTC)
            following = following_local(cron, self._zone, now).astimezone(UTC)
            cached = self._deadlines[cron] = (last, following)
        return cached[0].astimezone(self._zone), cached[1].astimezone(self._zone)

    def _month_around(self, seconds: float) -> tuple[float, float]:
        """[start, end) in Unix seconds of the local calendar month holding `seconds`."""
        first = datetime.fromtimestamp(seconds, self._zone).date().replace(day=1)
        return _month_start(first, self._zone), _month_start(add_months(first, 1), self._zone)

    def _forget_old_months(self, agency: str, firsts: dict[float, float]) -> None:
        needed = self._needed.get(agency)
        if needed is not None:
            for month in [m for m in firsts if m < needed]:
                del firsts[month]


class TimelinessCollector(Collector):
    """Each partner's submission timeliness, computed at scrape time; labelled by agency only."""

    def __init__(self, timeliness: Timeliness) -> None:
        self._timeliness = timeliness

    def describe(self) -> Iterator[Metric]:
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        last, deadline, upcoming, lateness, submitted = _families()
        for status in self._timeliness.statuses():
            labels = [status.agency]
            if status.last_submission is not None:
                last.add_metric(labels, status.last_submission.timestamp())
            deadline.add_metric(labels, status.last_deadline.timestamp())
            upcoming.add_metric(labels, status.next_deadline.timestamp())
            lateness.add_metric(labels, status.lateness_seconds)
            submitted.add_metric(labels, 1.0 if status.submitted else 0.0)
        yield from (last, deadline, upcoming, lateness, submitted)


def _families() -> tuple[GaugeMetricFamily, ...]:
    labels = ["agency"]
    return (
        GaugeMetricFamily(
            "hub_agency_last_submission_timestamp_seconds",
            "When this worker last received data from the agency (Unix time of the newest"
            " message's Kafka timestamp). Absent until it has received any; take max by"
            " (agency) across workers.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "hub_agency_deadline_timestamp_seconds",
            "The agency's most recent submission deadline (Unix time): last month's data was"
            " due by then, per submit_by in the data-sharing agreement.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "hub_agency_next_deadline_timestamp_seconds",
            "The agency's next submission deadline (Unix time).",
            labels=labels,
        ),
        GaugeMetricFamily(
            "hub_agency_lateness_seconds",
            "How late the agency's data for the period due at the last deadline is: 0 if it"
            " arrived on time; time from the deadline to the first data after the period"
            " ended; still growing if none has arrived. Take min by (agency) across workers.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "hub_agency_submitted_for_period",
            "1 when the agency has sent data since the period due at the last deadline ended"
            " (on time or late), 0 when it has sent nothing yet. Take max by (agency) across"
            " workers.",
            labels=labels,
        ),
    )
