"""What a published trend cell can say, and the trends topic folded into what is published.

The vocabulary: the measures, dimensions and fixed values of the cells the
publisher releases (``streams.aggregate`` computes them; the board pack and
dashboards read them).

The fold: a trend snapshot (a decoded ``trend_snapshot`` message, or a row of
``hub.subscribe.published_rows``) carries publication, period_start,
period_end, measure, dimension, value, count, suppressed, revision and
published_at. A release is one revision of one period, whole: every cell of
that period. ``Published`` keeps, per (publication, period start), the latest
revision and only its cells, so a cell an earlier revision had and the latest
one no longer has is gone. Snapshots may come in any order; snapshots of the
same revision add up, a later one of the same cell replacing the earlier one.
Every reader of the trends topic (the publisher, its Prometheus exporter,
``hub subscribe`` and the board pack) folds it this way.

Pure: no Kafka, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# --- the vocabulary of published cells --------------------------------------------

EVENTS = "events"
CHILDREN = "children"
PSEUDONYMS = "pseudonyms"
REFERRALS = "referrals"
REFERRALS_NOT_ASSESSED = "referrals_online_not_assessed"
REFERRALS_NOT_RECORDED = "referrals_online_not_recorded"
TOTAL = "total"
ALL = "all"
UNKNOWN_THRESHOLD = "unknown"
UNMAPPED = "UNMAPPED"
ONE_AGENCY, TWO_OR_MORE = "1", "2+"
SUBJECT_BASIS = "subject_basis"
#: Subject bases listed in every period, zeros included (the best identifier first;
#: ``NONE``: no linkable subject). Others seen are appended, sorted.
SUBJECT_BASES: tuple[str, ...] = ("NHS_NUMBER", "NAME_DOB", "LOCAL_ID", "NONE")
THRESHOLD_LEVELS: tuple[str, ...] = ("1", "2", "3", "4", UNKNOWN_THRESHOLD)
#: Dimensions that list only the values seen in a period: an absent cell is a true 0.
OPEN_DIMENSIONS = frozenset({"age_band", "area"})

# --- the fold ---------------------------------------------------------------------

#: (measure, dimension, value): one cell of a period.
CellKey = tuple[str, str, str]
#: (publication, period start): one period of one publication. The start is whatever
#: the snapshots carry: a date when decoded from the topic, an ISO string in a row.
PeriodKey = tuple[str, Any]


def release_id(publication: str, period_start: date, revision: int) -> str:
    """The id of a release's entry on the audit trail (``hub.audit``): what the board pack
    cites, the same whichever process wrote it."""
    return f"release/{publication}/{period_start.isoformat()}/r{revision}"


def cell_of(snapshot: Mapping[str, Any]) -> CellKey:
    return snapshot["measure"], snapshot["dimension"], snapshot["value"]


@dataclass
class PublishedPeriod:
    """One period of one publication at its latest revision: that revision's cells."""

    revision: int
    published_at: Any
    snapshots: dict[CellKey, dict[str, Any]] = field(default_factory=dict)

    @property
    def cells(self) -> dict[CellKey, tuple[int | None, bool]]:
        """(measure, dimension, value) -> (count, suppressed)."""
        return {key: (s["count"], s["suppressed"]) for key, s in self.snapshots.items()}

    def copy(self) -> PublishedPeriod:
        return PublishedPeriod(self.revision, self.published_at, dict(self.snapshots))


class Published:
    """Trend snapshots folded: per (publication, period start), the latest revision, whole."""

    def __init__(self, snapshots: Iterable[Mapping[str, Any]] = ()) -> None:
        self.periods: dict[PeriodKey, PublishedPeriod] = {}
        self.update(snapshots)

    def add(self, snapshot: Mapping[str, Any]) -> bool:
        """Fold in one snapshot; True when it is part of its period's latest revision
        (False: an earlier revision's, now superseded)."""
        key = (snapshot["publication"], snapshot["period_start"])
        revision = int(snapshot["revision"])
        held = self.periods.get(key)
        if held is None or revision > held.revision:
            held = self.periods[key] = PublishedPeriod(revision, snapshot["published_at"])
        elif revision < held.revision:
            return False
        held.snapshots[cell_of(snapshot)] = dict(snapshot)
        return True

    def update(self, snapshots: Iterable[Mapping[str, Any]]) -> None:
        for snapshot in snapshots:
            self.add(snapshot)

    def snapshots(self) -> list[dict[str, Any]]:
        """Every cell of every period's latest revision."""
        return [s for period in self.periods.values() for s in period.snapshots.values()]

    def copy(self) -> Published:
        """An independent copy (the snapshots themselves are shared, never changed)."""
        copied = Published()
        copied.periods = {key: period.copy() for key, period in self.periods.items()}
        return copied


def latest(snapshots: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cells of every period's latest revision, whole (``Published``)."""
    return Published(snapshots).snapshots()
