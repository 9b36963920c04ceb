"""Map one source record to a minimised, pseudonymised case event, as a profile says.

Stages, each a small method: resolve the agency's headers to canonical
fields -> parse and validate values (dates in the profile's formats, the
agency's vocabulary to the hub's codes, an area cell to the code of one of
the agreement's areas) -> minimise (age band, area from a postcode) ->
pseudonymise (subject, record, event id) -> drop what the agreement does
not let this agency share.

Identifiers are read, normalised and turned into keyed pseudonyms here; they
never appear in the event, and errors name the field, never its value. Every
other event field comes from a closed vocabulary (the profile's value maps,
the taxonomy's codes, age bands, the agreement's areas, dates, whole numbers):
no text from a row is copied into an event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import NamedTuple, TypeVar

from adapters.profile import Profile, SourceField, vocabulary_key
from hub.agreement.model import ALL_SHAREABLE, ShareableField
from hub.areas import Areas
from hub.errors import ConfigError, RecordError
from hub.minimise import UNKNOWN, Minimiser
from hub.models import (
    AgencyType,
    CaseEvent,
    LinkageBasis,
    OnlineComponent,
    Outcome,
    PlatformType,
    Pseudonym,
    Role,
    Sex,
    Vulnerability,
)
from hub.pseudonymise import Pseudonymiser, name_dob_key, normalise_nhs_number
from hub.taxonomy import Taxonomy

V = TypeVar("V")


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
        share: tuple[ShareableField, ...] | None = None,
    ) -> None:
        """`share`: the shareable fields sent (``adapters.profile.sharing_scope``); by
        default the profile's ``share`` list, or every one."""
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
        if share is None:
            share = ALL_SHAREABLE if profile.share is None else profile.share
        shared = set(share)
        #: What each field not shared becomes: the schema's "not recorded".
        self._unshared: dict[str, object] = {
            f: _UNSHARED[f] for f in ALL_SHAREABLE if f not in shared
        }
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
        self._headers: dict[str, tuple[SourceField | None, Vulnerability | None]] = {}
        self._dates: dict[str, date | None] = {}

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
        for header, value in raw.items():
            field, flag = self._header(header)
            if field is None and flag is None:
                continue
            text = (value or "").strip()
            if field is not None and text and field not in cells:
                cells[field] = text
            if flag is not None and vocabulary_key(text) in self._truthy:
                flags.add(flag)
        return cells, flags

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
        p = self.pseudonymiser
        keys = self._match_keys(row, cells, born)
        subject = p.subject(*keys[0], agency=self.agency) if keys else None
        event = CaseEvent(
            event_id=p.event_id(self.agency, identity.text, version),
            agency_id=self.agency,
            agency_type=self.profile.agency_type,
            event_type=self._lookup(
                row, cells, "event_type", maps.event_type, self.profile.default_event_type
            ),
            record_key=identity.key,
            record_version=version,
            subject=subject,
            previous_subjects=p.previous_subjects(*keys[0], agency=self.agency) if keys else (),
            other_subjects=tuple(
                pseudonym
                for identifier, basis in keys[1:]
                for pseudonym in (
                    p.subject(identifier, basis, agency=self.agency),
                    *p.previous_subjects(identifier, basis, agency=self.agency),
                )
            ),
            case=self._case(cells),
            occurred_on=occurred,
            reported_at=now or datetime.now(UTC),
            age_band=self._age_band(row, cells, born, occurred),
            sex=self._lookup(row, cells, "sex", maps.sex, Sex.UNKNOWN),
            area_code=self._area(row, cells),
            vulnerabilities=tuple(sorted(flags)),
            threshold_level=self._lookup(row, cells, "threshold_level", maps.threshold_level, None),
            online_component=self._online(row, cells, risks),
            online_recorded=self.profile.records_online_component,
            online_risks=risks,
            platform_types=self._platforms(row, cells),
            role=self._lookup(row, cells, "role", maps.role, Role.UNKNOWN),
            outcome=self._lookup(row, cells, "outcome", maps.outcome, Outcome.UNKNOWN),
        )
        if self._unshared:
            event = event.model_copy(update=self._unshared)
        return MappedRow(identity, event)

    # --- fields ----------------------------------------------------------------
    def _match_keys(
        self, row: int, cells: Mapping[str, str], born: date | None
    ) -> list[tuple[str, LinkageBasis]]:
        """Every identifier the row carries, with its basis, best first: the first is the
        subject, the others link it to the same child known to agencies holding them."""
        keys: list[tuple[str, LinkageBasis]] = []
        nhs = cells.get("nhs_number", "")
        if nhs:
            try:
                keys.append((normalise_nhs_number(nhs), LinkageBasis.NHS_NUMBER))
            except ValueError as exc:
                raise self._bad(row, "nhs_number", str(exc)) from None
        if born is not None:
            key = name_dob_key(cells.get("family_name", ""), cells.get("given_name", ""), born)
            if key is not None:
                keys.append((key, LinkageBasis.NAME_DOB))
        local = cells.get("local_id", "")
        if local:
            keys.append((" ".join(local.split()).upper(), LinkageBasis.LOCAL_ID))
        return keys

    def _case(self, cells: Mapping[str, str]) -> Pseudonym | None:
        case_id = cells.get("case_id", "")
        if not case_id:
            return None
        return self.pseudonymiser.subject(case_id, LinkageBasis.CASE, agency=self.agency)

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
            parsed = self._parse_date(text)
            if len(self._dates) > 100_000:
                self._dates.clear()
            self._dates[text] = parsed
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
            return self.minimiser.area(cells.get("postcode", ""))
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
            return vocabulary[vocabulary_key(text)]
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
        items = None if vocabulary_key(text) in vocabulary else _json_strings(text)
        terms: list[str] = []
        for item in [text] if items is None else items:
            key = vocabulary_key(item)
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
        terms = self._terms(cells, "risk")
        known = [t for t in terms if t in vocabulary]
        unknown = len(terms) - len(known)
        if unknown:
            if not known and not self.profile.columns.get("online_component"):
                raise self._bad(row, "risk", f"{unknown} term(s) not in the profile's vocabulary")
            self._unknown_terms(row, "risk", unknown, len(known))
        return tuple(sorted({code for t in known for code in vocabulary[t]}))

    def _platforms(self, row: int, cells: Mapping[str, str]) -> tuple[PlatformType, ...]:
        """The platform types of the recognised terms; each unknown term is noted, never
        rejected (with none recognised, the platform is "not recorded")."""
        vocabulary = self.profile.values.platform
        terms = self._terms(cells, "platform")
        known = [t for t in terms if t in vocabulary]
        if len(known) < len(terms):
            self._unknown_terms(row, "platform", len(terms) - len(known), len(known))
        return tuple(sorted({p for t in known for p in vocabulary[t]}))

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
