"""Map one source record to a minimised, pseudonymised case event, as a profile says.

Stages, each a small method: resolve the agency's headers to canonical
fields -> parse and validate values (dates in the profile's formats, the
agency's vocabulary to the hub's codes) -> minimise (age band, area) ->
pseudonymise (subject, record, event id) -> drop what the agreement does
not let this agency share.

Identifiers are read, normalised and turned into keyed pseudonyms here; they
never appear in the event, and errors name the field, never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TypeVar

from adapters.profile import ALL_SHAREABLE, Profile, SourceField, vocabulary_key
from hub.errors import ConfigError, RecordError
from hub.minimise import UNKNOWN, Minimiser
from hub.models import (
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

#: What an unshared field becomes: the schema's "not recorded" value.
_UNSHARED = {
    "age_band": UNKNOWN,
    "sex": "UNKNOWN",
    "area_code": UNKNOWN,
    "vulnerabilities": (),
    "threshold_level": None,
    "platform_types": (),
    "role": "UNKNOWN",
    "outcome": "UNKNOWN",
}


class RowMapper:
    """Turns one agency's source records into case events."""

    def __init__(
        self,
        profile: Profile,
        pseudonymiser: Pseudonymiser,
        source: str,
        minimiser: Minimiser | None = None,
        taxonomy: Taxonomy | None = None,
        agency: str | None = None,
    ) -> None:
        self.profile = profile
        self.agency = agency or profile.agency
        self.pseudonymiser = pseudonymiser
        self.source = source
        self.minimiser = minimiser or Minimiser()
        self.taxonomy = taxonomy or Taxonomy()
        for term, codes in profile.values.risk.items():
            unknown = [c for c in codes if c not in self.taxonomy]
            if unknown:
                raise ConfigError(
                    f"profile {profile.agency}: risk term {term!r} maps to codes the taxonomy"
                    f" lacks: {', '.join(unknown)}"
                )
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
        cells, flags = self.canonical(raw)
        record_id = cells.get("record_id", "")
        if not record_id:
            raise self._bad(row, "record_id", "missing")
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
        linkage = self._linkage(row, cells, born)
        event = CaseEvent(
            event_id=p.event_id(self.agency, record_id, version),
            agency_id=self.agency,
            agency_type=self.profile.agency_type,
            event_type=self._lookup(
                row, cells, "event_type", maps.event_type, self.profile.default_event_type
            ),
            record_key=p.record_key(self.agency, record_id),
            record_version=version,
            subject=p.subject(*linkage, agency=self.agency) if linkage else None,
            previous_subjects=(
                p.previous_subjects(*linkage, agency=self.agency) if linkage else ()
            ),
            case=self._case(cells),
            occurred_on=occurred,
            reported_at=now or datetime.now(UTC),
            age_band=self._age_band(row, cells, born, occurred),
            sex=self._lookup(row, cells, "sex", maps.sex, Sex.UNKNOWN),
            area_code=cells.get("area") or self.minimiser.area(cells.get("postcode", "")),
            vulnerabilities=tuple(sorted(flags)),
            threshold_level=self._lookup(row, cells, "threshold_level", maps.threshold_level, None),
            online_component=self._online(row, cells, risks),
            online_risks=risks,
            platform_types=self._platforms(row, cells),
            role=self._lookup(row, cells, "role", maps.role, Role.UNKNOWN),
            outcome=self._lookup(row, cells, "outcome", maps.outcome, Outcome.UNKNOWN),
        )
        unshared = set(ALL_SHAREABLE) - set(self.profile.share)
        return event.model_copy(update={f: _UNSHARED[f] for f in unshared}) if unshared else event

    # --- fields ----------------------------------------------------------------
    def _linkage(
        self, row: int, cells: Mapping[str, str], born: date | None
    ) -> tuple[str, LinkageBasis] | None:
        """The identifier to pseudonymise and its basis, best first; None when there is none."""
        nhs = cells.get("nhs_number", "")
        if nhs:
            try:
                return normalise_nhs_number(nhs), LinkageBasis.NHS_NUMBER
            except ValueError as exc:
                raise self._bad(row, "nhs_number", str(exc)) from None
        if born is not None:
            key = name_dob_key(cells.get("family_name", ""), cells.get("given_name", ""), born)
            if key is not None:
                return key, LinkageBasis.NAME_DOB
        local = cells.get("local_id", "")
        if local:
            return " ".join(local.split()).upper(), LinkageBasis.LOCAL_ID
        return None

    def _case(self, cells: Mapping[str, str]) -> Pseudonym | None:
        case_id = cells.get("case_id", "")
        if not case_id:
            return None
        return self.pseudonymiser.subject(case_id, LinkageBasis.CASE, agency=self.agency)

    def _int(self, row: int, cells: Mapping[str, str], field: str, default: int) -> int:
        text = cells.get(field, "")
        if not text:
            return default
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise self._bad(row, field, "not a whole number of 1 or more")
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
        separator = self.profile.multi_value_separator
        return [vocabulary_key(t) for t in cells.get(field, "").split(separator) if t.strip()]

    def _risks(self, row: int, cells: Mapping[str, str]) -> tuple[str, ...]:
        vocabulary = self.profile.values.risk
        terms = self._terms(cells, "risk")
        unknown = sum(1 for t in terms if t not in vocabulary)
        if unknown:
            raise self._bad(row, "risk", f"{unknown} term(s) not in the profile's vocabulary")
        return tuple(sorted({code for t in terms for code in vocabulary[t]}))

    def _platforms(self, row: int, cells: Mapping[str, str]) -> tuple[PlatformType, ...]:
        vocabulary = self.profile.values.platform
        terms = self._terms(cells, "platform")
        if any(t not in vocabulary for t in terms):
            raise self._bad(row, "platform", "value not in the profile's vocabulary")
        return tuple(sorted({p for t in terms for p in vocabulary[t]}))

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
