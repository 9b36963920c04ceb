"""Synthetic exports in each agency profile's own shape, with the mess real exports have.

`write_export` renders rows for any shipped profile: its header variants,
vocabulary, date formats, text encoding and file format, plus byte-order
marks, blank and duplicated rows, trailing spaces, values outside the
vocabulary and accented names, and returns what the mapper must make of
each row so tests can check fields, not just counts.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import ClassVar, TypeVar

from adapters.profile import PROFILES_DIR, Profile, SourceField, vocabulary_key
from adapters.synth.cases import (
    DISTRICTS,
    Child,
    nhs_number,
)
from hub.minimise import Minimiser, age_on
from hub.models import (
    AgencyType,
    EventType,
    LinkageBasis,
    OnlineComponent,
    Outcome,
    PlatformType,
    Role,
    Sex,
    Vulnerability,
)
from hub.yamlfile import YamlSyntaxError, read_yaml

#: Postcode district -> the town an anonymous service records as the user's area, and
#: that area's code in the example agreement (deploy/agreement/example.yaml, ``areas:``).
_TOWNS = {
    "DY1": ("Dudley", "dudley"),
    "DY2": ("Netherton", "netherton"),
    "DY3": ("Sedgley", "sedgley"),
    "DY5": ("Brierley Hill", "brierley-hill"),
    "DY8": ("Stourbridge", "stourbridge"),
    "B62": ("Halesowen", "halesowen"),
    "B63": ("Halesowen", "halesowen"),
    "WV14": ("Bilston", "bilston"),
}
#: Invented names with accents, so cp1252 exports carry bytes UTF-8 cannot decode.
_ACCENTED = (("Lefèvre", "Zoë"), ("Müller", "Renée"), ("Núñez", "José"), ("Brontë", "Chloé"))
_BAD_TERMS = ("see notes", "TBC", "other - see case file", "??", "N/K - ask worker")
_BAD_DATES = ("TBC", "31/02/2026", "2026-02-30", "Feb 2026", "00/00/0000")
_EXTRA_COLUMNS = ("Entered By", "Worker", "Team", "Recorded by")
_EXTRA_KEYS = ("channel", "client_version")
_RECORD_IDS = {
    AgencyType.POLICE: "{seed:02d}/{n:06d}/26",
    AgencyType.COUNSELLING: "s-{seed}-{n:08x}",
    AgencyType.EDUCATION: "{n}{seed:03d}",
}
_FAULT_RATE = 0.07
#: Fields where a term not in the profile's vocabulary rejects the row (an unknown
#: platform term is only noted, and so is a risk term mostly: see `_fault`).
_TERM_FIELDS: tuple[SourceField, ...] = (
    "event_type",
    "sex",
    "threshold_level",
    "online_component",
    "role",
    "outcome",
)
V = TypeVar("V")


@dataclass
class ExpectedRow:
    """What the mapper must make of one written data row.

    `row` is the row number the source reports (a CSV's header is line 1).
    `rejected` names the field the mapper must reject, None when the row maps;
    then the other fields are what the event holds before the agreement drops
    the fields this agency may not share. `duplicate_of` is the row this one
    repeats byte for byte.
    """

    row: int
    record_id: str
    child: Child
    occurred_on: date
    rejected: SourceField | None = None
    duplicate_of: int | None = None
    basis: LinkageBasis | None = None
    event_type: EventType = EventType.CONTACT
    age_band: str = "unknown"
    sex: Sex = Sex.UNKNOWN
    area_code: str = "unknown"
    vulnerabilities: tuple[Vulnerability, ...] = ()
    threshold_level: int | None = None
    online_component: OnlineComponent = OnlineComponent.NOT_ASSESSED
    online_risks: tuple[str, ...] = ()
    platform_types: tuple[PlatformType, ...] = ()
    role: Role = Role.UNKNOWN
    outcome: Outcome = Outcome.UNKNOWN

    #: The case-event fields a test can compare with the mapped event.
    EVENT_FIELDS: ClassVar[tuple[str, ...]] = (
        "event_type",
        "occurred_on",
        "age_band",
        "sex",
        "area_code",
        "vulnerabilities",
        "threshold_level",
        "online_component",
        "online_risks",
        "platform_types",
        "role",
        "outcome",
    )


def export_encoding(profile: Profile) -> str:
    """The codec an export for `profile` is written in.

    The first of the profile's encodings that is not ``utf-8-sig`` (a profile
    listing ``utf-8-sig, cp1252`` gets the cp1252 file a Windows spreadsheet
    saves); UTF-8 with a byte-order mark when the profile allows one.
    """
    allows_bom = any(codecs.lookup(e).name == "utf-8-sig" for e in profile.encodings)
    for encoding in profile.encodings:
        name = codecs.lookup(encoding).name
        if name == "utf-8-sig":
            continue
        return "utf-8-sig" if name == "utf-8" and allows_bom else encoding
    return "utf-8-sig"


def write_export(
    profile: Profile, rows: int, seed: int, pool: list[Child], path: Path
) -> list[ExpectedRow]:
    """Write `rows` data rows as `profile`'s agency exports them; what each should map to.

    The file uses the profile's header names (one variant each, picked per
    file), its vocabulary, date formats, encoding and format, and the mess of
    real exports: a byte-order mark, mixed date formats, blank rows, rows
    repeated byte for byte, stray spaces, extra columns, and a few values the
    mapper must reject. Children come from `pool`, so the same child turns up
    in several agencies' exports.
    """
    return _Export(profile, seed, pool).write(rows, path)


def _accented_children() -> list[Child]:
    rng = random.Random("accented")
    return [
        Child(
            nhs_number(rng),
            family,
            given,
            date(2009, 1, 1) + timedelta(days=rng.randrange(5 * 365)),
            rng.choice("FM"),
            f"{rng.choice(DISTRICTS)} {rng.randrange(10)}{rng.choice('ABDEFGHJ')}"
            f"{rng.choice('LNPQRSTU')}",
        )
        for family, given in _ACCENTED
    ]


def _spellings(profile: Profile) -> dict[str, dict[str, str]]:
    """The shipped profile's own spelling of each term (the loaded profile holds them folded)."""
    try:
        raw = read_yaml(PROFILES_DIR / f"{profile.agency}.yaml").data
    except (OSError, YamlSyntaxError):
        return {}
    values = raw.get("values") if isinstance(raw, dict) else None
    if not isinstance(values, dict):
        return {}
    return {
        str(field): {vocabulary_key(str(term)): str(term) for term in terms}
        for field, terms in values.items()
        if isinstance(terms, dict)
    }


def _first_date(profile: Profile, text: str) -> date | None:
    """The date the mapper reads from `text`: the first of the profile's formats that parses."""
    for fmt in profile.date_formats:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def expected_online(profile: Profile, text: str, risks: tuple[str, ...]) -> OnlineComponent:
    """The online component of a row whose online-component cell holds `text`."""
    vocabulary = profile.values.online_component
    if text.strip():
        return vocabulary[vocabulary_key(text)]
    if "" in vocabulary:
        return vocabulary[""]
    return OnlineComponent.YES if risks else OnlineComponent.NOT_ASSESSED


class _Export:
    """One synthetic export: the file layout, then one row at a time."""

    def __init__(self, profile: Profile, seed: int, pool: list[Child]) -> None:
        self.profile = profile
        self.seed = seed
        self.rng = random.Random(f"{profile.agency}:{seed}:export")
        self.encoding = export_encoding(profile)
        self.cp1252 = codecs.lookup(self.encoding).name == "cp1252"
        self.spelling = _spellings(profile)
        self.minimiser = Minimiser()
        self.pool = pool
        if profile.agency_type is AgencyType.COUNSELLING:  # the service is for 10-25s
            self.pool = [c for c in pool if c.born < date(2016, 1, 1)] or pool
        self.accented = _accented_children() if "given_name" in profile.columns else []
        health = profile.agency_type in (AgencyType.CAMHS, AgencyType.SCHOOL_NURSING)
        self.nhs_rate = 0.95 if health else 0.4
        self.headers = self._pick_headers()

    # --- layout ------------------------------------------------------------------
    def _pick_headers(self) -> dict[str, str]:
        """Cell key -> header text: one variant per field, some with stray case or spaces."""
        chosen: dict[str, str] = {}
        for field, variants in self.profile.columns.items():
            chosen[field] = self._messy_header(self.rng.choice(variants))
        for flag, variants in self.profile.vulnerability_columns.items():
            chosen[f"flag:{flag}"] = self._messy_header(self.rng.choice(variants))
        taken = {vocabulary_key(h) for hs in self.profile.columns.values() for h in hs}
        names = _EXTRA_KEYS if self.profile.format == "jsonl" else _EXTRA_COLUMNS
        extra = [h for h in names if vocabulary_key(h) not in taken]
        chosen["extra"] = self.rng.choice(extra)
        keys = list(chosen)
        rest = keys[1:]
        self.rng.shuffle(rest)
        return {k: chosen[k] for k in ["record_id", *(k for k in rest if k != "record_id")]}

    def _messy_header(self, header: str) -> str:
        roll = self.rng.random()
        if roll < 0.08:
            return header + " "
        if roll < 0.14 and self.profile.format != "jsonl":
            return header.upper()
        return header

    # --- writing -----------------------------------------------------------------
    def write(self, rows: int, path: Path) -> list[ExpectedRow]:
        jsonl = self.profile.format == "jsonl"
        lines: list[str] = [] if jsonl else [self._line(dict(self.headers))]
        expected: list[ExpectedRow] = []
        made = 0
        while len(expected) < rows:
            roll = self.rng.random()
            if roll < 0.04:  # a blank row, or a spreadsheet's row of empty cells
                lines.append(self.rng.choice(("", " " if jsonl else self._line({}))))
            elif expected and roll < 0.09:  # the same row again, byte for byte
                original = self.rng.choice(expected)
                lines.append(lines[original.row - 1])
                first = original.duplicate_of or original.row
                expected.append(replace(original, row=len(lines), duplicate_of=first))
            else:
                child = self._child(made)
                cells, row = self._record(made, child)
                made += 1
                lines.append(self._line(cells))
                row.row = len(lines)
                expected.append(row)
        newline = "\n" if jsonl else "\r\n"
        path.write_bytes("".join(line + newline for line in lines).encode(self.encoding))
        return expected

    def _child(self, made: int) -> Child:
        if self.accented and (made == 0 or self.rng.random() < 0.05):
            return self.rng.choice(self.accented)
        return self.rng.choice(self.pool)

    def _line(self, cells: Mapping[str, str]) -> str:
        """One row of the file: header order, stray spaces, the profile's format."""
        values = {self.headers[k]: self._padded(cells.get(k, "")) for k in self.headers}
        if self.profile.format == "jsonl":
            return self._json_line(values)
        out = io.StringIO()
        csv.writer(out, delimiter=self.profile.delimiter, lineterminator="").writerow(
            values.values() if cells else [""] * len(values)
        )
        return out.getvalue()

    def _json_line(self, values: dict[str, str]) -> str:
        item: dict[str, object] = {}
        for key, header in self.headers.items():
            text = values[header]
            if key == "age" and text.strip().isdigit() and self.rng.random() < 0.7:
                item[header] = int(text)  # providers send numbers as numbers
            elif text or self.rng.random() < 0.5:
                item[header] = text if text else None
        return json.dumps(item, ensure_ascii=False)

    def _padded(self, text: str) -> str:
        return text + self.rng.choice((" ", "  ")) if text and self.rng.random() < 0.08 else text

    # --- one record ----------------------------------------------------------------
    def _record(self, made: int, child: Child) -> tuple[dict[str, str], ExpectedRow]:
        template = _RECORD_IDS.get(self.profile.agency_type, "{agency}-{seed}-{n:06d}")
        record_id = template.format(agency=self.profile.agency.upper(), seed=self.seed, n=made)
        occurred = date(2026, 1, 1) + timedelta(days=self.rng.randrange(300))
        cells = {"record_id": record_id, "occurred_on": self._date_text(occurred, timed=True)}
        if "record_version" in self.profile.columns:
            cells["record_version"] = "1"
        row = ExpectedRow(0, record_id, child, occurred)
        self._identity(cells, row, child)
        self._coded(cells, row, child)
        self._online(cells, row)
        self._flags(cells, row)
        staff = ("web", "app", "") if self.profile.format == "jsonl" else ("JB", "AK", "SH", "")
        cells["extra"] = self.rng.choice(staff)
        if self.rng.random() < _FAULT_RATE:
            self._fault(cells, row)
        return cells, row

    def _date_text(self, day: date, timed: bool = False) -> str:
        """`day` in one of the profile's formats (any that the mapper reads back as `day`)."""
        moment = datetime(day.year, day.month, day.day)
        if timed:
            moment += timedelta(seconds=self.rng.randrange(8 * 3600, 20 * 3600))
        formats = list(self.profile.date_formats)
        self.rng.shuffle(formats)
        for fmt in formats:
            text = moment.strftime(fmt)
            if _first_date(self.profile, text) == day:
                return text
        raise ValueError(f"no date format of profile {self.profile.agency} reads back {day}")

    def _identity(self, cells: dict[str, str], row: ExpectedRow, child: Child) -> None:
        columns = self.profile.columns
        if "nhs_number" in columns and self.rng.random() < self.nhs_rate:
            cells["nhs_number"] = self._nhs_text(child.nhs_number)
        if "local_id" in columns:
            cells["local_id"] = self._local_id(child)
        if "case_id" in columns:
            cells["case_id"] = f"CS{self._local_id(child)[-5:]}"
        named = "family_name" in columns and "given_name" in columns
        if named:
            cells["family_name"], cells["given_name"] = self._names(child)
        with_age = "age" in columns
        if "date_of_birth" in columns and self.rng.random() < (0.6 if with_age else 0.95):
            cells["date_of_birth"] = self._date_text(child.born)
            row.age_band = self.minimiser.age_band(child.born, row.occurred_on)
        elif with_age:
            age = age_on(child.born, row.occurred_on)
            cells["age"] = str(age)
            row.age_band = self.minimiser.band_of_age(age)
        self._place(cells, row, child)
        if "nhs_number" in cells:
            row.basis = LinkageBasis.NHS_NUMBER
        elif named and "date_of_birth" in cells:
            row.basis = LinkageBasis.NAME_DOB
        elif "local_id" in cells:
            row.basis = LinkageBasis.LOCAL_ID

    def _nhs_text(self, number: str) -> str:
        style = self.rng.randrange(3)
        if style == 1:
            return f"{number[:3]} {number[3:6]} {number[6:]}"
        return f"{number[:3]}-{number[3:6]}-{number[6:]}" if style == 2 else number

    def _local_id(self, child: Child) -> str:
        """The agency's own id for `child`: stable across this agency's exports."""
        rng = random.Random(f"local:{self.profile.agency}:{child.nhs_number}")
        if self.profile.agency_type is AgencyType.EDUCATION:  # UPN-shaped
            return rng.choice("ABHKT") + "".join(str(rng.randrange(10)) for _ in range(12))
        if self.profile.agency_type is AgencyType.COUNSELLING:
            return f"{rng.getrandbits(128):032x}"
        return str(rng.randrange(1_000_000, 10_000_000))

    def _names(self, child: Child) -> tuple[str, str]:
        family = child.family_name
        if self.cp1252 and self.rng.random() < 0.5:
            family = family.replace("'", "\u2019")  # Excel's curly apostrophe
        if self.profile.agency_type is AgencyType.POLICE or self.rng.random() < 0.05:
            family = family.upper()
        return family, child.given_name

    def _place(self, cells: dict[str, str], row: ExpectedRow, child: Child) -> None:
        outward, inward = child.postcode.split()
        if "postcode" in self.profile.columns and self.rng.random() < 0.9:
            style = self.rng.randrange(3)
            text = (child.postcode, child.postcode.lower(), outward + inward)[style]
            cells["postcode"] = text
            row.area_code = f"{outward} {inward[0]}"
        if "area" in self.profile.columns:
            cells["area"], row.area_code = _TOWNS[outward]

    def _coded(self, cells: dict[str, str], row: ExpectedRow, child: Child) -> None:
        values = self.profile.values
        row.event_type = self._term_into(
            cells, "event_type", values.event_type, self.profile.default_event_type
        )
        own = Sex.FEMALE if child.sex == "F" else Sex.MALE
        row.sex = self._term_into(cells, "sex", values.sex, Sex.UNKNOWN, prefer=own)
        row.threshold_level = self._term_into(
            cells, "threshold_level", values.threshold_level, None
        )
        row.role = self._term_into(cells, "role", values.role, Role.UNKNOWN)
        row.outcome = self._term_into(cells, "outcome", values.outcome, Outcome.UNKNOWN)

    def _term_into(
        self,
        cells: dict[str, str],
        field: SourceField,
        vocabulary: Mapping[str, V],
        default: V,
        prefer: V | None = None,
    ) -> V:
        """Write one of the agency's words for `field` (mostly one meaning `prefer`)."""
        if field not in self.profile.columns or self.rng.random() < 0.04:
            return default
        terms = [t for t in vocabulary if t]
        if prefer is not None and self.rng.random() < 0.9:
            terms = [t for t in terms if vocabulary[t] == prefer] or terms
        if not terms:
            return default
        term = self.rng.choice(sorted(terms))
        cells[field] = self._spell(field, term)
        return vocabulary[term]

    def _spell(self, field: str, term: str) -> str:
        text = self.spelling.get(field, {}).get(term, term)
        return text.upper() if self.rng.random() < 0.05 else text

    def _online(self, cells: dict[str, str], row: ExpectedRow) -> None:
        profile = self.profile
        status = self.rng.choices(list(OnlineComponent), (70, 10, 20))[0]
        vocabulary = profile.values.risk
        if "risk" in profile.columns and vocabulary and status is OnlineComponent.YES:
            terms = self.rng.sample(sorted(vocabulary), k=min(len(vocabulary), self._risk_count()))
            glue = profile.multi_value_separator + self.rng.choice(("", " "))
            cells["risk"] = glue.join(self._spell("risk", t) for t in terms)
            row.online_risks = tuple(sorted({code for t in terms for code in vocabulary[t]}))
        if "online_component" in profile.columns and self.rng.random() < 0.9:
            words = [t for t, v in profile.values.online_component.items() if t and v is status]
            if words:
                cells["online_component"] = self._spell("online_component", self.rng.choice(words))
        row.online_component = expected_online(
            profile, cells.get("online_component", ""), row.online_risks
        )
        platforms = profile.values.platform
        if "platform" in profile.columns and platforms and row.online_risks:
            if self.rng.random() < 0.6:
                term = self.rng.choice(sorted(platforms))
                cells["platform"] = self._spell("platform", term)
                row.platform_types = tuple(sorted(set(platforms[term])))

    def _risk_count(self) -> int:
        return self.rng.choice((1, 1, 1, 2))

    def _flags(self, cells: dict[str, str], row: ExpectedRow) -> None:
        truthy = [t for t in self.profile.truthy if t]
        falsy = [t for t in ("", "N", "No", "n/a") if vocabulary_key(t) not in truthy]
        flags = []
        for flag in self.profile.vulnerability_columns:
            if truthy and self.rng.random() < 0.15:
                cells[f"flag:{flag}"] = self.rng.choice(truthy).upper()
                flags.append(flag)
            else:
                cells[f"flag:{flag}"] = self.rng.choice(falsy)
        row.vulnerabilities = tuple(sorted(flags))

    # --- faults ------------------------------------------------------------------
    def _fault(self, cells: dict[str, str], row: ExpectedRow) -> None:
        """Spoil one value so that the mapper must reject the row, naming that field."""
        faults: dict[SourceField, str] = {
            "occurred_on": self._bad_date(),
            "nhs_number": self._bad_nhs(cells.get("nhs_number", "")),
            "age": "about 14" if "age" in cells else "",
            "date_of_birth": self._bad_date() if "date_of_birth" in cells else "",
        }
        vocabularies: dict[SourceField, Mapping[str, object]] = {
            f: getattr(self.profile.values, f) for f in _TERM_FIELDS
        }
        if not self.profile.columns.get("online_component"):
            # Elsewhere the row's own online component stands and an unknown risk
            # term is only noted, not rejected (adapters.mapping.RowMapper._risks).
            vocabularies["risk"] = self.profile.values.risk
        for field, vocabulary in vocabularies.items():
            if field in self.profile.columns and vocabulary:
                faults[field] = self._bad_term(vocabulary)
        choices = sorted(field for field, text in faults.items() if text)
        field = self.rng.choice(choices)
        cells[field] = faults[field]
        row.rejected = field

    def _bad_date(self) -> str:
        bad = [t for t in _BAD_DATES if _first_date(self.profile, t) is None]
        return self.rng.choice(bad) if bad else ""

    def _bad_nhs(self, text: str) -> str:
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) != 10:
            return ""
        return digits[:9] + str((int(digits[9]) + 1) % 10)  # the check digit no longer matches

    def _bad_term(self, vocabulary: Mapping[str, object]) -> str:
        bad = [t for t in _BAD_TERMS if vocabulary_key(t) not in vocabulary]
        return self.rng.choice(bad) if bad else ""
