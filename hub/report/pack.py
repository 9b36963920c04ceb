"""The board pack's model: which publication, which periods, which breakdown values.

The requested period's publication is the agreement's schedule that closes
that kind of period (a quarter: ``board-quarterly``; a month: ``monthly``).
Charts show that publication's periods up to the requested one (8 quarters or
24 months). ``Pack`` holds that window and the cells; the headlines
(``hub.report.headlines``), the page context (``hub.report.context``) and the
charts (``hub.report.charts``) all read from it. Labels for cells, codes and
agency types live here because tables and charts both show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from hub.agreement.model import Agreement, Schedule
from hub.errors import ConfigError, HubError
from hub.periods import add_months, months_in, parse_period, period_label
from hub.report.cells import Cells, Reading
from hub.taxonomy import CELLS

WINDOW = {"month": 24, "quarter": 8}
TOP_CODES = 10


class NotPublishedError(HubError):
    """The requested period has no published cells (yet)."""


def choose_publication(
    rows: Sequence[Mapping[str, Any]], agreement: Agreement, text: str
) -> tuple[Schedule, date]:
    """The schedule that closes this kind of period and has released it, and its start."""
    kind, (start, end) = parse_period(text)
    schedules = [s for s in agreement.publication if s.closes == kind]
    if not schedules:
        raise ConfigError(
            f"no publication in the agreement closes a {kind}: add one or ask for a "
            f"{'month' if kind == 'quarter' else 'quarter'}"
        )
    released = {(r["publication"], r["period_start"]) for r in rows}
    for schedule in schedules:
        if (schedule.name, start.isoformat()) in released:
            return schedule, start
    label, names = period_label(kind, (start, end)), ", ".join(s.name for s in schedules)
    latest = max((s for p, s in released if p in names.split(", ")), default=None)
    seen = f" (its latest released period starts {latest})" if latest else " (nothing released)"
    raise NotPublishedError(
        f"{label} has not been published by {names}{seen}. Wait for its scheduled release,"
        f" or release it now with `hub publish --now --period {label} --reason ...`; then run"
        " the report again"
    )


class Pack:
    """One publication's cells and the periods the pack shows: pure, no I/O."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], agreement: Agreement, text: str) -> None:
        self.rows, self.agreement = rows, agreement
        self.schedule, self.start = choose_publication(rows, agreement, text)
        self.kind = self.schedule.closes
        self.cells = Cells(rows, self.schedule.name)
        step = months_in(self.kind)
        window = reversed(range(WINDOW[self.kind]))
        self.starts = [add_months(self.start, -step * i) for i in window]
        self.previous, self.last_year = add_months(self.start, -step), add_months(self.start, -12)
        self.monthly = next((s for s in agreement.publication if s.closes == "month"), None)

    def label(self, start: date) -> str:
        return period_label(self.kind, (start, start))

    def series(self, measure: str, dimension: str, value: str) -> list[Reading]:
        return [self.cells.reading(s, measure, dimension, value) for s in self.starts]

    # -- the requested period's release: the page header and `hub report`'s summary --

    def period_rows(self) -> list[Mapping[str, Any]]:
        return self.cells.period_rows(self.start)

    def suppressed_count(self) -> int:
        return sum(1 for r in self.period_rows() if r["suppressed"])

    def revision(self) -> int:
        return self.cells.revisions[self.start.isoformat()][0]

    # -- which values each breakdown shows --

    def cell_values(self) -> list[str]:
        extra = set(self.cells.values(self.start, "events", "cell_4c")) - set(CELLS)
        return [*CELLS, *sorted(extra)]

    def top_codes(self) -> list[str]:
        """The most common risk codes this period, suppressed ones left out."""
        counts = {
            code: self.cells.reading(self.start, "events", "risk_code", code).count()
            for code in self.cells.values(self.start, "events", "risk_code")
        }
        ranked = sorted((c for c, n in counts.items() if n), key=lambda c: (-(counts[c] or 0), c))
        return ranked[:TOP_CODES]

    def age_bands(self) -> list[str]:
        bands = {v for s in self.starts for v in self.cells.values(s, "children", "age_band")}
        return sorted(
            bands, key=lambda b: (0, int(b.split("-")[0]), b) if b[0].isdigit() else (1, 0, b)
        )


# -- labels --

_TYPE_LABELS = {"CAMHS": "CAMHS", "CHILDRENS_SOCIAL_CARE": "Children's social care"}


def type_label(agency_type: str) -> str:
    return _TYPE_LABELS.get(agency_type) or agency_type.replace("_", " ").capitalize()


def cell_label(cell: str) -> str:
    """CONTACT_SEXUAL -> 'Contact: sexual'; CROSS_PRIVACY -> 'Cross-cutting: privacy'."""
    c, _, harm = cell.partition("_")
    if not harm:
        return "Not mapped to a 4Cs cell" if cell == "UNMAPPED" else cell
    return f"{'Cross-cutting' if c == 'CROSS' else c.capitalize()}: {harm.lower()}"


def code_label(code: str, agreement: Agreement) -> str:
    """A local code's label from the agreement, else the code in words."""
    labels = {c.code: c.label for c in agreement.local_risk_codes if c.label}
    words = code.replace("_", " ").capitalize().replace("Csam", "CSAM").replace(" u18", " under 18")
    return labels.get(code) or words
