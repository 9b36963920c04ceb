"""Minimisation at source: quasi-identifiers become coarse values before encoding.

A date of birth becomes an age band at the event date (HUB_AGE_BANDS); a
postcode becomes the partnership's area code from its lookup table
(HUB_AREA_LOOKUP, CSV ``postcode,area``), else the postcode sector
("DY1 4"), else "unknown". A full postcode is never returned.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from hub.errors import ConfigError

if TYPE_CHECKING:
    from hub.settings import HubSettings

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
UNKNOWN = "unknown"

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9])([A-Z]{2})$")


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def parse_age_bands(text: str) -> tuple[tuple[int, int], ...]:
    """ "0-4,5-7" -> ((0, 4), (5, 7)); bands must ascend without overlapping."""
    bands: list[tuple[int, int]] = []
    for part in text.split(","):
        low_text, sep, high_text = part.strip().partition("-")
        if not sep or not low_text.isdigit() or not high_text.isdigit():
            raise ConfigError(f"age band {part.strip()!r} is not of the form LOW-HIGH")
        low, high = int(low_text), int(high_text)
        if low > high or (bands and low <= bands[-1][1]):
            raise ConfigError(f"age band {part.strip()!r} is reversed or overlaps the one before")
        bands.append((low, high))
    return tuple(bands)


def normalise_postcode(raw: str) -> tuple[str, str, str] | None:
    """(outward, sector digit, unit) of a full UK postcode, else None."""
    match = _POSTCODE.match("".join(raw.split()).upper())
    return (match.group(1), match.group(2), match.group(3)) if match else None


def load_area_lookup(path: Path) -> Mapping[str, str]:
    """The partnership's postcode -> area table; a bad row names its line."""
    areas: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or {"postcode", "area"} - set(reader.fieldnames):
                raise ConfigError(f"{path}: the header must name the columns postcode and area")
            for row in reader:
                parts = normalise_postcode(row["postcode"] or "")
                area = (row["area"] or "").strip()
                if parts is None or not area:
                    field = "postcode" if parts is None else "area"
                    raise ConfigError(f"{path}, row {reader.line_num}, field {field!r}: invalid")
                areas["".join(parts)] = area
    except OSError as exc:
        raise ConfigError(f"cannot read the area lookup {path}: {exc}") from exc
    return MappingProxyType(areas)


@dataclass(frozen=True)
class Minimiser:
    bands: tuple[tuple[int, int], ...] = DEFAULT_AGE_BANDS
    areas: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Minimiser:
        areas = load_area_lookup(settings.area_lookup) if settings.area_lookup else None
        return cls(parse_age_bands(settings.age_bands), areas or MappingProxyType({}))

    def age_band(self, born: date | None, on: date) -> str:
        """The band holding the age at `on`; "unknown" without a birth date or outside the bands."""
        if born is None:
            return UNKNOWN
        return self.band_of_age(age_on(born, on))

    def band_of_age(self, age: int) -> str:
        """The band holding `age`, for sources that record an age and no date of birth."""
        for low, high in self.bands:
            if low <= age <= high:
                return f"{low}-{high}"
        return UNKNOWN

    def area(self, postcode: str) -> str:
        parts = normalise_postcode(postcode)
        if parts is None:
            return UNKNOWN
        return self.areas.get("".join(parts)) or f"{parts[0]} {parts[1]}"
