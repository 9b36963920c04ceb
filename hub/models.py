"""The case event as a pydantic model, kept in lock-step with schemas/case_event/.

tests/hub/test_models.py fails when a field, type or enum symbol here drifts
from the current ``.avsc``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CASE_EVENT_VERSION = 2


class AgencyType(StrEnum):
    CAMHS = "CAMHS"
    CHILDRENS_SOCIAL_CARE = "CHILDRENS_SOCIAL_CARE"
    POLICE = "POLICE"
    SCHOOL_NURSING = "SCHOOL_NURSING"
    COUNSELLING = "COUNSELLING"
    YOUTH_SERVICE = "YOUTH_SERVICE"
    RELATIONSHIPS_SERVICE = "RELATIONSHIPS_SERVICE"
    EDUCATION = "EDUCATION"
    VOLUNTARY_SECTOR = "VOLUNTARY_SECTOR"
    OTHER = "OTHER"


class EventType(StrEnum):
    REFERRAL = "REFERRAL"
    ASSESSMENT = "ASSESSMENT"
    INCIDENT = "INCIDENT"
    CONTACT = "CONTACT"
    CASE_CLOSED = "CASE_CLOSED"
    CORRECTION = "CORRECTION"
    WITHDRAWN = "WITHDRAWN"


class LinkageBasis(StrEnum):
    NHS_NUMBER = "NHS_NUMBER"
    NAME_DOB = "NAME_DOB"
    LOCAL_ID = "LOCAL_ID"
    CASE = "CASE"
    OTHER = "OTHER"


class Sex(StrEnum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class Vulnerability(StrEnum):
    SEN = "SEN"
    LOOKED_AFTER = "LOOKED_AFTER"
    YOUNG_CARER = "YOUNG_CARER"
    NOT_IN_EDUCATION = "NOT_IN_EDUCATION"
    MENTAL_HEALTH_NEED = "MENTAL_HEALTH_NEED"
    COMMUNICATION_DIFFICULTIES = "COMMUNICATION_DIFFICULTIES"
    OTHER = "OTHER"


class OnlineComponent(StrEnum):
    YES = "YES"
    NO = "NO"
    NOT_ASSESSED = "NOT_ASSESSED"


class PlatformType(StrEnum):
    SOCIAL_NETWORK = "SOCIAL_NETWORK"
    MESSAGING = "MESSAGING"
    LIVESTREAMING = "LIVESTREAMING"
    ONLINE_GAMING = "ONLINE_GAMING"
    VIDEO_SHARING = "VIDEO_SHARING"
    DATING = "DATING"
    ANONYMOUS_CHAT = "ANONYMOUS_CHAT"
    FORUM = "FORUM"
    MARKETPLACE = "MARKETPLACE"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class Role(StrEnum):
    VICTIM = "VICTIM"
    PERPETRATOR = "PERPETRATOR"
    BOTH = "BOTH"
    UNKNOWN = "UNKNOWN"


class Outcome(StrEnum):
    NO_FURTHER_ACTION = "NO_FURTHER_ACTION"
    ADVICE_GIVEN = "ADVICE_GIVEN"
    EARLY_HELP = "EARLY_HELP"
    SOCIAL_CARE_REFERRAL = "SOCIAL_CARE_REFERRAL"
    POLICE_REFERRAL = "POLICE_REFERRAL"
    CAMHS_REFERRAL = "CAMHS_REFERRAL"
    OTHER_SERVICE = "OTHER_SERVICE"
    ONGOING = "ONGOING"
    UNKNOWN = "UNKNOWN"


class Pseudonym(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_id: str = Field(min_length=1)
    basis: LinkageBasis


def _pseudonym_avro(pseudonym: Pseudonym | None) -> dict[str, Any] | None:
    if pseudonym is None:
        return None
    return {"value": pseudonym.value, "key_id": pseudonym.key_id, "basis": pseudonym.basis}


class CaseEvent(BaseModel):
    """One online-risk case event, exactly as it leaves an agency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    schema_version: int = CASE_EVENT_VERSION
    agency_id: str = Field(min_length=1)
    agency_type: AgencyType
    event_type: EventType
    record_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    record_version: int = Field(ge=1)
    subject: Pseudonym | None = None
    previous_subjects: tuple[Pseudonym, ...] = ()
    other_subjects: tuple[Pseudonym, ...] = ()
    case: Pseudonym | None = None
    occurred_on: date
    reported_at: datetime
    age_band: str = "unknown"
    sex: Sex = Sex.UNKNOWN
    area_code: str = "unknown"
    vulnerabilities: tuple[Vulnerability, ...] = ()
    threshold_level: int | None = Field(default=None, ge=1, le=4)
    online_component: OnlineComponent
    online_recorded: bool = True
    online_risks: tuple[str, ...] = ()
    platform_types: tuple[PlatformType, ...] = ()
    role: Role = Role.UNKNOWN
    outcome: Outcome = Outcome.UNKNOWN

    def to_avro(self) -> dict[str, Any]:
        """The record as fastavro writes it (enums as symbols, sequences as lists).

        Built field by field rather than with model_dump: this runs once per row.
        """
        data = dict(self.__dict__)
        data["subject"] = _pseudonym_avro(self.subject)
        data["case"] = _pseudonym_avro(self.case)
        data["previous_subjects"] = [_pseudonym_avro(p) for p in self.previous_subjects]
        data["other_subjects"] = [_pseudonym_avro(p) for p in self.other_subjects]
        for name in ("vulnerabilities", "online_risks", "platform_types"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> CaseEvent:
        return cls.model_validate(record)


class TrendSnapshot(BaseModel):
    """One published aggregate cell, as analysts read it from partnership.trends.v1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partnership: str
    publication: str
    period_start: date
    period_end: date
    measure: str = "events"
    dimension: str
    value: str
    count: int | None = Field(default=None, ge=0)
    suppressed: bool = False
    revision: int = Field(default=0, ge=0)
    published_at: datetime

    def to_avro(self) -> dict[str, Any]:
        return self.model_dump(mode="python")
