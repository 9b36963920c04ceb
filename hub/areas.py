"""The partnership's areas: the closed vocabulary of area values an agency may send.

An area reaches Kafka in one of two ways only: derived from a postcode by the
minimiser (`hub.minimise.Minimiser.area`: the partnership's lookup, else the
postcode sector), or as the code of one of the areas the data-sharing
agreement lists (``areas:`` in `hub.agreement.model`), when an agency's export has an
area column of its own (an online counselling service records the user's
local authority or town). Such a cell is matched by the area's code, name or
any alias, ignoring case and spacing, and the code is what is shared;
anything else (free text, a full postcode, a name) is rejected by the mapper,
never passed on (docs/architecture.md, invariant 2).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class AreaError(ValueError):
    """One term would name two different areas."""


def area_key(text: str) -> str:
    """How an area cell is matched: trimmed, case-folded, inner whitespace collapsed."""
    return " ".join(text.replace("\ufeff", "").split()).casefold()


@dataclass(frozen=True)
class Area:
    """One area: the code shared for it, its name and the other names agencies use for it."""

    code: str
    name: str
    aliases: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        """Everything a cell may say to mean this area: code, name and aliases."""
        return (self.code, self.name, *self.aliases)


class Areas:
    """The agreement's areas, looked up by code, name or alias (see `area_key`).

    Empty when the agreement lists none: then no area cell is accepted.
    """

    def __init__(self, areas: Iterable[Area] = ()) -> None:
        self._areas: tuple[Area, ...] = tuple(areas)
        self._code_of: dict[str, str] = {}
        for area in self._areas:
            for term in area.terms:
                key = area_key(term)
                known = self._code_of.setdefault(key, area.code)
                if known != area.code:
                    raise AreaError(f"{term!r} already names the area {known!r}")

    def __iter__(self) -> Iterator[Area]:
        return iter(self._areas)

    def __len__(self) -> int:
        return len(self._areas)

    @property
    def codes(self) -> frozenset[str]:
        """Every code an event's area may carry from an area cell."""
        return frozenset(area.code for area in self._areas)

    def code_of(self, text: str) -> str | None:
        """The code of the area `text` names (by code, name or alias), else None."""
        return self._code_of.get(area_key(text))
