"""Minimisation at source: quasi-identifiers become coarse values before encoding."""

from __future__ import annotations

import re
from datetime import date

#: Default age bands (inclusive years): 0-4, 5-7, 8-10, 11-13, 14-15, 16-17, 18-25.
DEFAULT_AGE_BANDS: tuple[tuple[int, int], ...] = (
    (0, 4),
    (5, 7),
    (8, 10),
    (11, 13),
    (14, 15),
    (16, 17),
    (18, 25),
)

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9])[A-Z]{2}$")


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_band(
    born: date | None, on: date, bands: tuple[tuple[int, int], ...] = DEFAULT_AGE_BANDS
) -> str:
    """The band holding the age at `on`; "unknown" without a date of birth or outside the bands."""
    if born is None:
        return "unknown"
    age = age_on(born, on)
    for low, high in bands:
        if low <= age <= high:
            return f"{low}-{high}"
    return "unknown"


def postcode_sector(raw: str) -> str:
    """ "DY1 4RT" -> "DY1 4"; anything that is not a full UK postcode -> "unknown"."""
    match = _POSTCODE.match(raw.strip().upper())
    if match is None:
        return "unknown"
    return f"{match.group(1)} {match.group(2)}"
