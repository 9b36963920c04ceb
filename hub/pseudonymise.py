"""Keyed pseudonyms: HMAC-SHA256 under partnership keys that the agencies hold.

The hub never holds a key, so it can neither reverse nor recompute a
pseudonym. Every input is domain-separated (purpose, basis, and the agency
for agency-local identifiers) so that unrelated identifiers never collide.

A key file holds:

* ``keys``: the linkage keys, current first. Subject pseudonyms are made with
  the current key and carry its id. During a rotation the previous keys stay
  in the file and the adapter also emits the subject under each of them
  (``previous_subjects``), so the hub links the old and new pseudonyms of
  the same child. See docs/keys.md.
* ``record_secret``: the key for event ids and record keys. It is not
  rotated with the linkage keys, so a re-export after a rotation still has
  the same event ids and is still recognised as a replay.

A key file can be encrypted with a passphrase (scrypt + AES-256-GCM).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from hub.errors import ConfigError
from hub.models import LinkageBasis, Pseudonym

if TYPE_CHECKING:
    from hub.settings import HubSettings

KEY_BYTES = 32
FORMAT = "online-risk-hub-keys/1"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


@dataclass(frozen=True)
class PartnershipKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"PartnershipKey(key_id={self.key_id!r}, secret=<hidden>)"


@dataclass(frozen=True)
class KeyRing:
    """The linkage keys (current first) and the record secret."""

    keys: tuple[PartnershipKey, ...]
    record_secret: bytes

    @property
    def current(self) -> PartnershipKey:
        return self.keys[0]

    def __repr__(self) -> str:
        return f"KeyRing(keys={[k.key_id for k in self.keys]}, record_secret=<hidden>)"

    @classmethod
    def generate(cls, key_id: str | None = None) -> KeyRing:
        key = PartnershipKey(key_id or _new_key_id(), secrets.token_bytes(KEY_BYTES))
        return cls((key,), secrets.token_bytes(KEY_BYTES))

    def rotated(self, key_id: str | None = None, keep_previous: int = 1) -> KeyRing:
        """A new current key; the last `keep_previous` keys stay for linkage across the change."""
        new = PartnershipKey(key_id or _new_key_id(), secrets.token_bytes(KEY_BYTES))
        if new.key_id in {k.key_id for k in self.keys}:
            raise ConfigError(f"key id {new.key_id} is already in the key file")
        return KeyRing((new, *self.keys[:keep_previous]), self.record_secret)


def _new_key_id() -> str:
    return f"k-{secrets.token_hex(4)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    return base64.b64decode(str(text), validate=True)


def write_key_file(path: Path, ring: KeyRing, passphrase: str | None = None) -> None:
    """Write `ring` to a new file readable by its owner only (0600); never overwrite."""
    body: dict[str, Any] = {
        "keys": [{"key_id": k.key_id, "key": _b64(k.secret)} for k in ring.keys],
        "record_secret": _b64(ring.record_secret),
    }
    document: dict[str, Any] = {"format": FORMAT}
    if passphrase:
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        aes = AESGCM(_derive(passphrase, salt, _SCRYPT))
        sealed = aes.encrypt(nonce, json.dumps(body).encode(), FORMAT.encode())
        document["encrypted"] = {
            "kdf": "scrypt",
            **_SCRYPT,
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "ciphertext": _b64(sealed),
        }
    else:
        document.update(body)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(document, indent=2) + "\n")


def read_key_file(path: Path, passphrase: str | None = None) -> KeyRing:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the key file {path}: {exc}. Create one with `hub keys new --out FILE`."
        ) from exc
    if document.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a hub key file ({FORMAT})")
    body = document
    if "encrypted" in document:
        body = _open_sealed(path, document["encrypted"], passphrase)
    try:
        keys = tuple(PartnershipKey(str(k["key_id"]), _unb64(k["key"])) for k in body["keys"])
        ring = KeyRing(keys, _unb64(body["record_secret"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the key file {path} is damaged: {exc!r}") from exc
    if not keys or any(len(k.secret) < 16 for k in keys) or len(ring.record_secret) < 16:
        raise ConfigError(f"the key file {path} holds no key or a key shorter than 16 bytes")
    return ring


def _derive(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"])
    return kdf.derive(passphrase.encode("utf-8"))


def _open_sealed(path: Path, sealed: dict[str, Any], passphrase: str | None) -> dict[str, Any]:
    if not passphrase:
        raise ConfigError(f"{path} is encrypted: set HUB_KEY_PASSPHRASE")
    try:
        key = _derive(passphrase, _unb64(sealed["salt"]), {p: int(sealed[p]) for p in _SCRYPT})
        plain = AESGCM(key).decrypt(
            _unb64(sealed["nonce"]), _unb64(sealed["ciphertext"]), FORMAT.encode()
        )
    except InvalidTag:
        raise ConfigError(f"wrong passphrase for {path} (or the file was altered)") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the key file {path} is damaged: {exc!r}") from exc
    body: dict[str, Any] = json.loads(plain)
    return body


class Pseudonymiser:
    """Makes every keyed value an adapter emits."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Pseudonymiser:
        """From HUB_KEY_FILE, opened with HUB_KEY_PASSPHRASE when it is encrypted."""
        return cls(load_keyring(settings.key_file, settings.passphrase))

    @staticmethod
    def _mac(secret: bytes, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        # hmac.digest is OpenSSL's one-shot HMAC: the same value as hmac.new(...), faster.
        return hmac.digest(secret, message, "sha256").hex()

    def _subject_under(
        self, key: PartnershipKey, identifier: str, basis: LinkageBasis, agency: str
    ) -> Pseudonym:
        scope = agency if basis in (LinkageBasis.LOCAL_ID, LinkageBasis.CASE) else ""
        value = self._mac(key.secret, "subject", basis.value, scope, identifier)
        # Our own hex digest and key id: nothing to validate, and this runs once per row.
        return Pseudonym.model_construct(value=value, key_id=key.key_id, basis=basis)

    def subject(self, identifier: str, basis: LinkageBasis, agency: str = "") -> Pseudonym:
        """A child's pseudonym under the current key. Local ids are scoped to their agency."""
        return self._subject_under(self.ring.current, identifier, basis, agency)

    def previous_subjects(
        self, identifier: str, basis: LinkageBasis, agency: str = ""
    ) -> tuple[Pseudonym, ...]:
        """The same child under the previous keys still in the rotation window."""
        return tuple(
            self._subject_under(key, identifier, basis, agency) for key in self.ring.keys[1:]
        )

    def record_key(self, agency: str, record_id: str) -> str:
        return self._mac(self.ring.record_secret, "record", agency, record_id)

    def event_id(self, agency: str, record_id: str, record_version: int) -> str:
        return self._mac(self.ring.record_secret, "event", agency, record_id, str(record_version))

    def derived_event_id(self, agency: str, record_key: str, record_version: int) -> str:
        """The event id of a version the adapter derived (no version column in the export)."""
        return self._mac(
            self.ring.record_secret, "derived-event", agency, record_key, str(record_version)
        )

    def file_mac(self, agency: str) -> hmac.HMAC:
        """A keyed hash to feed a file's bytes to: recognises a re-sent file."""
        return hmac.new(self.ring.record_secret, f"file\x1f{agency}\x1f".encode(), "sha256")

    def content_digest(self, agency: str, content: str) -> str:
        """A keyed digest of a record's content or a file's, kept at the agency to tell
        unchanged from changed; it reveals nothing without the record secret."""
        return self._mac(self.ring.record_secret, "content", agency, content)


def normalise_nhs_number(raw: str) -> str:
    """Ten digits with a valid mod-11 check digit, else ValueError (never echoing the input)."""
    digits = "".join(ch for ch in raw if not ch.isspace() and ch != "-")
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        raise ValueError("an NHS number has ten digits")
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        raise ValueError("NHS number check digit does not match")
    return digits


def fold_name(name: str) -> str:
    """Fold case, whitespace, hyphens, apostrophes, diacritics: "O'Brién-Smith" -> "obriensmith"."""
    decomposed = unicodedata.normalize("NFKD", name)
    letters = (ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in "".join(letters).casefold() if ch.isalnum())


def name_dob_key(family: str, given: str, born: date) -> str | None:
    """The fallback linkage key, or None when a name folds to nothing."""
    family_key, given_key = fold_name(family), fold_name(given)
    if not family_key or not given_key:
        return None
    return f"{family_key}|{given_key}|{born.isoformat()}"


def load_keyring(key_file: Path | None, passphrase: str | None) -> KeyRing:
    """The key ring from HUB_KEY_FILE (decrypted with HUB_KEY_PASSPHRASE when sealed)."""
    if key_file is None:
        raise ConfigError(
            "no partnership key: set HUB_KEY_FILE to a file made by `hub keys new --out FILE`"
        )
    return read_key_file(key_file, passphrase)
