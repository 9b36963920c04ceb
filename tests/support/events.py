"""A case event with every field set, as the codec and aggregation tests build on."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hub.models import (
    AgencyType,
    CaseEvent,
    EventType,
    LinkageBasis,
    OnlineComponent,
    Outcome,
    PlatformType,
    Pseudonym,
    Role,
    Sex,
    Vulnerability,
)


def sample_event() -> CaseEvent:
    return CaseEvent(
        event_id="a" * 64,
        agency_id="camhs",
        agency_type=AgencyType.CAMHS,
        event_type=EventType.REFERRAL,
        record_key="b" * 64,
        record_version=1,
        occurred_on=date(2026, 10, 3),
        reported_at=datetime(2026, 10, 4, 9, 30, tzinfo=UTC),
        age_band="11-13",
        online_component=OnlineComponent.YES,
        online_risks=("GROOMING",),
        subject=Pseudonym(value="c" * 64, key_id="k1", basis=LinkageBasis.NHS_NUMBER),
        previous_subjects=(Pseudonym(value="d" * 64, key_id="k0", basis=LinkageBasis.NHS_NUMBER),),
        other_subjects=(Pseudonym(value="e" * 64, key_id="k1", basis=LinkageBasis.NAME_DOB),),
        online_recorded=False,
        sex=Sex.FEMALE,
        area_code="DY1 4",
        vulnerabilities=(Vulnerability.SEN,),
        threshold_level=3,
        platform_types=(PlatformType.MESSAGING, PlatformType.ONLINE_GAMING),
        role=Role.VICTIM,
        outcome=Outcome.POLICE_REFERRAL,
    )
