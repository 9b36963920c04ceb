"""Agreements for tests: the example agreement cut down to a test's partners, and
what a `hub` process reads from the one its settings name."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from adapters.profile import load_profile
from hub import resources
from hub.agreement.model import Agreement, check_agreement, load_agreement
from hub.areas import Areas
from hub.settings import HubSettings, case_topic_name

EXAMPLE_AGREEMENT = resources.deploy("agreement", "example.yaml")
#: The partners of the example agreement, in its order (written out here, not read from it).
EXAMPLE_PARTNERS = (
    "camhs",
    "spa",
    "police",
    "school-nursing",
    "counselling",
    "youth-service",
    "relationships",
    "education",
    "voluntary",
)

#: The partners of the agreement the `hub_settings` fixture names.
TEST_PARTNERS = ("camhs", "police", "spa")


def example_areas() -> Areas:
    """The example agreement's areas: the ones the synthetic exports' area cells name."""
    return load_agreement(EXAMPLE_AGREEMENT).area_vocabulary


def write_agreement(path: Path, partners: Iterable[str]) -> Path:
    """The example agreement with only `partners` (ids, in this order), written to `path`:
    the partnership a test's topics, worker, ACLs and publisher all take their partners from.
    An id the example lacks (generic) is a partner of its shipped profile's agency type."""
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    by_id = {partner["id"]: partner for partner in data["partners"]}
    data["partners"] = [by_id.get(agency) or _profile_partner(agency) for agency in partners]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _profile_partner(agency: str) -> dict[str, object]:
    return {
        "id": agency,
        "type": str(load_profile(agency).agency_type),
        "topic": case_topic_name(agency),
        "principal": f"User:{agency}-adapter",
        "submit_by": {"cron": "0 17 5 * *"},
    }


def agreement_of(settings: HubSettings) -> Agreement:
    """The agreement `settings` name (HUB_AGREEMENT), as a `hub` process loads it."""
    return load_agreement(settings.agreement)


def partner_ids(settings: HubSettings) -> tuple[str, ...]:
    """The agency ids of the partners in the agreement `settings` name."""
    return tuple(partner.id for partner in agreement_of(settings).partners)


def agreement_problems(tmp_path: Path, data: dict[str, Any]) -> dict[str, str]:
    """`data` written as an agreement under `tmp_path`, and what `hub agreement check`
    says of it: where -> the problem."""
    path = tmp_path / "agreement.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    found = {}
    for line in check_agreement(path):
        _, loc, message = line.split(": ", 2)
        found[loc] = message
    return found
