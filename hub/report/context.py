"""The board pack's page context: every value ``board_pack.html.j2`` shows.

Headlines come from ``hub.report.headlines``, charts from
``hub.report.charts``; this module adds the detail tables, the data quality
by agency, linkage, the revised periods and the methods' numbers (disclosure
rule, trend window), all read from one ``Pack``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from hub.agreement.model import Agreement
from hub.report.cells import NOT_ASSESSED, NOT_RECORDED, Reading, Status
from hub.report.charts import pack_charts
from hub.report.headlines import headlines, show_count, show_share
from hub.report.pack import Pack, cell_label, code_label, type_label
from hub.report.stats import CONFIDENCE, POINTS
from hub.trends import REFERRALS, SUBJECT_BASES, release_id


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
    share: str  # of referrals, not assessed
    not_recorded: str
    share_not_recorded: str
    note: str


#: What each subject basis (the identifier a child's pseudonym was made from) is called.
BASIS_LABELS = {
    "NHS_NUMBER": "NHS number",
    "NAME_DOB": "Name and date of birth",
    "LOCAL_ID": "An agency's own local id only",
    "NONE": "No linkable identifier",
}
EVENTS_TOTAL = ("events", "total", "all")


@dataclass(frozen=True)
class BasisRow:
    label: str
    events: str  # this period's published count
    share: str  # of this period's events
    previous: str  # share of the previous period's events
    last_year: str  # share of the same period's events last year


@dataclass(frozen=True)
class Linkage:
    """How well children are linked: pseudonyms against children, events by basis."""

    counted: bool  # False: the period was released before linkage was counted
    counts: list[Row]  # pseudonyms before linkage, children (the linked groups)
    bases: list[BasisRow]
    notes: list[str]  # what the period's cells say, in plain words


def breakdown(
    pack: Pack, measure: str, dimension: str, values: Sequence[str], label: Callable[[str], str]
) -> list[Row]:
    """One detail table: this period, the previous one and the same period last year."""
    periods = (pack.start, pack.previous, pack.last_year)
    return [
        Row(
            label(v),
            *(show_count(pack.cells.reading(p, measure, dimension, v)) for p in periods),
        )
        for v in values
    ]


def agencies(pack: Pack) -> list[AgencyRow]:
    """Partners in agreement order, then agencies in the cells the agreement does not name."""
    partners = {p.id: p for p in pack.agreement.partners}
    others = set(pack.cells.values(pack.start, REFERRALS, "agency")) - set(partners)
    rows = []
    for agency in [*partners, *sorted(others)]:
        total = pack.cells.reading(pack.start, REFERRALS, "agency", agency)
        gap = pack.cells.reading(pack.start, NOT_ASSESSED, "agency", agency)
        unrecorded = pack.cells.reading(pack.start, NOT_RECORDED, "agency", agency)
        kind = type_label(partners[agency].type) if agency in partners else "not in the agreement"
        rows.append(
            AgencyRow(
                agency,
                kind,
                show_count(total),
                show_count(gap),
                show_share(pack.cells.agency_gap(pack.start, agency)),
                show_count(unrecorded),
                show_share(pack.cells.agency_gap(pack.start, agency, NOT_RECORDED)),
                _agency_note(total, gap, unrecorded),
            )
        )
    return rows


def _agency_note(total: Reading, gap: Reading, unrecorded: Reading) -> str:
    if total.status is Status.MISSING:
        return "no published cell for this partner in the period"
    if total.status is Status.SUPPRESSED:
        return "referrals received; the count is suppressed"
    if total.ok and total.value == 0:
        return "nothing received: no referrals dated in the period (check the agency's submission)"
    notes = []
    if unrecorded.ok and unrecorded.value and total.value:
        notes.append(
            "the agency's system does not record the online component"
            if unrecorded.value >= total.value
            else "the online component is not recorded for some referrals"
        )
    if gap.status is Status.SUPPRESSED:
        notes.append("count not assessed is suppressed, so the share cannot be shown")
    if unrecorded.status is Status.SUPPRESSED:
        notes.append("count not recorded is suppressed, so its share cannot be shown")
    return "; ".join(notes)


def basis_label(basis: str) -> str:
    return BASIS_LABELS.get(basis) or basis.replace("_", " ").capitalize()


def linkage(pack: Pack) -> Linkage:
    """Pseudonyms and children for this period, the previous one and last year; this
    period's events by the basis of their subject, and each basis' share of events."""
    cells, periods = pack.cells, (pack.start, pack.previous, pack.last_year)
    seen = cells.values(pack.start, "events", "subject_basis")
    bases = [*SUBJECT_BASES, *sorted(set(seen) - set(SUBJECT_BASES))]

    def events(start: date, basis: str) -> Reading:
        return cells.reading(start, "events", "subject_basis", basis)

    def share(start: date, basis: str) -> Reading:
        return cells.share(start, events(start, basis), EVENTS_TOTAL)

    counts = [
        Row(label, *(show_count(cells.reading(p, measure, "total", "all")) for p in periods))
        for measure, label in (
            ("pseudonyms", "Pseudonyms (before linkage)"),
            ("children", "Children (linked groups)"),
        )
    ]
    rows = [
        BasisRow(
            basis_label(basis),
            show_count(events(pack.start, basis)),
            *(show_share(share(p, basis)) for p in periods),
        )
        for basis in bases
    ]
    counted = bool(seen or cells.values(pack.start, "pseudonyms", "total"))
    return Linkage(counted, counts, rows, _linkage_notes(pack, events, share))


def _linkage_notes(
    pack: Pack, events: Callable[[date, str], Reading], share: Callable[[date, str], Reading]
) -> list[str]:
    def amount(basis: str) -> str:
        part = share(pack.start, basis)
        of = f" ({show_share(part)} of all events)" if part.ok else ""
        return f"{show_count(events(pack.start, basis))} events{of}"

    notes = []
    local = events(pack.start, "LOCAL_ID")
    if local.ok and local.value:
        notes.append(
            f"{amount('LOCAL_ID')} could be linked only by an agency's own local id. Such an"
            " id links records within its agency only, never across agencies: a child an"
            " agency knows only by its local id cannot be matched with other agencies'"
            " records, so if another agency knows the child too, they are counted as two"
            " children, and not as known to two or more agencies."
        )
    elif local.status is Status.SUPPRESSED:
        notes.append(
            "Events linked only by an agency's own local id: the count is suppressed. Such an"
            " id links records within its agency only, never across agencies."
        )
    unlinked = events(pack.start, "NONE")
    if unlinked.ok and unlinked.value:
        notes.append(
            f"{amount('NONE')} had no linkable identifier: they count as events, never as children."
        )
    pseudonyms = pack.cells.reading(pack.start, "pseudonyms", "total", "all")
    children = pack.cells.reading(pack.start, "children", "total", "all")
    if pseudonyms.ok and children.ok and pseudonyms.value and children.value is not None:
        rounding = f"both rounded to the nearest {pack.agreement.disclosure.round_to}"
        if pseudonyms.value > children.value:
            notes.append(
                f"Linkage joined pseudonyms of the same child: {show_count(pseudonyms)}"
                f" pseudonyms are {show_count(children)} children ({rounding}, so the"
                " difference is approximate)."
            )
        else:
            notes.append(
                f"Pseudonyms and children are the same after rounding ({rounding}): linkage"
                " joined few pseudonyms, or none."
            )
    return notes


def revisions(pack: Pack) -> list[tuple[str, int, str]]:
    """(period, revision, latest release) of the periods in the window released again."""
    held = [(s, pack.cells.revisions.get(s.isoformat(), (0, ""))) for s in pack.starts]
    return [(pack.label(s), revision, at) for s, (revision, at) in held if revision > 0]


def suppressed_note(agreement: Agreement) -> str:
    threshold = agreement.disclosure.suppress_at_or_below
    return f"[c] suppressed (1-{threshold} or to protect another cell): withheld, not zero"


def context(pack: Pack, generated_at: datetime) -> dict[str, Any]:
    """The template's variables, in page order."""
    rule = pack.agreement.disclosure
    code = partial(code_label, agreement=pack.agreement)
    return {
        "partnership": pack.agreement.partnership.replace("-", " ").capitalize(),
        "period": pack.label(pack.start),
        "previous": pack.label(pack.previous),
        "last_year": pack.label(pack.last_year),
        "publication": pack.schedule.name,
        "topic": pack.schedule.topic,
        "generated_at": generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "headlines": headlines(pack),
        "charts": pack_charts(pack),
        "tables": [
            (
                "Events by 4Cs cell",
                breakdown(pack, "events", "cell_4c", pack.cell_values(), cell_label),
            ),
            (
                "Most common risk codes (events)",
                breakdown(pack, "events", "risk_code", pack.top_codes(), code),
            ),
            (
                "Children by age band",
                breakdown(pack, "children", "age_band", pack.age_bands(), str),
            ),
        ],
        "agencies": agencies(pack),
        "not_recorded_counted": bool(pack.cells.values(pack.start, NOT_RECORDED, "agency")),
        "linkage": linkage(pack),
        "revisions": revisions(pack),
        "revision": pack.revision(),
        # The release's entry on the audit trail (hub.audit): who released it, when, why.
        "audit_id": release_id(pack.schedule.name, pack.start, pack.revision()),
        "cell_count": len(pack.period_rows()),
        "suppressed_count": pack.suppressed_count(),
        "threshold": rule.suppress_at_or_below,
        "round_to": rule.round_to,
        "secondary": rule.secondary_suppression,
        "window": len(pack.starts),
        "points": POINTS,
        "confidence": f"{CONFIDENCE:.1%}",
        "suppressed_note": suppressed_note(pack.agreement),
    }
