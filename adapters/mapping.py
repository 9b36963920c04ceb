"""Map one row of the hub's generic CSV layout to a minimised, pseudonymised case event.

Columns (header names, any order; extra columns are ignored and never read):
record_id, record_version, event_type, occurred_on (YYYY-MM-DD),
nhs_number, family_name, given_name, date_of_birth (YYYY-MM-DD), sex,
postcode, online_component, risk_codes (";"-separated taxonomy codes),
outcome. Agency-specific layouts come as mapping profiles.

Identifiers are read, normalised and turned into keyed pseudonyms here; they
never appear in the event, and errors name the field, never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TypeVar

from hub.agencies import agency_type
from hub.errors import RecordError
from hub.minimise import Minimiser
from hub.models import (
    CaseEvent,
    EventType,
    LinkageBasis,
    OnlineComponent,
    Outcome,
    Sex,
)
from hub.pseudonymise import Pseudonymiser, name_dob_key, normalise_nhs_number
from hub.taxonomy import Taxonomy

E = TypeVar("E", EventType, Outcome)

_SEX = {"f": Sex.FEMALE, "female": Sex.FEMALE, "m": Sex.MALE, "male": Sex.MALE}
_ONLINE = {
    "yes": OnlineComponent.YES,
    "y": OnlineComponent.YES,
    "no": OnlineComponent.NO,
    "n": OnlineComponent.NO,
    "": OnlineComponent.NOT_ASSESSED,
    "not assessed": OnlineComponent.NOT_ASSESSED,
}


class RowMapper:
    """Turns rows of one agency's file into case events."""

    def __init__(
        self,
        agency: str,
        pseudonymiser: Pseudonymiser,
        source: str,
        minimiser: Minimiser | None = None,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        self.agency = agency
        self.agency_type = agency_type(agency)
        self.pseudonymiser = pseudonymiser
        self.source = source
        self.minimiser = minimiser or Minimiser()
        self.taxonomy = taxonomy or Taxonomy()

    def _bad(self, row: int, field: str, reason: str) -> RecordError:
        return RecordError(self.source, row, field, reason)

    def map(self, row: int, cells: Mapping[str, str], now: datetime | None = None) -> CaseEvent:
        record_id = cells.get("record_id", "")
        if not record_id:
            raise self._bad(row, "record_id", "missing")
        version = self._int(row, cells, "record_version", default=1)
        occurred = self._date(row, cells, "occurred_on", required=True)
        born = self._date(row, cells, "date_of_birth", required=False)
        if occurred is None:
            raise self._bad(row, "occurred_on", "missing")
        if born is not None and born > occurred:
            raise self._bad(row, "date_of_birth", "after occurred_on")
        p = self.pseudonymiser
        linkage = self._linkage(row, cells, born)
        return CaseEvent(
            event_id=p.event_id(self.agency, record_id, version),
            agency_id=self.agency,
            agency_type=self.agency_type,
            event_type=self._enum(row, cells, "event_type", EventType, EventType.CONTACT),
            record_key=p.record_key(self.agency, record_id),
            record_version=version,
            subject=p.subject(*linkage) if linkage else None,
            previous_subjects=p.previous_subjects(*linkage) if linkage else (),
            occurred_on=occurred,
            reported_at=now or datetime.now(UTC),
            age_band=self.minimiser.age_band(born, occurred),
            sex=_SEX.get(cells.get("sex", "").lower(), Sex.UNKNOWN),
            area_code=self.minimiser.area(cells.get("postcode", "")),
            online_component=self._online(row, cells),
            online_risks=self._risks(row, cells),
            outcome=self._enum(row, cells, "outcome", Outcome, Outcome.UNKNOWN),
        )

    def _linkage(
        self, row: int, cells: Mapping[str, str], born: date | None
    ) -> tuple[str, LinkageBasis] | None:
        """The identifier to pseudonymise and its basis; None when the row has none."""
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
        return None

    def _int(self, row: int, cells: Mapping[str, str], field: str, default: int) -> int:
        text = cells.get(field, "")
        if not text:
            return default
        if not (text.isascii() and text.isdigit()) or int(text) < 1:
            raise self._bad(row, field, "not a whole number of 1 or more")
        return int(text)

    def _date(self, row: int, cells: Mapping[str, str], field: str, required: bool) -> date | None:
        text = cells.get(field, "")
        if not text:
            if required:
                raise self._bad(row, field, "missing")
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise self._bad(row, field, "not a date in YYYY-MM-DD form") from None

    def _enum(self, row: int, cells: Mapping[str, str], field: str, kind: type[E], default: E) -> E:
        text = cells.get(field, "").strip().upper().replace(" ", "_")
        if not text:
            return default
        try:
            return kind(text)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise self._bad(row, field, f"not one of {allowed}") from None

    def _online(self, row: int, cells: Mapping[str, str]) -> OnlineComponent:
        text = cells.get("online_component", "").strip().lower()
        if text not in _ONLINE:
            raise self._bad(row, "online_component", "not yes, no or blank (not assessed)")
        return _ONLINE[text]

    def _risks(self, row: int, cells: Mapping[str, str]) -> tuple[str, ...]:
        codes = tuple(
            sorted({c.strip().upper() for c in cells.get("risk_codes", "").split(";") if c.strip()})
        )
        unknown = sum(1 for c in codes if c not in self.taxonomy)
        if unknown:
            # The cell is not echoed: a mis-filled column can hold free text.
            raise self._bad(row, "risk_codes", f"{unknown} code(s) not in the taxonomy")
        return codes
