from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.models import LinkageBasis
from hub.pseudonymise import (
    KeyRing,
    PartnershipKey,
    Pseudonymiser,
    fold_name,
    name_dob_key,
    normalise_nhs_number,
    read_key_file,
    write_key_file,
)

RING = KeyRing((PartnershipKey("k1", bytes(range(32))),), bytes(range(100, 132)))


def test_known_answer_vectors() -> None:
    p = Pseudonymiser(RING)
    # HMAC-SHA256(key=00..1f, "subject" US "NHS_NUMBER" US "" US "9434765919")
    subject = p.subject("9434765919", LinkageBasis.NHS_NUMBER)
    assert subject.value == "c0816598a36a572e82ef4c72b027466da4242b3da6e239dab7a0c3d48842af1f"
    assert subject.key_id == "k1" and subject.basis is LinkageBasis.NHS_NUMBER
    # HMAC-SHA256(key=64..83, "event" US "camhs" US "R1" US "1"), computed independently.
    expected = hmac.new(bytes(range(100, 132)), b"event\x1fcamhs\x1fR1\x1f1", hashlib.sha256)
    assert p.event_id("camhs", "R1", 1) == expected.hexdigest()


def test_same_input_same_pseudonym_across_processes() -> None:
    code = (
        "from hub.pseudonymise import *; from hub.models import LinkageBasis;"
        "r = KeyRing((PartnershipKey('k1', bytes(range(32))),), bytes(range(100, 132)));"
        "print(Pseudonymiser(r).subject('9434765919', LinkageBasis.NHS_NUMBER).value)"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (
        other.stdout.strip()
        == Pseudonymiser(RING).subject("9434765919", LinkageBasis.NHS_NUMBER).value
    )


def test_another_key_gives_another_pseudonym() -> None:
    other = KeyRing((PartnershipKey("k2", bytes(range(1, 33))),), RING.record_secret)
    a = Pseudonymiser(RING).subject("9434765919", LinkageBasis.NHS_NUMBER)
    b = Pseudonymiser(other).subject("9434765919", LinkageBasis.NHS_NUMBER)
    assert a.value != b.value


def test_local_ids_are_scoped_to_their_agency() -> None:
    p = Pseudonymiser(RING)
    assert (
        p.subject("12345", LinkageBasis.LOCAL_ID, "police").value
        != p.subject("12345", LinkageBasis.LOCAL_ID, "spa").value
    )


def test_the_same_child_written_differently_links() -> None:
    born = date(2013, 5, 2)
    keys = {
        name_dob_key("O'Brien", "Zoë", born),
        name_dob_key("  OBRIEN ", "zoe", born),
        name_dob_key("O Brien", "ZOE", born),
        name_dob_key("o’brien", "Zoe\u0308", born),  # ë as e + combining diaeresis
    }
    assert len(keys) == 1
    assert name_dob_key("O'Brien", "Zoë", date(2013, 5, 3)) not in keys
    assert fold_name("Smith-Jones") == fold_name("smith jones") == "smithjones"
    assert name_dob_key("'-", "Zoe", born) is None


def test_nhs_number_normalised_and_checked() -> None:
    assert normalise_nhs_number(" 943 476 5919 ") == "9434765919"
    assert normalise_nhs_number("943-476-5919") == "9434765919"
    with pytest.raises(ValueError, match="check digit") as bad:
        normalise_nhs_number("9434765918")
    assert "9434765918" not in str(bad.value)
    with pytest.raises(ValueError, match="ten digits"):
        normalise_nhs_number("12345")


def test_event_ids_are_deterministic_and_versioned() -> None:
    p = Pseudonymiser(RING)
    assert p.event_id("camhs", "R1", 1) == p.event_id("camhs", "R1", 1)
    assert p.event_id("camhs", "R1", 1) != p.event_id("camhs", "R1", 2)
    assert p.event_id("camhs", "R1", 1) != p.event_id("police", "R1", 1)
    assert p.record_key("camhs", "R1") != p.event_id("camhs", "R1", 1)


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    ring = KeyRing.generate()
    write_key_file(path, ring)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == ring
    assert ring.current.secret.hex() not in repr(ring) and "hidden" in repr(ring)
    with pytest.raises(FileExistsError):
        write_key_file(path, ring)


def test_encrypted_key_file(tmp_path: Path) -> None:
    path = tmp_path / "sealed.json"
    ring = KeyRing.generate("sealed")
    phrase = secrets.token_urlsafe(12)
    write_key_file(path, ring, phrase)
    text = path.read_text()
    assert "encrypted" in text and json.loads(text)["encrypted"]["kdf"] == "scrypt"
    for secret in (ring.current.secret, ring.record_secret):
        assert secret.hex() not in text
    assert read_key_file(path, phrase) == ring
    with pytest.raises(ConfigError, match="wrong passphrase"):
        read_key_file(path, "wrong")
    with pytest.raises(ConfigError, match="HUB_KEY_PASSPHRASE"):
        read_key_file(path)


def test_rotation_keeps_linkage_and_event_ids(tmp_path: Path) -> None:
    old = KeyRing.generate("k-old")
    new = old.rotated("k-new", keep_previous=1)
    before, after = Pseudonymiser(old), Pseudonymiser(new)
    nhs = "9434765919"
    old_subject = before.subject(nhs, LinkageBasis.NHS_NUMBER)
    new_subject = after.subject(nhs, LinkageBasis.NHS_NUMBER)
    assert new_subject.key_id == "k-new" and new_subject.value != old_subject.value
    # The event under the new key carries the old pseudonym, so the hub can link the two.
    assert after.previous_subjects(nhs, LinkageBasis.NHS_NUMBER) == (old_subject,)
    # A re-export after the rotation is still a replay.
    assert after.event_id("camhs", "R1", 1) == before.event_id("camhs", "R1", 1)
    assert new.rotated("k-newer", keep_previous=1).keys[1:] == (new.current,)


def test_keys_cli_new_and_rotate(tmp_path: Path) -> None:
    first, second = tmp_path / "k1.json", tmp_path / "k2.json"
    run = [sys.executable, "-m", "hub.cli", "keys"]
    made = subprocess.run(
        [*run, "new", "--out", str(first), "--key-id", "k-2026"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote key k-2026" in made.stdout
    outbox = tmp_path / "outbox.sqlite"
    rotated = subprocess.run(
        [*run, "rotate", "--key-file", str(first), "--out", str(second), "--key-id", "k-2027"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HUB_OUTBOX": str(outbox)},
    )
    assert "current key k-2027, previous kept: k-2026" in rotated.stdout
    # The rotation waits in the outbox for the adapter's next send to the audit trail.
    with sqlite3.connect(outbox) as db:
        (entry,) = db.execute("SELECT entry_id, topic FROM audit").fetchall()
    assert entry[0].startswith("audit-") and entry[1] == "partnership.audit.v1"
    again = subprocess.run([*run, "new", "--out", str(first)], capture_output=True, text=True)
    assert again.returncode == 1 and "never overwritten" in again.stderr
