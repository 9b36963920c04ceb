"""The agreement as a document its signatories can read: ``hub agreement describe``.

Generated from the one file the hub enforces, so what the information-governance
lead signs is what the code does: who shares which fields, what never leaves an
agency and how identifiers are pseudonymised, who can read what, the timetable in
words with its next dates, the disclosure rule, retention, and what is recorded of
each release. Written as Markdown or as a standalone HTML page; every value taken
from the agreement is escaped in HTML.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hub.agreement.model import ALL_SHAREABLE, Agreement, Schedule

#: What each shareable field is, in a reader's words.
FIELD_MEANING = {
    "age_band": "the child's age band on the event date (from the date of birth, never sent)",
    "sex": "the child's recorded sex",
    "area_code": "the code of the partnership area (from a postcode or an area cell; never"
    " the postcode)",
    "vulnerabilities": "recorded vulnerability flags (from a closed list)",
    "threshold_level": "the social-care threshold level",
    "platform_types": "the kinds of online platform involved (from a closed list)",
    "role": "the child's role in the event (e.g. victim, subject of concern)",
    "outcome": "the outcome of the contact or referral (from a closed list)",
}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Heading | Para | Items | Table


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _numbers(field: str, upper: int) -> list[int] | None:
    """The values of a cron field that is a number or a list of numbers; None otherwise."""
    values = []
    for part in field.split(","):
        if not part.isdigit() or not 0 <= int(part) <= upper:
            return None
        values.append(int(part))
    return values


def cron_in_words(cron: str) -> str:
    """A five-field cron expression in words where it is a plain one (fixed minute and
    hour, days and months as numbers or lists); otherwise the expression itself."""
    minute, hour, dom, month, dow = cron.split()
    at = _numbers(minute, 59), _numbers(hour, 23)
    if at[0] is None or at[1] is None or len(at[0]) != 1 or len(at[1]) != 1:
        return f"on the schedule `{cron}`"
    words = f"at {at[1][0]:02d}:{at[0][0]:02d}"
    if dom != "*":
        days = _numbers(dom, 31)
        if days is None:
            return f"on the schedule `{cron}`"
        words += f" on day {_and([str(d) for d in days])}"
    if dow != "*":
        weekdays = _numbers(dow, 7)
        if weekdays is None:
            return f"on the schedule `{cron}`"
        words += f" on {_and([WEEKDAYS[d % 7] + 's' for d in weekdays])}"
    if month == "*":
        return words + (" of every month" if dom != "*" else ", every day" if dow == "*" else "")
    months = _numbers(month, 12)
    if months is None or 0 in months:
        return f"on the schedule `{cron}`"
    return words + f" of {_and([MONTHS[m - 1] for m in months])}"


def _next(agreement: Agreement, schedule: Schedule, now: datetime, count: int) -> str:
    """The next `count` release times of `schedule` after `now`, in its own zone."""
    zone = agreement.zone_of(schedule)
    moments, after = [], now
    for _ in range(count):
        after = agreement.next_publication(schedule.name, after)
        moments.append(after.astimezone(zone).strftime("%a %d %b %Y %H:%M"))
    return "; ".join(moments)


def describe(agreement: Agreement, source: Path, now: datetime) -> list[Block]:
    """The document, as blocks, for `agreement` read from `source`, its next dates after
    `now` (timezone-aware)."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    zone = agreement.timezone
    blocks: list[Block] = [
        Heading(f"Data-sharing agreement: {agreement.partnership}"),
        Para(
            f"Generated on {now.strftime('%d %B %Y')} from `{source.name}` (SHA-256"
            f" {digest}), the file the hub enforces: its topics, access rights, timetable"
            " and disclosure control are all derived from it. Times are local to"
            f" {zone} unless a publication says otherwise."
        ),
        Heading("Partners and what each shares"),
        Para(
            "Each partner sends case events about online risk to its own topic, as its own"
            " Kafka principal. Every event carries a keyed record pseudonym and version, the"
            " child's pseudonym, the agency, the event type and date, whether there was an"
            " online component, and the online-risk codes. Beyond that, each partner shares"
            " only the fields listed here; a field it does not share reaches the hub as"
            ' "not recorded". An agency\'s mapping profile may share less, never more: its'
            " adapter refuses to start otherwise."
        ),
        Table(
            ("Partner", "Type", "Writes as", "Data in by", "Shares", "Does not share"),
            tuple(
                (
                    p.id,
                    p.type.value,
                    p.principal,
                    cron_in_words(p.submit_by.cron),
                    ", ".join(p.shares) or "none",
                    ", ".join(f for f in ALL_SHAREABLE if f not in p.shares) or "nothing",
                )
                for p in agreement.partners
            ),
        ),
        Table(
            ("Field", "What it is"),
            tuple((name, FIELD_MEANING[name]) for name in ALL_SHAREABLE),
        ),
        Heading("Identifiers: what never leaves an agency"),
        Items(
            (
                "Names, NHS numbers, dates of birth, full postcodes, local identifiers and"
                " free text are read by the agency's adapter, on the agency's own machine,"
                " and never sent.",
                "Each child and record is sent as a keyed pseudonym (HMAC-SHA-256 under the"
                " partnership key, which the agencies hold and the hub does not): a child"
                " known by the same NHS number, or the same name and date of birth, has the"
                " same pseudonym at every agency (a local identifier only within its"
                " agency), and no one without the key can work back from it.",
                "A date of birth becomes an age band on the event date; a postcode becomes"
                " the partnership area it lies in; a risk, platform or outcome term becomes"
                " a code from a closed list.",
                "A row that cannot be minimised is refused at the agency, with the file,"
                " row and field named; it never reaches the hub.",
            )
        ),
        Heading("Who can read what"),
        Table(
            ("Principal", "May read"),
            tuple((r.principal, ", ".join(r.topics)) for r in agreement.readers)
            or (("(no readers listed)", ""),),
        ),
        Para(
            f"The hub's stream workers ({agreement.services.workers.principal}) read the"
            " partners' topics; its publisher"
            f" ({agreement.services.publisher.principal}) alone writes the published"
            " trends. No partner can read another partner's topic."
        ),
        Heading("Timetable"),
        Table(
            ("Publication", "Closes", "Released", "Next releases", "Topic"),
            tuple(
                (
                    s.name,
                    f"each {s.closes}",
                    cron_in_words(s.at.cron)
                    + (f" ({s.timezone})" if s.timezone and s.timezone != zone else ""),
                    _next(agreement, s, now, 3),
                    s.topic,
                )
                for s in agreement.publication
            ),
        ),
        Para(
            "Each release publishes the period that has just closed; data arriving late"
            " or corrected afterwards is published as a new revision of that period at the"
            " next scheduled time. Nothing is published before its period has ended."
            + _approval(agreement)
        ),
        Heading("Disclosure control"),
        Items(_disclosure(agreement)),
        Heading("Retention"),
        Items(
            (
                f"Case events: {agreement.retention.case_events_days} days on the partners'"
                " topics, and what the hub derives from each (the record versions its stream"
                " workers and publisher hold) as long, from the day it was shared. A period"
                " not yet published counts no record past that; a published period is no"
                " longer revised once its records may have passed it.",
                "Published trends: "
                + (
                    f"{agreement.retention.trends_days} days."
                    if agreement.retention.trends_days
                    else "kept."
                ),
                "The audit trail: "
                + (
                    f"{agreement.retention.audit_days} days."
                    if agreement.retention.audit_days
                    else "kept."
                ),
                f"At each agency, events its adapter sent: {agreement.retention.outbox_days}"
                " days after Kafka took them (a live record's last event stays while the record"
                " is live, so that its withdrawal can be sent); reports of rejected rows:"
                f" {agreement.retention.quarantine_keep_days} days.",
            )
        ),
        Heading("The audit trail"),
        Para(
            "The hub records what is done with the data on its own topic,"
            " `partnership.audit.v1`, which is never compacted: every release, every change"
            " of the access rules applied to the cluster, every key rotation (by key id, never"
            " the key), every change of this agreement as applied (its SHA-256 and what"
            " changed) and every agency submission (rows read, new, corrected, withdrawn,"
            " unchanged and rejected by field). No entry holds an identifier or a pseudonym."
            " Partners and the publisher may write it and not read it; it is read with"
            " `hub audit` by the operator"
            + (
                " and by " + ", ".join(f"`{r}`" for r in agreement.audit.readers) + "."
                if agreement.audit.readers
                else " only."
            )
        ),
        Heading("What is recorded of each release"),
        Items(
            (
                "Every published cell carries its publication, period and revision number;"
                " each revision stays on the publication's topic (see Retention).",
                "Every release, scheduled or forced, is an entry of the audit trail"
                " (`partnership.audit.v1`), written in the release's own transaction: who"
                " released it and when, the cells published and withheld (as primary,"
                " secondary and linked suppressions) and, for a release forced outside the"
                " timetable (`hub publish --now`), the reason given.",
            )
        ),
    ]
    if agreement.areas:
        blocks += [
            Heading("Areas"),
            Table(
                ("Code", "Name", "Also written as"),
                tuple((a.code, a.name, ", ".join(a.aliases)) for a in agreement.areas),
            ),
        ]
    if agreement.local_risk_codes:
        blocks += [
            Heading("Local risk codes"),
            Table(
                ("Code", "Counted under", "Meaning"),
                tuple((c.code, c.cell, c.label) for c in agreement.local_risk_codes),
            ),
        ]
    return blocks


def _disclosure(agreement: Agreement) -> tuple[str, ...]:
    rule = agreement.disclosure
    items = [
        f"No count from 1 to {rule.suppress_at_or_below} is published: such a cell is"
        " shown as suppressed.",
        f"Every other count is rounded to the nearest {rule.round_to}.",
    ]
    if rule.secondary_suppression:
        items.append(
            "Further cells are suppressed where a suppressed count could otherwise be"
            " worked out from a total, from the months of a quarter or from an earlier"
            " revision."
        )
    else:
        items.append("No secondary suppression.")
    return tuple(items)


def markdown(blocks: Iterable[Block]) -> str:
    out: list[str] = []
    first = True
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' if first else '##'} {block.text}")
            first = False
        elif isinstance(block, Para):
            out.append(block.text)
        elif isinstance(block, Items):
            out.append("\n".join(f"- {item}" for item in block.items))
        else:
            cells = [block.header, tuple("---" for _ in block.header), *block.rows]
            out.append(
                "\n".join("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells)
            )
    return "\n\n".join(out) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """Escaped HTML, with `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def page(blocks: Iterable[Block]) -> str:
    body: list[str] = []
    title = ""
    for block in blocks:
        if isinstance(block, Heading):
            tag = "h1" if not title else "h2"
            title = title or block.text
            body.append(f"<{tag}>{_inline(block.text)}</{tag}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Items):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        else:
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}"
        "th,td{border:1px solid #999;padding:.3em .5em;text-align:left;vertical-align:top}"
        "code{font-size:.9em}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _approval(agreement: Agreement) -> str:
    """Which publications a second person checks before anyone sees them, and who."""
    checked = [s.name for s in agreement.publication if s.approval == "two-person"]
    if not checked:
        return " Releases are published as soon as they are computed."
    approvers = ", ".join(f"`{a}`" for a in agreement.approval.approvers)
    return (
        f" Releases of {', '.join(checked)} are staged, seen by no reader, until one of"
        f" {approvers} (never who staged it) approves them; a rejected release is never"
        " published. Both are recorded on the audit trail."
    )
