"""A seeded partnership: children, six months of case records at nine agencies, and
the monthly export files each agency's system writes (tests/e2e/agencies.py).

Everything the ground truth needs is kept here in the generator's own terms:
each record's true child, its date, and its content export by export (which
changes when the agency corrects it), and when it stopped being live (a
withdrawal row, a "Cancelled" status, or a row gone from a full snapshot).
Rows the generator deliberately makes invalid are kept apart (`BadRow`) and
are never part of any record.

What the exports hold, as agencies really send them:

* full snapshots (police, education, youth service, relationships, voluntary):
  every live record every month; a deleted record's row disappears;
* incremental files (camhs, spa, school nursing, counselling): only the rows
  new or changed since the last file; camhs withdraws a referral with a
  "Referral Withdrawn" activity row;
* no version column anywhere: a correction is the same record with other content;
* the youth service's file is its .xlsx workbook: real date cells mostly, dates
  typed as text in a few rows;
* late records (dated in an earlier month than the first file holding them),
  re-sent files (`Scenario.resent`), police occurrences with two or three
  children, camhs referrals with several activity rows, and identifiers as
  each agency holds them (NHS-number-only rows, names written differently).
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import random
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from itertools import count
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.writer.excel import ExcelWriter

from tests.e2e.agencies import (
    AGENCIES,
    CAMHS,
    COUNSELLING,
    EDUCATION,
    NO,
    NOT_ASSESSED,
    POLICE,
    RELATIONSHIPS,
    SCHOOL_NURSING,
    SPA,
    VOLUNTARY,
    YES,
    YOUTH,
    Agency,
    Cells,
    Content,
    DateCell,
    Shown,
)

MONTHS: tuple[str, ...] = ("2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06")
LAST = len(MONTHS) - 1

FAMILY = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Khan", "Ahmed", "Wright", "Walker", "Thompson", "Evans", "Roberts", "Hughes", "Green",
    "Hall", "Wood", "Clarke", "Lewis", "Harris", "Begum", "Nowak", "Hussain", "Robinson",
    "O'Brien", "D'Souza", "O'Connor", "Smith-Jones", "Ward-Hill", "McDonald", "MacLeod",
    "Le Roux", "Núñez", "Müller", "Hernández", "Brontë", "Gonçalves",
)  # fmt: skip
GIRLS = (
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Ivy", "Lily", "Freya", "Ella", "Grace",
    "Sophia", "Ruby", "Evie", "Aisha", "Fatima", "Harper", "Layla", "Maya", "Priya", "Zoë",
    "Chloé", "Renée", "Amélie", "Siobhán", "Noémie", "Anaïs", "Mary-Jane",
)  # fmt: skip
BOYS = (
    "Noah", "Oliver", "George", "Leo", "Arthur", "Muhammad", "Harry", "Oscar", "Jack",
    "Charlie", "Jacob", "Kai", "Ryan", "Tyler", "Logan", "Ethan", "Mason", "José", "Seán",
    "Rónán", "Jean-Luc",
)  # fmt: skip
OUTWARD = ("LS6", "LS7", "LS8", "LS9", "LS11", "LS12", "BD3", "WF1")
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
UPN_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def month_start(month: int) -> date:
    return date.fromisoformat(f"{MONTHS[month]}-01")


def month_end(month: int) -> date:
    start = month_start(month)
    return start.replace(day=calendar.monthrange(start.year, start.month)[1])


def month_of(day: date) -> int:
    return MONTHS.index(day.isoformat()[:7])


def nhs_check_digit(nine: str) -> int | None:
    """The mod-11 check digit of nine digits; None when there is none (remainder 10)."""
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return None if check == 10 else check % 11


def upn_check_letter(twelve: str) -> str:
    return UPN_LETTERS[sum(int(d) * w for d, w in zip(twelve, range(2, 14), strict=True)) % 23]


def plain(text: str) -> str:
    """Without accents: what a system that cannot store them writes."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold(text: str) -> str:
    """The same person's name however an agency wrote it (case, spaces, accents, '-)."""
    return "".join(ch for ch in plain(text).casefold() if ch.isalnum())


@dataclass(frozen=True)
class Child:
    number: int
    family: str
    given: str
    born: date
    sex: str  # F / M
    nhs: str  # ten digits, mod-11 checked
    police_id: str
    spa_id: str
    upn: str
    postcode: str
    user_id: str = ""  # the counselling provider's anonymous id (counselling users only)


def written_name(agency: Agency, child: Child) -> tuple[str, str]:
    """The child's (family, given) name as this agency's staff write it: never respelt."""
    habit = {"police": 4, "camhs": 1, "spa": 0, "school-nursing": 0, "education": 0}.get(
        agency.name, (child.number + len(agency.name)) % 4
    )
    family, given = child.family, child.given
    if habit == 1:
        return family.upper(), given
    if habit == 2:
        return plain(family).replace("'", ""), plain(given)
    if habit == 3:
        return f"{family.lower().replace('-', ' ')} ", f" {given.lower()}"
    if habit == 4:
        return plain(family).upper(), plain(given).upper()
    return family, given


@dataclass(eq=False)
class Record:
    """One source record at one agency, export by export."""

    agency: Agency
    identity: tuple[str, ...]  # what makes it one record (e.g. occurrence + person)
    child: Child | None  # None: no identifier at all (an anonymous counselling session)
    when: datetime
    first: int  # the first export (month index) holding it
    contents: dict[int, Content]  # export month -> its content from that export on
    style: int  # stable per record: date format, online word, name habits
    nhs_only: bool = False  # camhs / school nursing: only the NHS number on the row
    bridge: bool = False  # NHS number with name and DOB for a child with NHS-only rows
    ended: int | None = None  # the export from which it is withdrawn
    deleted: bool = False  # full snapshots: withdrawn by its row disappearing

    @property
    def record_id(self) -> str:
        return self.identity[0]

    def content(self, month: int) -> Content:
        return self.contents[max(m for m in self.contents if m <= month)]

    @property
    def final(self) -> Content:
        return self.content(LAST)

    @property
    def live(self) -> bool:
        """Counts after every export: not withdrawn, deleted or a withdrawal itself."""
        return self.ended is None and not self.final.withdrawn

    @property
    def codes(self) -> tuple[str, ...]:
        return self.agency.codes(self.final.risks)

    @property
    def late(self) -> bool:
        return self.first > month_of(self.when.date())

    def in_file(self, month: int) -> bool:
        if self.first > month:
            return False
        if self.agency.full:
            return not (self.deleted and self.ended is not None and self.ended <= month)
        return month in self.contents

    def shown(self, month: int) -> Shown:
        content = self.content(month)
        child, agency = self.child, self.agency
        words = agency.online.get(content.online, ("",))
        platform = ""
        if content.online == YES and agency.platforms:
            platform = agency.platforms[self.style % len(agency.platforms)]
        if child is None:
            return Shown(self.record_id, "", "", "", None, "", "F", "", self.when, self.style,
                         content, words[self.style % len(words)], platform)  # fmt: skip
        family, given = ("", "") if self.nhs_only else written_name(agency, child)
        person = {
            "police": child.police_id,
            "spa": child.spa_id,
            "education": child.upn,
            "counselling": child.user_id,
        }.get(agency.name, "")
        nhs = child.nhs if agency.name in ("camhs", "school-nursing") else ""
        if agency.name == "spa" and self.style % 5 < 2:
            nhs = child.nhs
        return Shown(
            record_id=self.record_id,
            person_id=person,
            family=family,
            given=given,
            born=None if self.nhs_only else child.born,
            nhs=nhs,
            sex=child.sex,
            postcode=child.postcode,
            when=self.when,
            style=self.style,
            content=content,
            online_word=words[self.style % len(words)],
            platform=platform,
        )


@dataclass(frozen=True)
class BadRow:
    """A row the agency's system let through that no adapter should accept."""

    agency: Agency
    identity: tuple[str, ...]
    months: range  # the exports that hold it
    when: datetime  # where it sorts in a file
    cells: Cells  # as written, the bad value included
    raw: str = ""  # a JSON line as sent, when it is not even JSON
    why: str = ""


@dataclass(frozen=True)
class Row:
    """What the generator knows about one row of a written file."""

    identity: tuple[str, ...]
    content: Content | None  # None: a row it made invalid on purpose
    linkable: bool  # carries an identifier of a child


@dataclass(frozen=True)
class Export:
    agency: Agency
    month: int
    path: Path
    rows: tuple[Row, ...]


@dataclass
class Scenario:
    children: list[Child]
    records: list[Record]
    bad: list[BadRow]
    #: (agency, month) -> the earlier month whose file is re-sent (an identical copy)
    #: in the same run, just before that month's own file.
    resent: dict[tuple[str, int], int] = field(default_factory=dict)

    def of(self, agency: Agency) -> list[Record]:
        return [r for r in self.records if r.agency is agency]

    def rows(self, agency: Agency, month: int) -> list[tuple[datetime, Row, Cells, str]]:
        """The file's rows in the order the agency's system writes them (by date)."""
        rows: list[tuple[datetime, Row, Cells, str]] = []
        for r in self.of(agency):
            if r.in_file(month):
                shown = r.shown(month)
                linkable = r.child is not None
                cells = agency.render(shown)
                rows.append((r.when, Row(r.identity, r.content(month), linkable), cells, ""))
        for bad in self.bad:
            if bad.agency is agency and month in bad.months:
                rows.append((bad.when, Row(bad.identity, None, True), bad.cells, bad.raw))
        rows.sort(key=lambda item: (item[0], item[1].identity))
        return rows

    def write(self, folder: Path) -> dict[tuple[str, int], Export]:
        """Every agency's file for every month, in `folder`, as the agency writes it."""
        folder.mkdir(parents=True, exist_ok=True)
        written: dict[tuple[str, int], Export] = {}
        for agency in AGENCIES:
            for month in range(len(MONTHS)):
                path = folder / f"{agency.name}-{MONTHS[month]}{agency.suffix}"
                rows = self.rows(agency, month)
                path.write_bytes(_encode(agency, rows, month))
                written[agency.name, month] = Export(
                    agency, month, path, tuple(row for _, row, _, _ in rows)
                )
        return written


def _encode(agency: Agency, rows: list[tuple[datetime, Row, Cells, str]], month: int) -> bytes:
    if agency.suffix == ".xlsx":
        return _workbook(agency, [cells for _, _, cells, _ in rows], month)
    if agency.suffix == ".jsonl":
        lines = [raw or json.dumps(cells, ensure_ascii=False) for _, _, cells, raw in rows]
        return "".join(f"{line}\n" for line in lines).encode(agency.encoding)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=agency.delimiter, lineterminator=agency.newline)
    writer.writerow(agency.headers())
    for _, _, cells, _ in rows:
        writer.writerow([str(cells[h]) for h in agency.headers()])
    return out.getvalue().encode(agency.encoding)


def _workbook(agency: Agency, rows: list[Cells], month: int) -> bytes:
    """The sheet as a worker keeps it: a blank row, then the header, frozen and filtered;
    date cells shown as typed (text where typed as text); blanks left empty.

    The same rows give the same bytes: the saved times (docProps/core.xml and
    every zip entry's) are the export's, never the clock's.
    """
    book = Workbook()
    sheet = book.active
    sheet.title = "Sessions"
    headers = agency.headers()
    for column, header in enumerate(headers, start=1):
        sheet.cell(row=2, column=column, value=header).font = Font(bold=True)
        sheet.column_dimensions[get_column_letter(column)].width = max(10, len(header) + 4)
    for number, cells in enumerate(rows, start=3):
        for column, header in enumerate(headers, start=1):
            value = cells[header]
            if isinstance(value, DateCell):
                cell = sheet.cell(row=number, column=column, value=value.day)
                cell.number_format = value.number_format
            elif value != "":
                sheet.cell(row=number, column=column, value=value)
    sheet.freeze_panes = "A3"
    sheet.auto_filter.ref = f"A2:{get_column_letter(len(headers))}{len(rows) + 2}"
    saved = datetime.combine(month_end(month) + timedelta(days=3), time(16, 42))
    book.properties.creator = "Integrated Youth Service"
    book.properties.lastModifiedBy = "Youth Worker"
    book.properties.created = datetime(2025, 9, 1, 9, 15)
    book.properties.modified = saved
    written = io.BytesIO()
    ExcelWriter(book, zipfile.ZipFile(written, "w", zipfile.ZIP_DEFLATED)).save()
    fixed = io.BytesIO()
    with (
        zipfile.ZipFile(written) as source,
        zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename, saved.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read(entry))
    return fixed.getvalue()


class _Builder:
    def __init__(self, seed: int, children: int, users: int) -> None:
        self.rng = random.Random(seed)
        self.serial = count(1001)
        self.children: list[Child] = []
        self._keys: set[str] = set()
        while len(self.children) < children:
            self._add_child("")
        while len(self.children) < children + users:
            self._add_child(f"u_{self.rng.getrandbits(40):010x}")
        self.known = self.children[:children]
        self.users = self.children[children:]
        # Some children are known to many services, most to one or two.
        self.weights = [self.rng.paretovariate(1.6) for _ in self.known]
        self.user_weights = [self.rng.paretovariate(1.3) for _ in self.users]
        self.records: list[Record] = []
        self.bad: list[BadRow] = []
        self._bridged: set[tuple[str, int]] = set()

    # --- population --------------------------------------------------------------------
    def _add_child(self, user_id: str) -> None:
        rng = self.rng
        number = len(self.children)
        born = date(2008, 7, 1) + timedelta(
            days=rng.randrange((date(2017, 12, 31) - date(2008, 7, 1)).days)
        )
        sex = rng.choice("FFFM")
        family, given = rng.choice(FAMILY), rng.choice(GIRLS if sex == "F" else BOYS)
        key = f"{fold(family)}|{fold(given)}|{born}"
        if key in self._keys:
            return
        self._keys.add(key)
        check: int | None = None
        nine = ""
        while check is None:
            nine = f"4{rng.randrange(10**8):08d}"
            check = nhs_check_digit(nine)
        school = f"{rng.choice(('370', '380', '381'))}{rng.randrange(10**4):04d}"
        upn = f"{school}{born.year % 100 + 4:02d}{number:03d}"
        self.children.append(
            Child(
                number=number,
                family=family,
                given=given,
                born=born,
                sex=sex,
                nhs=f"{nine}{check}",
                police_id=f"PN{700000 + number * 13:07d}",
                spa_id=f"{3100000 + number * 7}",
                upn=f"{upn_check_letter(upn)}{upn}",
                postcode=f"{rng.choice(OUTWARD)} {rng.randint(1, 9)}"
                f"{rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}",
                user_id=user_id,
            )
        )

    def child(self) -> Child:
        return self.rng.choices(self.known, self.weights)[0]

    def user(self) -> Child:
        return self.rng.choices(self.users, self.user_weights)[0]

    # --- records -----------------------------------------------------------------------
    def when(self, month: int, late: float = 0.0) -> tuple[datetime, int]:
        """A moment in `month` (or, `late` of the time, an earlier one) and its first export."""
        dated = month
        if month > 0 and self.rng.random() < late:
            dated = max(0, month - self.rng.choice((1, 1, 2)))
        day = month_start(dated) + timedelta(days=self.rng.randrange(month_end(dated).day))
        hour, minute = self.rng.randint(8, 18), self.rng.choice((0, 10, 25, 40, 55))
        at = datetime(day.year, day.month, day.day, hour, minute)
        return at, month

    def risks(self, agency: Agency, most: int = 2) -> tuple[str, ...]:
        words = list(agency.risks)
        weights = [1 / (i + 1) ** 0.8 for i in range(len(words))]
        chosen: list[str] = []
        for _ in range(self.rng.choice((1, 1, 1, 2)) if most > 1 else 1):
            word = self.rng.choices(words, weights)[0]
            if word not in chosen:
                chosen.append(word)
        return tuple(chosen)

    def add(
        self,
        agency: Agency,
        identity: tuple[str, ...],
        child: Child | None,
        at: datetime,
        first: int,
        content: Content,
    ) -> Record:
        record = Record(
            agency, identity, child, at, first, {first: content}, self.rng.randrange(1000)
        )
        if child is not None and agency.name in ("camhs", "school-nursing"):
            if (agency.name, child.number) not in self._bridged:
                self._bridged.add((agency.name, child.number))
                record.bridge = True
            else:
                record.nhs_only = self.rng.random() < 0.3
        self.records.append(record)
        return record

    def open_records(self, agency: Agency, month: int) -> list[Record]:
        """Records already sent and still live when `month`'s export is made."""
        return [
            r
            for r in self.records
            if r.agency is agency
            and r.first < month
            and r.ended is None
            and not r.content(month).withdrawn
        ]

    def correct(
        self, agency: Agency, month: int, share: float, change: Callable[[Content], Content]
    ) -> None:
        candidates = self.open_records(agency, month)
        for record in self.rng.sample(candidates, round(share * len(candidates))):
            self.change(record, month, change(record.content(month)))

    def change(self, record: Record, month: int, after: Content) -> None:
        """A correction in `month`'s export, if it changes what the record says."""
        before = record.content(month)
        if record.agency.meaning(after) != record.agency.meaning(before):
            record.contents[month] = after

    def delete(self, agency: Agency, month: int, share: float) -> None:
        candidates = [r for r in self.open_records(agency, month) if not r.bridge]
        for record in self.rng.sample(candidates, round(share * len(candidates))):
            record.ended, record.deleted = month, True

    def new_outcome(self, agency: Agency) -> Callable[[Content], Content]:
        return lambda c: replace(c, outcome=self.rng.choice(agency.outcomes[1:]))

    def more_risk(self, agency: Agency) -> Callable[[Content], Content]:
        assert not agency.online, "only for agencies whose risk words are the online field"

        def change(c: Content) -> Content:
            held = set(agency.codes(c.risks))
            words = [w for w in agency.risks if not set(agency.codes((w,))) <= held]
            risks = (*c.risks, self.rng.choice(words)) if words else c.risks
            return replace(c, risks=risks, online=agency.online_of(risks))

        return change


# --- per agency --------------------------------------------------------------------------------
def _camhs(b: _Builder, month: int) -> None:
    rng = b.rng
    rows = Counter(r.record_id for r in b.records if r.agency is CAMHS)
    for referral in b.open_records(CAMHS, month):
        # Only a referral nobody has seen yet (no later activity, no pending change).
        alone = rows[referral.record_id] == 1 and max(referral.contents) < month
        if alone and not referral.bridge and rng.random() < 0.5:
            at, _ = b.when(month)
            withdrawn = Content(CAMHS.withdrawal, NOT_ASSESSED, (), "", withdrawn=True)
            identity = (referral.record_id, CAMHS.withdrawal, at.date().isoformat())
            b.add(CAMHS, identity, referral.child, at, month, withdrawn)
            referral.ended = month
    b.correct(CAMHS, month, 0.08, b.new_outcome(CAMHS))
    for _ in range(24):
        _camhs_referral(b, month)


def _camhs_referral(b: _Builder, month: int) -> None:
    rng = b.rng
    child, (at, first) = b.child(), b.when(month, late=0.1)
    ref = f"RF{next(b.serial):07d}"
    concern = rng.random() < 0.7
    risks = b.risks(CAMHS) if concern else ()
    asked = rng.random() < 0.55
    online = (YES if asked else NOT_ASSESSED) if concern else rng.choice((NO, NOT_ASSESSED))
    opened = Content("Referral", online, risks if online == YES else (), CAMHS.outcomes[0])
    referral = b.add(CAMHS, (ref, "Referral", at.date().isoformat()), child, at, first, opened)
    if concern and not asked and first < LAST and rng.random() < 0.6:
        # Asked about at triage: the referral is corrected to say so, in a later file.
        referral.contents[rng.randint(first + 1, LAST)] = replace(opened, online=YES, risks=risks)
    seen = replace(opened, online=YES if concern else NO, risks=risks)
    for activity, gap, chance in (("Choice Appointment", 14, 0.75), ("Discharge", 25, 0.6)):
        at = at + timedelta(days=rng.randint(gap, gap + 30), hours=rng.randint(-2, 2))
        if at.date() > month_end(LAST) or rng.random() > chance:
            return
        if activity == "Discharge":
            seen = replace(seen, event=activity, outcome=rng.choice(CAMHS.outcomes[1:]))
        else:
            seen = replace(seen, event=activity)
        due = month_of(at.date())
        first = min(LAST, due + 1) if rng.random() < 0.08 else due
        b.add(CAMHS, (ref, activity, at.date().isoformat()), child, at, first, seen)


def _police(b: _Builder, month: int) -> None:
    occurrences: dict[str, list[Record]] = {}
    for r in b.open_records(POLICE, month):
        occurrences.setdefault(r.record_id, []).append(r)
    for rows in occurrences.values():
        _police_update(b, rows, month)
    for _ in range(26):
        _police_occurrence(b, month)


def _police_update(b: _Builder, rows: list[Record], month: int) -> None:
    """What happens to one occurrence before this month's snapshot, if anything."""
    roll = b.rng.random()
    if roll < 0.04:  # cancelled: every person's row stays, marked Cancelled
        for r in rows:
            r.contents[month] = replace(r.content(month), event="Cancelled", withdrawn=True)
            r.ended = month
    elif roll < 0.08 and len(rows) > 1:  # a person taken off the occurrence
        removed = b.rng.choice(rows)
        removed.ended, removed.deleted = month, True
    elif roll < 0.40:  # outcome recorded: every person's row changes
        outcome = b.rng.choice(POLICE.outcomes[1:])
        for r in rows:
            b.change(r, month, replace(r.content(month), outcome=outcome))
    elif roll < 0.46:  # reclassified as online with another offence
        risks = b.risks(POLICE)
        for r in rows:
            b.change(r, month, replace(r.content(month), online=YES, risks=risks))


def _police_occurrence(b: _Builder, month: int) -> None:
    rng = b.rng
    at, first = b.when(month, late=0.1)
    occ = f"{13 + month:02d}/{next(b.serial):06d}/26"
    online = rng.random() < 0.75
    risks = b.risks(POLICE) if online else (rng.choice(("Harassment", "Stalking")),)
    event = rng.choices(POLICE.events, (7, 2, 1))[0]
    people: list[Child] = []
    for _ in range(rng.choices((1, 2, 3), (55, 30, 15))[0]):
        child = b.child()
        if child not in people:
            people.append(child)
    for i, child in enumerate(people):
        role = "Victim" if i == 0 else rng.choice(POLICE.roles)
        content = Content(event, YES if online else NO, risks, POLICE.outcomes[0], role=role)
        b.add(POLICE, (occ, child.police_id), child, at, first, content)


def _simple(
    b: _Builder,
    agency: Agency,
    month: int,
    new: int,
    prefix: str,
    online_share: float,
    make: Callable[[tuple[str, ...], str], Content],
) -> None:
    """New records of an agency that writes one row per contact."""
    for _ in range(new):
        at, first = b.when(month, late=0.1)
        risks = b.risks(agency) if b.rng.random() < online_share else ()
        online = agency.online_of(risks)
        if agency.online:
            online = YES if risks else b.rng.choice((NO, NO, NOT_ASSESSED))
        child = b.child()
        b.add(agency, (f"{prefix}{next(b.serial)}",), child, at, first, make(risks, online))


def _spa(b: _Builder, month: int) -> None:
    b.correct(SPA, month, 0.05, b.new_outcome(SPA))
    b.correct(SPA, month, 0.04, b.more_risk(SPA))

    def make(risks: tuple[str, ...], online: str) -> Content:
        event = b.rng.choices(SPA.events, (5, 3, 2, 1))[0]
        level = b.rng.choice(SPA.levels)
        return Content(event, online, risks, SPA.outcomes[0], level=level)

    _simple(b, SPA, month, 36, "40", 0.6, make)


def _school_nursing(b: _Builder, month: int) -> None:
    b.correct(SCHOOL_NURSING, month, 0.06, b.new_outcome(SCHOOL_NURSING))

    def asked(c: Content) -> Content:  # "Not discussed" becomes "Yes" at a follow-up
        if c.online != NOT_ASSESSED:
            return c
        return replace(c, online=YES, risks=b.risks(SCHOOL_NURSING, 1))

    b.correct(SCHOOL_NURSING, month, 0.15, asked)

    def make(risks: tuple[str, ...], online: str) -> Content:
        event = b.rng.choices(SCHOOL_NURSING.events, (4, 3, 2, 1))[0]
        return Content(event, online, risks, SCHOOL_NURSING.outcomes[0])

    _simple(b, SCHOOL_NURSING, month, 36, "SN", 0.6, make)


def _education(b: _Builder, month: int) -> None:
    b.delete(EDUCATION, month, 0.03)
    b.correct(EDUCATION, month, 0.12, b.new_outcome(EDUCATION))
    b.correct(EDUCATION, month, 0.05, b.more_risk(EDUCATION))

    def make(risks: tuple[str, ...], online: str) -> Content:
        event = b.rng.choices(EDUCATION.events, (5, 2, 2, 1))[0]
        role = b.rng.choices(EDUCATION.roles, (5, 2, 1))[0]
        return Content(event, online, risks, EDUCATION.outcomes[0], role=role)

    _simple(b, EDUCATION, month, 36, "", 0.85, make)


def _spreadsheet(b: _Builder, agency: Agency, month: int, new: int, prefix: str) -> None:
    """Youth service, relationships and voluntary: a sheet kept whole, sent whole."""
    b.delete(agency, month, 0.04)
    b.correct(agency, month, 0.10, b.new_outcome(agency))
    b.correct(agency, month, 0.04, b.more_risk(agency))

    def make(risks: tuple[str, ...], online: str) -> Content:
        return Content(b.rng.choice(agency.events), online, risks, agency.outcomes[0])

    _simple(b, agency, month, new, prefix, 0.75, make)


def _counselling(b: _Builder, month: int) -> None:
    rng = b.rng
    b.correct(COUNSELLING, month, 0.06, b.new_outcome(COUNSELLING))
    b.correct(COUNSELLING, month, 0.04, b.more_risk(COUNSELLING))
    registered = {r.child.number for r in b.records if r.agency is COUNSELLING and r.child}
    for _ in range(40):
        at, first = b.when(month, late=0.05)
        child = None if rng.random() < 0.08 else b.user()
        risks = b.risks(COUNSELLING) if rng.random() < 0.75 else ()
        event = rng.choices(COUNSELLING.events[0::2], (8, 1))[0]
        if child is not None and child.number not in registered:
            registered.add(child.number)
            event = "registration"
        content = Content(event, COUNSELLING.online_of(risks), risks, COUNSELLING.outcomes[0])
        b.add(COUNSELLING, (f"s_{rng.getrandbits(48):012x}",), child, at, first, content)


def _bad_rows(b: _Builder) -> None:
    """Rows no adapter should accept, each in the month(s) its agency's file holds it."""

    def bad(agency: Agency, month: int, until: int, **wrong: str) -> None:
        at, _ = b.when(month)
        content = Content(agency.events[0], YES, (next(iter(agency.risks)),), agency.outcomes[0])
        identity = (f"X{next(b.serial)}",)
        template = Record(agency, identity, b.child(), at, month, {month: content}, 7)
        cells = {**agency.render(template.shown(month)), **wrong}
        b.bad.append(BadRow(agency, template.identity, range(month, until), at, cells))

    bad(CAMHS, 2, 3, **{"NHS Number": "401 023 2138"})  # wrong check digit
    bad(POLICE, 1, LAST + 1, DOB="14/03/2027")  # born after the occurrence
    bad(SCHOOL_NURSING, 3, 4, **{"Contact Date": "30 Feb 2026"})
    bad(EDUCATION, 4, LAST + 1, **{"Date/Time": "31/04/2026 09:10"})
    bad(VOLUNTARY, 2, LAST + 1, **{"Online concern": "Other - see notes"})
    # The youth worker typed 31/02/2026; in April's sheet it is fixed to 27/02/2026.
    at = datetime(2026, 2, 27, 16, 0)
    ref = f"Y{next(b.serial)}"
    fixed = b.add(YOUTH, (ref,), b.child(), at, 3, Content("1:1", YES, ("Nudes",), "Ongoing work"))
    shown = fixed.shown(3)
    typed = {**YOUTH.render(shown), "Date of Session": "31/02/2026"}
    b.bad.append(BadRow(YOUTH, (ref,), range(1, 3), at, typed))
    at, _ = b.when(4)
    line = '{"session_id": "s_truncated01", "event": "chat_session", "session_date": "2026-05-'
    b.bad.append(BadRow(COUNSELLING, ("s_truncated01",), range(4, 5), at, {}, raw=line))


def build(seed: int = 2026, children: int = 340, users: int = 60) -> Scenario:
    """The partnership's six months, the same for the same seed."""
    b = _Builder(seed, children, users)
    for month in range(len(MONTHS)):
        _camhs(b, month)
        _police(b, month)
        _spa(b, month)
        _school_nursing(b, month)
        _education(b, month)
        _spreadsheet(b, YOUTH, month, 24, "Y")
        _spreadsheet(b, RELATIONSHIPS, month, 14, "RT-")
        _spreadsheet(b, VOLUNTARY, month, 18, "")
        _counselling(b, month)
    _bad_rows(b)
    resent = {
        ("police", 1): 0,
        ("camhs", 2): 1,
        ("education", 2): 1,
        ("counselling", 3): 2,
        ("youth-service", 4): 3,
        ("spa", 4): 3,
        ("school-nursing", 5): 4,
        ("voluntary", 5): 4,
    }
    return Scenario(b.children, b.records, b.bad, resent)
