from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub.models import LinkageBasis
from hub.pseudonymise import PartnershipKey, Pseudonymiser, new_key_file, normalise_nhs_number

KEY = PartnershipKey("k1", bytes(range(32)))


def test_known_answer_vector() -> None:
    # HMAC-SHA256(key=00..1f, "subject" US "NHS_NUMBER" US "" US "9434765919").
    pseudonym = Pseudonymiser(KEY).subject("9434765919", LinkageBasis.NHS_NUMBER)
    assert pseudonym.value == "c0816598a36a572e82ef4c72b027466da4242b3da6e239dab7a0c3d48842af1f"
    assert pseudonym.key_id == "k1"


def test_same_input_same_pseudonym_across_processes() -> None:
    code = (
        "from hub.pseudonymise import *; from hub.models import LinkageBasis;"
        "print(Pseudonymiser(PartnershipKey('k1', bytes(range(32))))"
        ".subject('9434765919', LinkageBasis.NHS_NUMBER).value)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = Pseudonymiser(KEY).subject("9434765919", LinkageBasis.NHS_NUMBER).value
    assert other.stdout.strip() == here


def test_another_key_gives_another_pseudonym() -> None:
    other = PartnershipKey("k2", bytes(range(1, 33)))
    a = Pseudonymiser(KEY).subject("9434765919", LinkageBasis.NHS_NUMBER)
    b = Pseudonymiser(other).subject("9434765919", LinkageBasis.NHS_NUMBER)
    assert a.value != b.value


def test_nhs_number_normalised_and_checked() -> None:
    assert normalise_nhs_number(" 943 476 5919 ") == "9434765919"
    assert normalise_nhs_number("943-476-5919") == "9434765919"
    with pytest.raises(ValueError, match="check digit") as bad:
        normalise_nhs_number("9434765918")
    assert "9434765918" not in str(bad.value)
    with pytest.raises(ValueError, match="ten digits"):
        normalise_nhs_number("12345")


def test_event_ids_are_deterministic_and_versioned() -> None:
    p = Pseudonymiser(KEY)
    assert p.event_id("camhs", "R1", 1) == p.event_id("camhs", "R1", 1)
    assert p.event_id("camhs", "R1", 1) != p.event_id("camhs", "R1", 2)
    assert p.event_id("camhs", "R1", 1) != p.event_id("police", "R1", 1)
    assert p.record_key("camhs", "R1") != p.event_id("camhs", "R1", 1)


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    key = new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.key_id.startswith("k-") and len(key.secret) == 32
    assert key.secret.hex() not in repr(key) and "hidden" in repr(key)
    with pytest.raises(FileExistsError):
        new_key_file(path)
