from __future__ import annotations

import pytest

from hub.taxonomy import (
    ALL,
    CELLS,
    CROSS_CUTTING,
    STARTER_CODES,
    LocalCode,
    Taxonomy,
    TaxonomyError,
)


def test_every_starter_code_is_in_exactly_one_known_cell() -> None:
    assert len(CELLS) == 4 * 3 + len(CROSS_CUTTING) == len(set(CELLS))
    assert set(STARTER_CODES.values()) <= set(CELLS)
    for required in (
        "CYBERBULLYING",
        "GROOMING",
        "SEXTORTION",
        "NUDE_IMAGE_SHARING_U18",
        "UNWANTED_STRANGER_CONTACT",
        "CRIMINAL_EXPLOITATION_RECRUITMENT",
    ):
        assert required in STARTER_CODES


def test_rollup_code_cell_c_all() -> None:
    taxonomy = Taxonomy()
    assert taxonomy.rollup("GROOMING") == ("GROOMING", "CONTACT_SEXUAL", "CONTACT", ALL)
    assert taxonomy.rollup("EXCESSIVE_USE") == ("EXCESSIVE_USE", "CROSS_HEALTH", "CROSS", ALL)


def test_local_codes_join_a_cell() -> None:
    taxonomy = Taxonomy([LocalCode("LOCAL_GAMING_CHAT_CONTACT", "CONTACT_SEXUAL", "in-game chat")])
    assert "LOCAL_GAMING_CHAT_CONTACT" in taxonomy
    assert taxonomy.rollup("LOCAL_GAMING_CHAT_CONTACT")[1:3] == ("CONTACT_SEXUAL", "CONTACT")
    assert "LOCAL_GAMING_CHAT_CONTACT" not in Taxonomy()


@pytest.mark.parametrize(
    ("code", "cell", "message"),
    [
        ("GROOMING", "CONTACT_SEXUAL", "already defined"),
        ("LOCAL_X", "CONTACT_SEXY", "is not one of"),
        ("local x", "CONTACT_SEXUAL", "A-Z, 0-9"),
    ],
)
def test_bad_local_codes_are_refused(code: str, cell: str, message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy([LocalCode(code, cell)])
