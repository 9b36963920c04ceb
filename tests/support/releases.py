"""Publication over time without Kafka: what the trends topic would hold after a
realistic run of monthly and quarterly releases with late data and revisions.

The publisher's own semantics, replayed on pure functions: at each month's
release the month is published (revision 0), every period released before is
recomputed and released again with the next revision when its cells changed,
and at each quarter's end the quarter is published too. Between releases, late
records arrive for earlier months, and some records are corrected or withdrawn.
``linked`` chooses whether each release is protected against what the topic
already holds (``hub.linked.secure_release``) or only breakdown by breakdown.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from hub.disclosure import DisclosureRule
from hub.linked import Release, secure_release
from hub.taxonomy import Taxonomy
from streams.aggregate import period_cells
from tests.support.scenario import Scenario

Period = tuple[date, date]


def month(year: int, number: int) -> Period:
    return (date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1]))


def quarter(year: int, first_month: int) -> Period:
    return (month(year, first_month)[0], month(year, first_month + 2)[1])


@dataclass
class Topic:
    """What the trends topic holds: every revision of every period, as snapshots."""

    rule: DisclosureRule
    linked: bool
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    latest: dict[tuple[str, date], Release] = field(default_factory=dict)
    linked_suppressions: int = 0

    def release(self, publication: str, period: Period, cells: dict[Any, int | None]) -> bool:
        """Publish ``cells`` for the period unless identical to its latest revision."""
        held = self.latest.get((publication, period[0]))
        revision = 0 if held is None else held.revision + 1
        candidate = Release(publication, period[0], period[1], revision, cells)
        if held is not None and held.cells == cells:
            return False
        if self.linked:
            secured = secure_release(candidate, self.releases, self.rule)
            candidate = secured.release
            self.linked_suppressions += len(secured.linked_suppressions)
            if held is not None and held.cells == candidate.cells:
                return False
        self.releases.append(candidate)
        self.latest[publication, period[0]] = candidate
        for (measure, dimension, value), count in candidate.cells.items():
            self.snapshots.append(
                {
                    "publication": publication,
                    "period_start": period[0],
                    "period_end": period[1],
                    "measure": measure,
                    "dimension": dimension,
                    "value": value,
                    "count": count,
                    "suppressed": count is None,
                    "revision": revision,
                    "published_at": datetime(2026, 12, 1, tzinfo=UTC),
                }
            )
        return True


def run(
    scenario: Scenario,
    partners: Sequence[str],
    rule: DisclosureRule,
    *,
    linked: bool,
    months: int = 6,
    per_month: int = 60,
    late: int = 12,
) -> Topic:
    """Six months (by default) of 2026 published monthly and quarterly, with late data."""
    taxonomy = Taxonomy()
    topic = Topic(rule, linked)
    released: list[tuple[str, Period]] = []

    def cells(period: Period) -> dict[Any, int | None]:
        found = period_cells(scenario.truth(), period[0], period[1], taxonomy, partners, rule)
        return {(c.measure, c.dimension, c.value): c.count for c in found}

    made = []
    for number in range(1, months + 1):
        this = month(2026, number)
        made += scenario.new_records(per_month, *this)
        if number > 1:  # late records for earlier months, corrections, withdrawals
            made += scenario.new_records(late, month(2026, 1)[0], month(2026, number - 1)[1])
            scenario.corrections(min(late // 2, len(made)), made)
            scenario.withdrawals(min(late // 4, len(made)), made)
        due = [("monthly", this)]
        if number % 3 == 0:
            due.append(("board-quarterly", quarter(2026, number - 2)))
        for publication, period in [*released, *due]:
            topic.release(publication, period, cells(period))
        released += due
    return topic
