"""The partner agencies the hub knows before an agreement names them."""

from __future__ import annotations

from types import MappingProxyType

from hub.models import AgencyType

DEFAULT_AGENCY_TYPES = MappingProxyType(
    {
        "camhs": AgencyType.CAMHS,
        "spa": AgencyType.CHILDRENS_SOCIAL_CARE,
        "police": AgencyType.POLICE,
        "school-nursing": AgencyType.SCHOOL_NURSING,
        "counselling": AgencyType.COUNSELLING,
        "youth-service": AgencyType.YOUTH_SERVICE,
        "relationships": AgencyType.RELATIONSHIPS_SERVICE,
        "education": AgencyType.EDUCATION,
        "voluntary": AgencyType.VOLUNTARY_SECTOR,
    }
)


def agency_type(agency_id: str) -> AgencyType:
    return DEFAULT_AGENCY_TYPES.get(agency_id, AgencyType.OTHER)
