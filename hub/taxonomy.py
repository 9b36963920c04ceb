"""The online-risk taxonomy: CO:RE 4Cs cells, starter risk codes, local codes, roll-ups.

Livingstone & Stoilova (2021), "The 4Cs: Classifying Online Risk to
Children" (CO:RE, CC BY): four kinds of risk (content, contact, conduct,
contract) by three areas of harm (aggressive, sexual, values), plus
cross-cutting risks. Every code belongs to exactly one cell, so counts roll
up code -> cell -> C -> ALL. Agencies' own words are mapped to codes in their
mapping profiles, never here; a partnership adds local codes in its
agreement, each mapped to a cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

CS: tuple[str, ...] = ("CONTENT", "CONTACT", "CONDUCT", "CONTRACT")
HARMS: tuple[str, ...] = ("AGGRESSIVE", "SEXUAL", "VALUES")
CROSS_CUTTING: tuple[str, ...] = ("CROSS_PRIVACY", "CROSS_HEALTH", "CROSS_INEQUALITIES")
CELLS: tuple[str, ...] = tuple(f"{c}_{h}" for c in CS for h in HARMS) + CROSS_CUTTING
ALL = "ALL"

#: Starter risk codes -> cell.
STARTER_CODES: Mapping[str, str] = MappingProxyType(
    {
        "HATE_CONTENT": "CONTENT_AGGRESSIVE",
        "PORNOGRAPHY_EXPOSURE": "CONTENT_SEXUAL",
        "MISINFORMATION": "CONTENT_VALUES",
        "ONLINE_HARASSMENT": "CONTACT_AGGRESSIVE",
        "UNWANTED_STRANGER_CONTACT": "CONTACT_AGGRESSIVE",
        "GROOMING": "CONTACT_SEXUAL",
        "SEXTORTION": "CONTACT_SEXUAL",
        "CSAM": "CONTACT_SEXUAL",
        "RADICALISATION": "CONTACT_VALUES",
        "CYBERBULLYING": "CONDUCT_AGGRESSIVE",
        "NUDE_IMAGE_SHARING_U18": "CONDUCT_SEXUAL",
        "SELF_HARM_CONTENT": "CONDUCT_VALUES",
        "EATING_DISORDER_CONTENT": "CONDUCT_VALUES",
        "SCAMS_FRAUD": "CONTRACT_AGGRESSIVE",
        "CRIMINAL_EXPLOITATION_RECRUITMENT": "CONTRACT_SEXUAL",
        "ONLINE_GAMBLING": "CONTRACT_VALUES",
        "PRIVACY_BREACH_DOXXING": "CROSS_PRIVACY",
        "EXCESSIVE_USE": "CROSS_HEALTH",
    }
)

_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")


class TaxonomyError(ValueError):
    """A local code that the taxonomy cannot take."""


@dataclass(frozen=True)
class LocalCode:
    code: str
    cell: str
    label: str = ""


def c_of_cell(cell: str) -> str:
    """CONTACT_SEXUAL -> CONTACT; a cross-cutting cell -> CROSS."""
    return cell.split("_", 1)[0]


class Taxonomy:
    """Starter codes plus a partnership's local codes, each in exactly one cell."""

    def __init__(self, local: Iterable[LocalCode] = ()) -> None:
        codes = dict(STARTER_CODES)
        for entry in local:
            if not _CODE.match(entry.code):
                raise TaxonomyError(f"local code {entry.code!r}: use A-Z, 0-9 and _ only")
            if entry.code in codes:
                raise TaxonomyError(f"local code {entry.code} is already defined")
            if entry.cell not in CELLS:
                raise TaxonomyError(
                    f"local code {entry.code}: cell {entry.cell!r} is not one of {', '.join(CELLS)}"
                )
            codes[entry.code] = entry.cell
        self.codes: Mapping[str, str] = MappingProxyType(codes)

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def cell_of(self, code: str) -> str:
        return self.codes[code]

    def rollup(self, code: str) -> tuple[str, str, str, str]:
        """(code, cell, C, ALL): every level a count of this code adds to."""
        cell = self.codes[code]
        return code, cell, c_of_cell(cell), ALL
