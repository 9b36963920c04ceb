"""How long the hub holds a record version, and when a released period is final.

A case event stays on its partner's case topic for the agreement's
``retention.case_events_days`` (the topic's ``retention.ms``, measured by
the broker from when the event was sent). The version it carries is held
no longer anywhere else: it is kept ``case_events_days`` from the UTC day it
was shared (``RecordVersion.retained_from``), and from the first day after
that

* it counts in no period not yet released, and is held nowhere: a worker
  drops it from its state and writes a snapshot of the partition without
  it, whose tombstones remove every earlier batch and chunk that held it
  from the changelog (``streams.app``); the publisher drops it from its
  index (``streams.publish.publisher``);
* an event arriving after that (an agency's long-held backlog) is never
  counted.

The day is a UTC day and the cut is at its start, so the hub lets go of a
version on the day the broker deletes its event, never later.

A period already released keeps its counts: once any record it counts could
have passed retention, the period is final and never revised again (a
revision then would show the period shrinking because data was deleted,
not because cases changed). A record counts in the period of the day it
occurred, and is shared no earlier than ``FUTURE_TOLERANCE`` before that
(``streams.checks``), so no record of a period passes retention before
``case_events_days`` after the period began, less that tolerance.
"""

from __future__ import annotations

from datetime import date, timedelta

from streams.checks import FUTURE_TOLERANCE
from streams.records import RecordVersion


def cutoff(today: date, days: int) -> str:
    """The first day a version shared on is still kept on `today` (ISO): a version
    shared `days` days before `today` or earlier has passed retention."""
    return (today - timedelta(days=days - 1)).isoformat()


def expired(version: RecordVersion, since: str) -> bool:
    """True when `version` has passed retention: it was shared before `since`
    (``cutoff``)."""
    return version.retained_from < since


def final_from(period_start: date, days: int) -> date:
    """The first day a period that began on `period_start` is final: a record it
    counts may have passed retention from then on."""
    return period_start + timedelta(days=days) - FUTURE_TOLERANCE
