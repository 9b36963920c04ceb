"""Map one source record to a minimised, pseudonymised case event, as a profile says.

Stages, each a small method: resolve the agency's headers to canonical
fields -> parse and validate values (dates in the profile's formats, the
agency's vocabulary to the hub's codes, an area cell to the code of one of
the agreement's areas) -> minimise (age band, area from a postcode) ->
pseudonymise (subject, record, event id) -> drop what the agreement does
not let this agency share.

Identifiers are read, normalised and turned into keyed pseudonyms here (the
subject's: `adapters.linkage`); they never appear in the event, and errors
name the field, never its value. Every other event field comes from a closed
vocabulary (the profile's value maps, the taxonomy's codes, age bands, the
agreement's areas, dates, whole numbers): no text from a row is copied into
an event.

Cells repeat across the rows of an export (the same dates, postcodes, terms
and children), so the pure work on a cell's text is done once per distinct
text and kept (`_remember`); each row is still checked, and rejected or noted,
on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, TypeVar

from adapters.linkage import CACHE_LIMIT, Linker, Subjects
from adapters.profile import ALL_SHAREABLE, Profile, SourceField, vocabulary_key
from hub.areas import Areas
from hub.errors import ConfigError, RecordError
from hub.minimise import UNKNOWN, Minimiser
from hub.models import (
    AgencyType,
    CaseEvent,
    OnlineComponent,
    Outcome,
    PlatformType,
    Pseudonym,
    Role,
    Sex,
    Vulnerability,
)
from hub.pseudonymise import Pseudonymiser
from hub.taxonomy import Taxonomy

K = TypeVar("K")
V = TypeVar("V")
C = TypeVar("C", bound=str)
#: A multi-value cell read: (its codes, sorted; how many terms are unknown; how many known).
Read = tuple[tuple[C, ...], int, int]


class Identity(NamedTuple):
    """Which source record a row is: never leaves the adapter except as `key`."""

    text: str  # the identity's values, joined (raw: stays on this machine)
    key: str  # the keyed record key every event of the record carries
    group: str  # the record key of its record id alone: what a withdrawal row withdraws


class MappedRow(NamedTuple):
    identity: Identity
    event: CaseEvent


#: The highest version an export's version column may give: nine digits. A longer
#: number is more likely an identifier (an NHS or CHI number) in the wrong column than
#: a version, and would be shared as it is; it would not fit the schema's int either.
MAX_EXPORT_VERSION = 999_999_999
#: What an unshared field becomes: the schema's "not recorded" value.
_UNSHARED = {
    "age_band": UNKNOWN,
    "sex": Sex.UNKNOWN,
    "area_code": UNKNOWN,
    "vulnerabilities": (),
    "threshold_level": None,
    "platform_types": (),
    "role": Role.UNKNOWN,
    "outcome": Outcome.UNKNOWN,
}
#: Besides the profile's separator, where a feed of this kind also separates terms: an
#: online counselling provider's feed writes "Sexting, Online grooming".
_MORE_SEPARATORS: Mapping[AgencyType, tuple[str, ...]] = {AgencyType.COUNSELLING: (r",\s+",)}


def check_risk_codes(profile: Profile, taxonomy: Taxonomy) -> None:
    """ConfigError when the profile maps a risk term to a code the taxonomy lacks."""
    for term, codes in profile.values.risk.items():
        unknown = [c for c in codes if c not in taxonomy]
        if unknown:
            raise ConfigError(
                f"profile {profile.agency}: risk term {term!r} maps to codes the taxonomy"
                f" lacks: {', '.join(unknown)} (neither a starter code nor one of the"
                " local_risk_codes of the data-sharing agreement, HUB_AGREEMENT)"
            )


def _remember(cache: dict[K, V], key: K, work: Callable[[K], V]) -> V:
    """`work(key)`, kept in `cache` (emptied when it holds `CACHE_LIMIT` values): for the
    pure work on values that repeat across rows (dates, postcodes, vocabulary)."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    value = cache[key] = work(key)
    return value


def _json_strings(text: str) -> list[str] | None:
    """The items of a JSON array of strings, or None when `text` is not one."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deeply
        return None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return items


class RowMapper:
    """Turns one agency's source records into case events.

    A bad record raises `RecordError`; a record kept despite a problem (a risk or
    platform term not in the vocabulary) leaves a note in `notes`: `take_notes`.
    """

    def __init__(
        self,
        profile: Profile,
        pseudonymiser: Pseudonymiser,
        source: str,
        minimiser: Minimiser | None = None,
        taxonomy: Taxonomy | None = None,
        agency: str | None = None,
        areas: Areas | None = None,
    ) -> None:
        self.profile = profile
        self.agency = agency or profile.agency
        self.pseudonymiser = pseudonymiser
        self.source = source
        self.minimiser = minimiser or Minimiser()
        self.taxonomy = taxonomy or Taxonomy()
        check_risk_codes(profile, self.taxonomy)
        #: The agreement's areas: what an area cell may name (none: no area cell is accepted).
        self.areas = areas or Areas()
        #: Warnings about rows that were kept (e.g. an unknown risk term): `take_notes`.
        self.notes: list[RecordError] = []
        separator = profile.multi_value_separator
        separators = [re.escape(separator)] if separator else []
        separators += _MORE_SEPARATORS.get(profile.agency_type, ())
        self._separators = re.compile(f"({'|'.join(separators)})") if separators else None
        self._vocabularies: dict[str, Mapping[str, object]] = {
            "risk": profile.values.risk,
            "platform": profile.values.platform,
        }
        #: The most pieces a known term spans once split at the separators.
        self._spans = {
            field: 1 + max((self._pieces(term) - 1 for term in vocabulary), default=0)
            for field, vocabulary in self._vocabularies.items()
        }
        headers = {vocabulary_key(h): f for f, hs in profile.columns.items() for h in hs}
        self._field_of_header: dict[str, SourceField] = headers
        self._vulnerability_of_header = {
            vocabulary_key(h): v for v, hs in profile.vulnerability_columns.items() for h in hs
        }
        self._truthy = {vocabulary_key(t) for t in profile.truthy}
        #: What the agreement does not let this agency share, and what each becomes.
        self._unshared: dict[str, object] = {
            f: _UNSHARED[f] for f in ALL_SHAREABLE if f not in profile.share
        }
        self._linker = Linker(pseudonymiser, self.agency)
        # Per distinct text, worked out once (cells repeat across rows): see `_remember`.
        self._headers: dict[str, tuple[SourceField | None, Vulnerability | None]] = {}
        self._dates: dict[str, date | None] = {}
        self._keys: dict[str, str] = {}  # text -> vocabulary_key(text)
        self._postcode_areas: dict[str, str] = {}
        self._risk_codes: dict[str, Read[str]] = {}
        self._platform_codes: dict[str, Read[PlatformType]] = {}

    def _bad(self, row: int, field: str, reason: str) -> RecordError:
        return RecordError(self.source, row, field, reason)

    def take_notes(self) -> list[RecordError]:
        """The notes made since the last call, which are then forgotten.

        A note is a warning about a row that was kept, e.g. one risk term not in
        the profile's vocabulary; like an error it names the field, never the value.
        Take them after every `map`: when `map` raised, the row was rejected and
        its notes (made before the error) should be dropped.
        """
        notes = list(self.notes)
        self.notes.clear()
        return notes

    # --- resolve ---------------------------------------------------------------
    def canonical(self, raw: Mapping[str, str]) -> tuple[dict[str, str], set[Vulnerability]]:
        """The record's values under canonical field names, and its vulnerability flags."""
        cells: dict[str, str] = {}
        flags: set[Vulnerability] = set()
        headers = self._headers
        for header, value in raw.items():
            field, flag = headers.get(header) or self._header(header)
            if field is None and flag is None:
                continue
            text = (value or "").strip()
            if field is not None and text and field not in cells:
                cells[field] = text
            if flag is not None and self._key(text) in self._truthy:
                flags.add(flag)
        return cells, flags

    def _key(self, text: str) -> str:
        """`vocabulary_key(text)`, worked out once per distinct text."""
        key = self._keys.get(text)
        return _remember(self._keys, text, vocabulary_key) if key is None else key

    def _header(self, header: str) -> tuple[SourceField | None, Vulnerability | None]:
        """What a header means, worked out once per distinct header text."""
        known = self._headers.get(header)
        if known is None:
            key = vocabulary_key(header)
            known = (self._field_of_header.get(key), self._vulnerability_of_header.get(key))
            self._headers[header] = known
        return known

    # --- map -------------------------------------------------------------------
    def map(self, row: int, raw: Mapping[str, str], now: datetime | None = None) -> CaseEvent:
        """The event for one record; without a version column, its version is 1."""
        return self.map_row(row, raw, now).event

    def identify(self, row: int, raw: Mapping[str, str]) -> Identity:
        """The record a row is, from the profile's ``record_identity`` alone.

        For a row that is otherwise unusable: a full export must not withdraw a
        record whose row is present but rejected.
        """
        cells, _ = self.canonical(raw)
        return self._identity(row, cells)

    def _identity(self, row: int, cells: Mapping[str, str]) -> Identity:
        parts: list[str] = []
        for field in self.profile.record_identity:
            text = cells.get(field, "")
            if not text and field == "record_id":
                raise self._bad(row, field, "missing")
            if not text:  # blank is a value too: a clash with another blank is reported
                pass
            elif field in ("occurred_on", "date_of_birth"):
                parsed = self._date(row, cells, field)
                text = parsed.isoformat() if parsed else text
            elif field != "record_id":
                text = vocabulary_key(text)
            parts.append(text)
        p = self.pseudonymiser
        text = "\x1f".join(parts)
        key = p.record_key(self.agency, text)
        return Identity(text, key, key if len(parts) == 1 else p.record_key(self.agency, parts[0]))

    def map_row(self, row: int, raw: Mapping[str, str], now: datetime | None = None) -> MappedRow:
        """The record's identity and its event, its version from the export's column
        (or 1 when it has none: `adapters.versions` then derives it)."""
        cells, flags = self.canonical(raw)
        identity = self._identity(row, cells)
        version = self._int(row, cells, "record_version", default=1)
        occurred = self._date(row, cells, "occurred_on")
        if occurred is None:
            raise self._bad(row, "occurred_on", "missing")
        born = self._date(row, cells, "date_of_birth")
        if born is not None and born > occurred:
            raise self._bad(row, "date_of_birth", "after the event date")
        risks = self._risks(row, cells)
        maps = self.profile.values
        linked = self._subjects(row, cells, born)
        fields: dict[str, Any] = {
            "event_id": self.pseudonymiser.event_id(self.agency, identity.text, version),
            "agency_id": self.agency,
            "agency_type": self.profile.agency_type,
            "event_type": self._lookup(
                row, cells, "event_type", maps.event_type, self.profile.default_event_type
            ),
            "record_key": identity.key,
            "record_version": version,
            "subject": linked.subject,
            "previous_subjects": linked.previous,
            "other_subjects": linked.others,
            "case": self._case(cells),
            "occurred_on": occurred,
            "reported_at": now or datetime.now(UTC),
            "age_band": self._age_band(row, cells, born, occurred),
            "sex": self._lookup(row, cells, "sex", maps.sex, Sex.UNKNOWN),
            "area_code": self._area(row, cells),
            "vulnerabilities": tuple(sorted(flags)),
            "threshold_level": self._lookup(
                row, cells, "threshold_level", maps.threshold_level, None
            ),
            "online_component": self._online(row, cells, risks),
            "online_recorded": self.profile.records_online_component,
            "online_risks": risks,
            "platform_types": self._platforms(row, cells),
            "role": self._lookup(row, cells, "role", maps.role, Role.UNKNOWN),
            "outcome": self._lookup(row, cells, "outcome", maps.outcome, Outcome.UNKNOWN),
        }
        # Every field is read (so a bad value is still rejected) before the agreement's
        # unshared ones become "not recorded"; then one validation of the whole event.
        fields.update(self._unshared)
        return MappedRow(identity, CaseEvent(**fields))

    # --- fields ----------------------------------------------------------------
    def _subjects(self, row: int, cells: Mapping[str, str], born: date | None) -> Subjects:
        """The row's subject and other identifiers, keyed (`adapters.linkage`): the first of
        NHS number, name and date of birth, local id is the subject, the others link it to
        the same child known to agencies holding them."""
        identifiers = (
            cells.get("nhs_number", ""),
            cells.get("family_name", ""),
            cells.get("given_name", ""),
            born,
            cells.get("local_id", ""),
        )
        try:
            return self._linker.subjects(identifiers)
        except ValueError as exc:  # the NHS number: the reason never echoes it
            raise self._bad(row, "nhs_number", str(exc)) from None

    def _case(self, cells: Mapping[str, str]) -> Pseudonym | None:
        case_id = cells.get("case_id", "")
        return self._linker.case(case_id) if case_id else None

    def _int(self, row: int, cells: Mapping[str, str], field: str, default: int) -> int:
        """A whole number of 1 to `MAX_EXPORT_VERSION` (a version column's)."""
        text = cells.get(field, "")
        if not text:
            return default
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_EXPORT_VERSION:
            raise self._bad(row, field, f"not a whole number from 1 to {MAX_EXPORT_VERSION}")
        return int(text)

    def _date(self, row: int, cells: Mapping[str, str], field: str) -> date | None:
        text = cells.get(field, "")
        if not text:
            return None
        if text in self._dates:  # dates repeat across rows; parsing them is not cheap
            parsed = self._dates[text]
        else:
            parsed = _remember(self._dates, text, self._parse_date)
        if parsed is None:
            formats = ", ".join(self.profile.date_formats)
            raise self._bad(row, field, f"not a date in any of the profile's formats ({formats})")
        return parsed

    def _parse_date(self, text: str) -> date | None:
        for fmt in self.profile.date_formats:
            if fmt == "%Y-%m-%d" and len(text) == 10 and text[4] == text[7] == "-":
                try:
                    return date.fromisoformat(text)
                except ValueError:
                    continue
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        return None

    def _age_band(self, row: int, cells: Mapping[str, str], born: date | None, on: date) -> str:
        if born is not None or "age" not in cells:
            return self.minimiser.age_band(born, on)
        text = cells["age"]
        if not (text.isascii() and text.isdigit()) or int(text) > 120:
            raise self._bad(row, "age", "not an age in whole years")
        return self.minimiser.band_of_age(int(text))

    def _area(self, row: int, cells: Mapping[str, str]) -> str:
        """The code of the agreement's area an area cell names; without an area cell, the
        minimiser's area of the postcode. Anything else in the cell is rejected."""
        text = cells.get("area", "")
        if not text:
            postcode = cells.get("postcode", "")
            area = self._postcode_areas.get(postcode)
            if area is None:
                area = _remember(self._postcode_areas, postcode, self.minimiser.area)
            return area
        code = self.areas.code_of(text)
        if code is None:
            # Never echoed: the cell is free text, and may be a name or a full postcode.
            if not self.areas:
                reason = (
                    "the agreement lists no areas, so no area cell can be shared (list the"
                    " partnership's areas under areas: in the data-sharing agreement)"
                )
            else:
                reason = "not one of the agreement's areas (by code, name or alias)"
            raise self._bad(row, "area", reason)
        return code

    def _lookup(
        self,
        row: int,
        cells: Mapping[str, str],
        field: str,
        vocabulary: Mapping[str, V],
        default: V,
    ) -> V:
        text = cells.get(field, "")
        if not text:
            return default
        try:
            return vocabulary[self._key(text)]
        except KeyError:
            # The value is not echoed: a mis-filled column can hold free text.
            raise self._bad(row, field, "value not in the profile's vocabulary") from None

    def _terms(self, cells: Mapping[str, str], field: str) -> list[str]:
        """The terms of a multi-value cell (risk, platform), as `vocabulary_key`s.

        The rule, first that applies:

        1. The whole cell is one term when it is in the profile's vocabulary
           for the field (a term may itself hold a comma or the separator).
        2. A JSON array of strings (``["Sexting", "Online grooming"]``; a list
           in a JSON-lines record or an HTTP push arrives as one): each string
           is read by rules 1 and 3, never as JSON again.
        3. Otherwise the text is split at the profile's ``multi_value_separator``
           and, for an online counselling service's feed, also at a comma
           followed by a space. From left to right, the longest run of
           consecutive pieces that is, rejoined as written, a known term is
           one term; failing that, one piece is one (unknown) term. Blank
           pieces are skipped.
        """
        text = cells.get(field, "")
        if not text:
            return []
        vocabulary = self._vocabularies[field]
        items = None if self._key(text) in vocabulary else _json_strings(text)
        terms: list[str] = []
        for item in [text] if items is None else items:
            key = self._key(item)
            terms += [key] if key in vocabulary else self._split(item, field)
        return terms

    def _pieces(self, text: str) -> int:
        return 1 if self._separators is None else len(self._separators.findall(text)) + 1

    def _split(self, text: str, field: str) -> list[str]:
        """Rule 3 of `_terms`."""
        vocabulary = self._vocabularies[field]
        # Pieces at even positions, the separators between them at odd ones.
        parts = [text] if self._separators is None else self._separators.split(text)
        last = len(parts) // 2
        terms: list[str] = []
        i = 0
        while i <= last:
            j = min(last, i + self._spans[field] - 1)
            key = vocabulary_key("".join(parts[2 * i : 2 * j + 1]))
            while j > i and key not in vocabulary:
                j -= 1
                key = vocabulary_key("".join(parts[2 * i : 2 * j + 1]))
            if key:
                terms.append(key)
            i = j + 1
        return terms

    def _unknown_terms(self, row: int, field: str, unknown: int, kept: int) -> None:
        """Note, not reject: the row keeps its recognised terms. Never names the term."""
        reason = f"{unknown} term(s) not in the profile's vocabulary; kept the {kept} recognised"
        self.notes.append(self._bad(row, field, reason))

    def _risks(self, row: int, cells: Mapping[str, str]) -> tuple[str, ...]:
        """The risk codes of the recognised terms; each unknown term is noted (`take_notes`).

        When no term is recognised, the row is rejected if the profile has no
        online_component column: there the online component is read from the
        risk codes, and keeping the row would record a reported online risk as
        "not assessed". With the column, the row's own online component stands
        and the row is kept with no risk code (and the note).
        """
        vocabulary = self.profile.values.risk
        codes, unknown, known = self._codes(cells, "risk", self._risk_codes, vocabulary)
        if unknown:
            if not known and not self.profile.columns.get("online_component"):
                raise self._bad(row, "risk", f"{unknown} term(s) not in the profile's vocabulary")
            self._unknown_terms(row, "risk", unknown, known)
        return codes

    def _platforms(self, row: int, cells: Mapping[str, str]) -> tuple[PlatformType, ...]:
        """The platform types of the recognised terms; each unknown term is noted, never
        rejected (with none recognised, the platform is "not recorded")."""
        vocabulary = self.profile.values.platform
        platforms, unknown, known = self._codes(cells, "platform", self._platform_codes, vocabulary)
        if unknown:
            self._unknown_terms(row, "platform", unknown, known)
        return platforms

    def _codes(
        self,
        cells: Mapping[str, str],
        field: str,
        cache: dict[str, Read[C]],
        vocabulary: Mapping[str, tuple[C, ...]],
    ) -> Read[C]:
        """A multi-value cell's codes (`_terms`), worked out once per distinct cell text."""
        text = cells.get(field, "")
        found = cache.get(text)
        if found is None:

            def read(text: str) -> Read[C]:
                terms = self._terms({field: text}, field)
                known = [t for t in terms if t in vocabulary]
                codes = sorted({code for t in known for code in vocabulary[t]})
                return tuple(codes), len(terms) - len(known), len(known)

            found = _remember(cache, text, read)
        return found

    def _online(
        self, row: int, cells: Mapping[str, str], risks: tuple[str, ...]
    ) -> OnlineComponent:
        if "online_component" in cells or "" in self.profile.values.online_component:
            default = self.profile.values.online_component.get("", OnlineComponent.NOT_ASSESSED)
            found = self._lookup(
                row, cells, "online_component", self.profile.values.online_component, default
            )
            return found
        # No column for it: an online-risk code is itself the assessment.
        return OnlineComponent.YES if risks else OnlineComponent.NOT_ASSESSED
