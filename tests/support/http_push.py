"""The HTTP push endpoint as a provider calls it: bearer tokens, a good item, requests."""

from __future__ import annotations

import http.client
import json
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class Reachable(Protocol):
    """Where an endpoint listens: a `PushEndpoint`, or a `Remote` one in another process."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class Remote:
    """An endpoint served by another process (``hub adapter run --serve``)."""

    host: str
    port: int


TOKEN = secrets.token_urlsafe(32)
OTHER = secrets.token_urlsafe(32)
WRONG = secrets.token_urlsafe(32)
TOKENS = {TOKEN: "kooth", OTHER: "chatline"}

GOOD = {
    "record_id": "KOOTH-1",
    "record_version": 1,
    "event_type": "referral",
    "occurred_on": "2026-09-14",
    "nhs_number": "943 476 5919",
    "family_name": "Nowak",
    "given_name": "Zara",
    "date_of_birth": "2013-05-02",
    "sex": "F",
    "postcode": "DY1 4RT",
    "online_component": "yes",
    "risk_codes": "grooming;SEXTORTION",
    "outcome": "police referral",
}


def good(record_id: str) -> dict[str, Any]:
    return {**GOOD, "record_id": record_id}


def request(
    endpoint: Reachable,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any], str]:
    """One request on a connection of its own (HTTPS with `tls`, the client's context)."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    else:
        conn = http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=30, context=tls)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        text = response.read().decode("utf-8")
        return response.status, json.loads(text), text
    finally:
        conn.close()


def post(
    endpoint: Reachable,
    payload: Any,
    token: str | None = TOKEN,
    content_type: str = "application/json",
    tls: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any], str]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(endpoint, "POST", "/events", body, headers, tls)
