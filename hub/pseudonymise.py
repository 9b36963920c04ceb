"""Keyed pseudonyms: HMAC-SHA256 under a partnership key the agencies hold.

The hub never holds the key, so it cannot reverse or recompute a pseudonym.
Each input is domain-separated (``purpose``, agency where relevant) so that,
for example, an NHS number and a record id that happen to share digits never
collide. Every pseudonym carries the id of the key that made it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ConfigError
from hub.models import LinkageBasis, Pseudonym
from hub.settings import HubSettings

KEY_BYTES = 32


@dataclass(frozen=True)
class PartnershipKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"PartnershipKey(key_id={self.key_id!r}, secret=<hidden>)"


def new_key_file(path: Path, key_id: str | None = None) -> PartnershipKey:
    """Write a new random key to `path`, readable by its owner only (0600)."""
    key = PartnershipKey(key_id or f"k-{secrets.token_hex(4)}", secrets.token_bytes(KEY_BYTES))
    body = json.dumps({"key_id": key.key_id, "key": base64.b64encode(key.secret).decode("ascii")})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(body + "\n")
    return key


def load_key(settings: HubSettings) -> PartnershipKey:
    """The key from HUB_KEY_FILE, else HUB_KEY (hex, key id "env")."""
    if settings.key_file is not None:
        try:
            data = json.loads(settings.key_file.read_text())
            secret = base64.b64decode(data["key"], validate=True)
            key = PartnershipKey(str(data["key_id"]), secret)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"cannot read the partnership key file {settings.key_file}: {exc}."
                " Create one with `hub keys new --out FILE`."
            ) from exc
    elif settings.key is not None:
        try:
            key = PartnershipKey("env", bytes.fromhex(settings.key.get_secret_value()))
        except ValueError as exc:
            raise ConfigError("HUB_KEY must be hex") from exc
    else:
        raise ConfigError(
            "no partnership key: set HUB_KEY_FILE to a file made by `hub keys new --out FILE`"
        )
    if len(key.secret) < 16:
        raise ConfigError("the partnership key is shorter than 16 bytes")
    return key


class Pseudonymiser:
    """Makes every keyed value an adapter emits."""

    def __init__(self, key: PartnershipKey) -> None:
        self.key = key

    def _mac(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self.key.secret, message, hashlib.sha256).hexdigest()

    def subject(self, identifier: str, basis: LinkageBasis, agency: str = "") -> Pseudonym:
        """A child's pseudonym. Local ids are scoped to their agency; shared ids are not."""
        scope = agency if basis in (LinkageBasis.LOCAL_ID, LinkageBasis.CASE) else ""
        value = self._mac("subject", basis.value, scope, identifier)
        return Pseudonym(value=value, key_id=self.key.key_id, basis=basis)

    def record_key(self, agency: str, record_id: str) -> str:
        return self._mac("record", agency, record_id)

    def event_id(self, agency: str, record_id: str, record_version: int) -> str:
        return self._mac("event", agency, record_id, str(record_version))


def normalise_nhs_number(raw: str) -> str:
    """Ten digits with a valid mod-11 check digit, else ValueError (never echoing the input)."""
    digits = "".join(ch for ch in raw if not ch.isspace() and ch != "-")
    if len(digits) != 10 or not digits.isdigit():
        raise ValueError("an NHS number has ten digits")
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10 or check != int(digits[9]):
        raise ValueError("NHS number check digit does not match")
    return digits
