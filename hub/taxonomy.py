"""The online-risk taxonomy: CO:RE 4Cs cells and a starter set of risk codes.

Livingstone & Stoilova (2021), "The 4Cs: Classifying Online Risk to
Children" (CC BY): four kinds of risk (content, contact, conduct, contract)
by three areas of harm (aggressive, sexual, values), plus cross-cutting
risks. Every code belongs to exactly one cell, so counts roll up from code to
cell to C to the total. Agencies' own words are mapped to these codes in
their mapping profiles, never here.
"""

from __future__ import annotations

from types import MappingProxyType

CELLS: tuple[str, ...] = tuple(
    f"{c}_{h}"
    for c in ("CONTENT", "CONTACT", "CONDUCT", "CONTRACT")
    for h in ("AGGRESSIVE", "SEXUAL", "VALUES")
) + ("CROSS_PRIVACY", "CROSS_HEALTH", "CROSS_INEQUALITIES")

#: Starter risk codes -> cell.
RISK_CODES = MappingProxyType(
    {
        "HATE_CONTENT": "CONTENT_AGGRESSIVE",
        "PORNOGRAPHY_EXPOSURE": "CONTENT_SEXUAL",
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


def cell_of(code: str) -> str:
    """The 4Cs cell of a risk code; KeyError for a code the taxonomy does not know."""
    return RISK_CODES[code]
