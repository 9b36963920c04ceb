"""The board pack's inputs: one publication's published cells, read by period.

Pure: no I/O. ``Cells`` keeps each period's latest revision, whole
(``hub.trends``), and says when a cell is suppressed or was not published, so
nothing downstream mistakes a withheld count for zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from hub.trends import (
    OPEN_DIMENSIONS,
    REFERRALS,
    REFERRALS_NOT_ASSESSED,
    REFERRALS_NOT_RECORDED,
    Published,
)


class Status(StrEnum):
    OK = "ok"
    SUPPRESSED = "suppressed"
    MISSING = "missing"  # the period (or this cell) was not published
    EMPTY = "empty"  # a share with nothing to divide by


@dataclass(frozen=True)
class Reading:
    """One published value: None unless `status` is OK."""

    value: float | None = None
    status: Status = Status.OK

    @property
    def ok(self) -> bool:
        return self.status is Status.OK and self.value is not None

    def count(self) -> int | None:
        return round(self.value) if self.ok and self.value is not None else None


#: The data gap's cells, per agency: ``REFERRALS``, those recorded as not assessed, and
#: those whose agency's system does not record the online component (not counted as not
#: assessed).
NOT_ASSESSED = REFERRALS_NOT_ASSESSED
NOT_RECORDED = REFERRALS_NOT_RECORDED


@dataclass(frozen=True)
class Gap:
    """One part of a period's data gap (``NOT_ASSESSED`` or ``NOT_RECORDED``): its count
    over referrals, and the agencies left out because one of their two cells is suppressed."""

    count: int
    referrals: int
    left_out: int
    share: Reading


class Cells:
    """One publication's published cells, each period at its latest revision (only the
    cells of that revision), looked up by period start."""

    def __init__(self, rows: Iterable[Mapping[str, Any]], publication: str) -> None:
        self._cells: dict[tuple[str, str, str, str], Mapping[str, Any]] = {}
        #: Period start (ISO) -> (its latest revision, when that revision was released).
        self.revisions: dict[str, tuple[int, str]] = {}
        published = Published(row for row in rows if row["publication"] == publication)
        for (_, period_start), period in published.periods.items():
            start = str(period_start)
            self.revisions[start] = (period.revision, period.published_at)
            for (measure, dimension, value), row in period.snapshots.items():
                self._cells[start, measure, dimension, value] = row

    def published(self, start: date) -> bool:
        return start.isoformat() in self.revisions

    def reading(self, start: date, measure: str, dimension: str, value: str) -> Reading:
        if not self.published(start):
            return Reading(status=Status.MISSING)
        row = self._cells.get((start.isoformat(), measure, dimension, value))
        if row is None:
            if dimension in OPEN_DIMENSIONS:
                return Reading(0.0)
            return Reading(status=Status.MISSING)
        if row["suppressed"] or row["count"] is None:
            return Reading(status=Status.SUPPRESSED)
        return Reading(float(row["count"]))

    def values(self, start: date, measure: str, dimension: str) -> list[str]:
        """The values published for one breakdown in one period, in sorted order."""
        key = start.isoformat()
        return sorted(v for (s, m, d, v) in self._cells if (s, m, d) == (key, measure, dimension))

    def gap(self, start: date, measure: str = NOT_ASSESSED) -> Gap:
        """The data gap (``measure``'s part of it) summed over agencies whose two cells
        are both published; missing when the period was released without ``measure``."""
        if not self.published(start) or not self.values(start, measure, "agency"):
            return Gap(0, 0, 0, Reading(status=Status.MISSING))
        numerator = denominator = left_out = 0
        for agency in self.values(start, REFERRALS, "agency"):
            total = self.reading(start, REFERRALS, "agency", agency).count()
            gap = self.reading(start, measure, "agency", agency).count()
            if total is None or gap is None:
                left_out += 1
            else:
                numerator, denominator = numerator + gap, denominator + total
        if denominator:
            return Gap(numerator, denominator, left_out, Reading(numerator / denominator))
        return Gap(0, 0, left_out, Reading(status=Status.SUPPRESSED if left_out else Status.EMPTY))

    def agency_gap(self, start: date, agency: str, measure: str = NOT_ASSESSED) -> Reading:
        """One agency's share of referrals whose online component was not assessed (or,
        with ``NOT_RECORDED``, is not recorded by the agency's system)."""
        total = self.reading(start, REFERRALS, "agency", agency)
        gap = self.reading(start, measure, "agency", agency)
        if total.value and gap.value is not None and total.ok and gap.ok:
            return Reading(gap.value / total.value)
        if Status.SUPPRESSED in (total.status, gap.status):
            return Reading(status=Status.SUPPRESSED)
        if Status.MISSING in (total.status, gap.status):
            return Reading(status=Status.MISSING)
        return Reading(status=Status.EMPTY)

    def share(self, start: date, part: Reading, whole: tuple[str, str, str]) -> Reading:
        """``part`` over the published cell ``whole`` (measure, dimension, value) of the
        same period: suppressed when either is, missing when either was not published."""
        total = self.reading(start, *whole)
        if total.value and part.value is not None and total.ok and part.ok:
            return Reading(part.value / total.value)
        if Status.SUPPRESSED in (total.status, part.status):
            return Reading(status=Status.SUPPRESSED)
        if Status.MISSING in (total.status, part.status):
            return Reading(status=Status.MISSING)
        return Reading(status=Status.EMPTY)

    def not_recording(self, start: date) -> tuple[list[str], list[str]]:
        """Agencies whose published count of referrals with the online component not
        recorded is above 0, and those whose count is suppressed (so it may be)."""
        shown: list[str] = []
        hidden: list[str] = []
        for agency in self.values(start, NOT_RECORDED, "agency"):
            reading = self.reading(start, NOT_RECORDED, "agency", agency)
            if reading.status is Status.SUPPRESSED:
                hidden.append(agency)
            elif reading.value:
                shown.append(agency)
        return shown, hidden

    def period_rows(self, start: date) -> list[Mapping[str, Any]]:
        key = start.isoformat()
        return [row for (s, *_), row in self._cells.items() if s == key]
