"""What the worker refuses to count, and why: one bounded reason per refused message.

Every message the worker cannot turn into a plausible record version of the
agency whose topic it arrived on is refused under one reason (the label of
``hub_events_rejected_total``), logged with topic, partition and offset
(never its content), and acknowledged: sending it again would not change it.

* ``tombstone``: no value at all (a null-valued message).
* ``undecodable``: not a case event (random or truncated bytes, a body that
  does not match its schema, a record the hub cannot build a version from).
* ``implausible``: a readable case event with a value no real record has
  (``plausibility``).
* ``wrong_agency``: the body names another agency than the topic it came on.
  An event's agency is the topic it arrived on (docs/architecture.md, invariant 7): an
  agency can write only its own topic, so the body's claim is not trusted.

A message written with a schema this worker does not ship is not refused:
it is most likely newer than the worker, and is kept (``streams.deferred``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

Reason = Literal["tombstone", "undecodable", "implausible", "wrong_agency"]
REASONS: tuple[Reason, ...] = ("tombstone", "undecodable", "implausible", "wrong_agency")

#: Nothing the partnership shares happened or was reported before this.
EARLIEST = date(1990, 1, 1)
#: How far ahead of the worker's clock a date may be (time zones, clock skew).
FUTURE_TOLERANCE = timedelta(days=2)
#: The adapters' clock versions count seconds from here (``adapters.versions.EPOCH``).
VERSION_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
#: Avro int's largest value: a record at it could never be corrected again.
VERSION_CEILING = 2**31 - 1


def clock_version(now: datetime) -> int:
    """The version an adapter's clock would give at `now` (``adapters.versions``)."""
    return max(1, int((now - VERSION_EPOCH).total_seconds()))


#: The earliest plausible report time.
EARLIEST_REPORT = datetime(EARLIEST.year, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Bounds:
    """What is plausible at one moment: the latest date and report time, the highest
    record version. Worked out once, and used for every event of the next second."""

    latest_day: date
    latest: datetime
    ceiling: int

    @classmethod
    def at(cls, now: datetime) -> Bounds:
        latest = now + FUTURE_TOLERANCE
        ceiling = min(VERSION_CEILING - 1, clock_version(now + timedelta(days=1)))
        return cls(latest.date(), latest, ceiling)

    def implausible(self, record: Mapping[str, Any]) -> str | None:
        """``implausible`` within these bounds."""
        occurred = record.get("occurred_on")
        if not isinstance(occurred, date) or not EARLIEST <= occurred <= self.latest_day:
            return "occurred_on"
        reported = record.get("reported_at")
        if not isinstance(reported, datetime):
            return "reported_at"
        if reported.tzinfo is None:
            reported = reported.replace(tzinfo=UTC)
        if not EARLIEST_REPORT <= reported <= self.latest:
            return "reported_at"
        if occurred > (reported + FUTURE_TOLERANCE).date():
            return "occurred_on"  # reported before it happened: a version's retention
            # runs from its report (streams.retention), so a period's records cannot pass it
            # before the period has begun
        version = record.get("record_version")
        if not isinstance(version, int) or not 0 <= version <= self.ceiling:
            return "record_version"
        return None


def implausible(record: Mapping[str, Any], now: datetime) -> str | None:
    """Which field of a decoded case event no real record could have, or None.

    Dates before 1990 or more than two days ahead; a date more than two days after the
    event was reported; a record version below 0, or
    beyond the adapters' clock version a day from now (profiles with their own
    version column use small numbers; a version that high would block every
    later correction of the record).
    """
    return Bounds.at(now).implausible(record)
