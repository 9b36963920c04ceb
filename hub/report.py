"""`hub report`: the board pack, one self-contained HTML file from the published trends.

``build_pack`` is pure (rows in, HTML out); ``write_pack`` reads the trends
topic with ``hub.subscribe.published_rows`` and writes the file. The pack uses
only published cells (latest revision), so it holds nothing the trends topic
does not: no pseudonym, no unsuppressed small count.

The requested period's publication is the agreement's schedule that closes
that kind of period (a quarter: ``board-quarterly``; a month: ``monthly``).
Charts show that publication's periods up to the requested one (8 quarters or
24 months); a quarterly pack also charts the monthly events series over the
24 months to the quarter's end when a monthly publication has it, because
8 quarterly points are few for a trend. docs/report.md explains every section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.agreement import Agreement, Schedule
from hub.errors import ConfigError, HubError
from hub.publish import parse_period, period_label
from hub.report_charts import cell_label, code_label, pack_charts, type_label
from hub.report_stats import (
    CONFIDENCE,
    POINTS,
    Cells,
    Polarity,
    Reading,
    Status,
    Trend,
    count_trend,
    proportion_trend,
)
from hub.taxonomy import CELLS

if TYPE_CHECKING:
    from hub.settings import HubSettings

#: Colour of each headline's trend marker. A rise in recorded harm can mean better
#: identification as much as more harm, so counts carry no judgement; the data gap
#: (referrals whose online component was not assessed) should fall.
POLARITY: Mapping[str, Polarity] = {
    "events": Polarity.NO_JUDGEMENT,
    "children": Polarity.NO_JUDGEMENT,
    "multi_agency": Polarity.NO_JUDGEMENT,
    "data_gap": Polarity.LOWER_IS_BETTER,
}
WINDOW = {"month": 24, "quarter": 8}
STEP = {"month": 1, "quarter": 3}
TOP_CODES = 10


class NotPublishedError(HubError):
    """The requested period has no published cells (yet)."""


@dataclass(frozen=True)
class PackSummary:
    path: Path
    publication: str
    period: str
    cells: int
    suppressed: int
    revision: int


@dataclass(frozen=True)
class Headline:
    title: str
    value: str
    previous: str
    previous_change: str
    last_year: str
    last_year_change: str
    trend: str
    judgement: str
    note: str


@dataclass(frozen=True)
class Row:
    label: str
    current: str
    previous: str
    last_year: str


@dataclass(frozen=True)
class AgencyRow:
    agency: str
    kind: str
    referrals: str
    not_assessed: str
    share: str
    note: str


def shift(start: date, months: int) -> date:
    """The first of the month `months` after (or before) `start`'s month."""
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def show_count(reading: Reading) -> str:
    """'1,234'; '[c]' when suppressed (never 0); 'not published'; '-' when empty."""
    if reading.ok and reading.value is not None:
        return f"{reading.value:,.0f}"
    return {Status.SUPPRESSED: "[c]", Status.MISSING: "not published"}.get(reading.status, "-")


def show_share(reading: Reading) -> str:
    if reading.ok and reading.value is not None:
        return f"{reading.value:.1%}"
    return show_count(reading)


def change(current: Reading, earlier: Reading, share: bool = False) -> str:
    """'up 15 (+14%)', 'down 2.5 percentage points', 'no change', or why not comparable."""
    if current.value is None or earlier.value is None or not (current.ok and earlier.ok):
        hidden = Status.SUPPRESSED in (current.status, earlier.status)
        return "cannot be compared (suppressed)" if hidden else "cannot be compared"
    if share:  # the difference of the percentages as shown, so the page adds up
        points = float(f"{current.value * 100:.1f}") - float(f"{earlier.value * 100:.1f}")
        word = "up" if points > 0 else "down"
        return f"{word} {abs(points):.1f} percentage points" if abs(points) >= 0.05 else "no change"
    difference = current.value - earlier.value
    if not difference:
        return "no change"
    word = "up" if difference > 0 else "down"
    relative = f" ({difference / earlier.value:+.0%})" if earlier.value else ""
    return f"{word} {abs(difference):,.0f}{relative}"


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
        f" or release it now with `hub publish --now --period {label}`; then run the report again"
    )


class Pack:
    """Everything the template shows, computed from one publication's cells."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], agreement: Agreement, text: str) -> None:
        self.rows, self.agreement = rows, agreement
        self.schedule, self.start = choose_publication(rows, agreement, text)
        self.kind = self.schedule.closes
        self.cells = Cells(rows, self.schedule.name)
        step = STEP[self.kind]
        self.starts = [shift(self.start, -step * i) for i in reversed(range(WINDOW[self.kind]))]
        self.previous, self.last_year = shift(self.start, -step), shift(self.start, -12)
        self.monthly = next((s for s in agreement.publication if s.closes == "month"), None)

    def label(self, start: date) -> str:
        return period_label(self.kind, (start, start))

    def series(self, measure: str, dimension: str, value: str) -> list[Reading]:
        return [self.cells.reading(s, measure, dimension, value) for s in self.starts]

    def headline(
        self, key: str, title: str, at: Callable[[date], Reading], trend: Trend, note: str = ""
    ) -> Headline:
        share = key == "data_gap"
        show = show_share if share else show_count
        now, before, year_ago = at(self.start), at(self.previous), at(self.last_year)
        polarity = POLARITY[key]
        return Headline(
            title,
            show(now),
            show(before),
            change(now, before, share),
            show(year_ago),
            change(now, year_ago, share),
            trend.describe(polarity),
            trend.judgement(polarity),
            note,
        )

    def count_headline(self, key: str, title: str, cell: tuple[str, str, str]) -> Headline:
        trend = count_trend(
            [r.count() for r in self.series(*cell)], self.agreement.disclosure.round_to
        )
        return self.headline(key, title, lambda s: self.cells.reading(s, *cell), trend)

    def headlines(self) -> list[Headline]:
        gaps = [self.cells.gap(s) for s in self.starts]
        trend = proportion_trend(
            [g.not_assessed if g.share.ok else None for g in gaps],
            [g.referrals if g.share.ok else None for g in gaps],
        )
        left_out = gaps[-1].left_out
        note = f"{left_out} agencies left out this period: a suppressed cell" if left_out else ""
        return [
            self.count_headline(
                "events", "Events with an online component", ("events", "total", "all")
            ),
            self.count_headline("children", "Children", ("children", "total", "all")),
            self.count_headline(
                "multi_agency",
                "Children known to two or more agencies",
                ("children", "known_to_agencies", "2+"),
            ),
            self.headline(
                "data_gap",
                "Referrals with the online component not assessed",
                lambda s: self.cells.gap(s).share,
                trend,
                note,
            ),
        ]

    def breakdown(
        self, measure: str, dimension: str, values: Sequence[str], label: Callable[[str], str]
    ) -> list[Row]:
        periods = (self.start, self.previous, self.last_year)
        return [
            Row(
                label(v),
                *(show_count(self.cells.reading(p, measure, dimension, v)) for p in periods),
            )
            for v in values
        ]

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

    def agencies(self) -> list[AgencyRow]:
        partners = {p.id: p for p in self.agreement.partners}
        others = set(self.cells.values(self.start, "referrals", "agency")) - set(partners)
        rows = []
        for agency in [*partners, *sorted(others)]:
            total = self.cells.reading(self.start, "referrals", "agency", agency)
            gap = self.cells.reading(self.start, "referrals_online_not_assessed", "agency", agency)
            kind = (
                type_label(partners[agency].type) if agency in partners else "not in the agreement"
            )
            share = show_share(self.cells.agency_gap(self.start, agency))
            rows.append(
                AgencyRow(
                    agency,
                    kind,
                    show_count(total),
                    show_count(gap),
                    share,
                    _agency_note(total, gap),
                )
            )
        return rows

    def revisions(self) -> list[tuple[str, int, str]]:
        held = [(s, self.cells.revisions.get(s.isoformat(), (0, ""))) for s in self.starts]
        return [(self.label(s), revision, at) for s, (revision, at) in held if revision > 0]

    def context(self, generated_at: datetime) -> dict[str, Any]:
        rule = self.agreement.disclosure
        cells = self.cells.period_rows(self.start)
        code = partial(code_label, agreement=self.agreement)
        return {
            "partnership": self.agreement.partnership.replace("-", " ").capitalize(),
            "period": self.label(self.start),
            "previous": self.label(self.previous),
            "last_year": self.label(self.last_year),
            "publication": self.schedule.name,
            "topic": self.schedule.topic,
            "generated_at": generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "headlines": self.headlines(),
            "charts": pack_charts(self),
            "tables": [
                (
                    "Events by 4Cs cell",
                    self.breakdown("events", "cell_4c", self.cell_values(), cell_label),
                ),
                (
                    "Most common risk codes (events)",
                    self.breakdown("events", "risk_code", self.top_codes(), code),
                ),
                (
                    "Children by age band",
                    self.breakdown("children", "age_band", self.age_bands(), str),
                ),
            ],
            "agencies": self.agencies(),
            "revisions": self.revisions(),
            "revision": self.cells.revisions[self.start.isoformat()][0],
            "cell_count": len(cells),
            "suppressed_count": sum(1 for r in cells if r["suppressed"]),
            "threshold": rule.suppress_at_or_below,
            "round_to": rule.round_to,
            "secondary": rule.secondary_suppression,
            "window": len(self.starts),
            "points": POINTS,
            "confidence": f"{CONFIDENCE:.1%}",
            "suppressed_note": suppressed_note(self.agreement),
        }


def suppressed_note(agreement: Agreement) -> str:
    threshold = agreement.disclosure.suppress_at_or_below
    return f"[c] suppressed (1-{threshold} or to protect another cell): withheld, not zero"


def _agency_note(total: Reading, gap: Reading) -> str:
    if total.status is Status.MISSING:
        return "no published cell for this partner in the period"
    if total.status is Status.SUPPRESSED:
        return "referrals received; the count is suppressed"
    if total.ok and total.value == 0:
        return "nothing received: no referrals dated in the period (check the agency's submission)"
    if gap.status is Status.SUPPRESSED:
        return "count not assessed is suppressed, so the share cannot be shown"
    return ""


def build_pack(
    rows: Iterable[Mapping[str, Any]],
    agreement: Agreement,
    period_text: str,
    generated_at: datetime,
) -> str:
    """The board pack for `period_text` ('2026Q3' or '2026-09') as one HTML page. No I/O."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    context = Pack(list(rows), agreement, period_text).context(generated_at)
    env = Environment(
        loader=PackageLoader("hub", "templates"), autoescape=True, undefined=StrictUndefined
    )
    return env.get_template("board_pack.html.j2").render(context)


def write_pack(
    settings: HubSettings,
    agreement: Agreement,
    period_text: str,
    out: Path,
    generated_at: datetime | None = None,
) -> PackSummary:
    """Read the published trends (HUB_* settings), write the pack for `period_text` to `out`."""
    from hub.subscribe import published_rows

    rows = published_rows(settings)
    page = build_pack(rows, agreement, period_text, generated_at or datetime.now(UTC))
    out.write_text(page, encoding="utf-8")
    schedule, start = choose_publication(rows, agreement, period_text)
    cells = Cells(rows, schedule.name).period_rows(start)
    return PackSummary(
        path=out,
        publication=schedule.name,
        period=period_label(schedule.closes, (start, start)),
        cells=len(cells),
        suppressed=sum(1 for r in cells if r["suppressed"]),
        revision=max(int(r["revision"]) for r in cells),
    )
