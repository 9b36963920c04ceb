"""The HTTP push endpoint on a real loopback port: what is accepted, committed and refused.

No Kafka here: the events stop in the outbox (nothing drains it).
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.http_source import PushEndpoint, serve
from adapters.runner import AdapterRun, adapter_run
from hub.codec import Codec
from hub.errors import ConfigError
from hub.models import CaseEvent
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from tests.conftest import free_port

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
#: Values that must never come back in an answer or a log line.
PLANTED = ("Nowak", "Zara", "2013-05-02", "DY1 4RT", "943 476 5919", "9434765918", "banana")


def good(record_id: str) -> dict[str, Any]:
    return {**GOOD, "record_id": record_id}


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    return HubSettings(
        key_file=key_file, outbox=tmp_path / "outbox.sqlite", bootstrap="127.0.0.1:1"
    )


@pytest.fixture
def run(settings: HubSettings, tmp_path: Path) -> Iterator[AdapterRun]:
    with adapter_run(settings, "generic", "counselling", quarantine=tmp_path / "q") as opened:
        yield opened


@pytest.fixture
def endpoint(run: AdapterRun) -> Iterator[PushEndpoint]:
    with serve(run, "127.0.0.1", free_port(), TOKENS) as started:
        yield started


def request(
    endpoint: PushEndpoint,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        text = response.read().decode("utf-8")
        return response.status, json.loads(text), text
    finally:
        conn.close()


def post(
    endpoint: PushEndpoint,
    payload: Any,
    token: str | None = TOKEN,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any], str]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request(endpoint, "POST", "/events", body, headers)


def outbox_rows(path: Path) -> list[tuple[str, str, bytes]]:
    """The outbox as another process sees it: only what is committed."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT event_id, topic, value FROM outbox ORDER BY seq").fetchall()
    return [(str(e), str(t), bytes(v)) for e, t, v in rows]


def assert_no_values(text: str) -> None:
    for value in PLANTED:
        assert value not in text


def test_accepted_events_are_committed_before_the_202(
    endpoint: PushEndpoint, run: AdapterRun, settings: HubSettings
) -> None:
    status, body, _ = post(endpoint, [good("KOOTH-1"), good("KOOTH-2")])

    assert status == 202
    assert body["accepted"] == 2
    assert body["new"] == 2
    assert body["rejected"] == []
    assert body["request"].startswith("http-kooth-") and body["request"].endswith("-1")
    # Read straight after the answer, over a connection of our own: already committed.
    rows = outbox_rows(settings.outbox)
    assert len(rows) == 2
    assert {topic for _, topic, _ in rows} == {settings.case_topic("counselling")}
    assert run.outbox is not None
    assert run.outbox.counts() == (2, 0)
    codec = Codec("case_event")
    events = [CaseEvent.from_avro(codec.decode(value)) for _, _, value in rows]
    assert {e.agency_id for e in events} == {"counselling"}
    assert all(e.subject is not None for e in events)
    for _, _, value in rows:
        for planted in ("Nowak", "Zara", "DY1 4RT", "9434765918", "KOOTH-1"):
            assert planted.encode() not in value


def test_a_single_object_is_one_item_and_a_resend_stores_nothing_twice(
    endpoint: PushEndpoint, settings: HubSettings
) -> None:
    first = post(endpoint, good("KOOTH-9"))
    again = post(endpoint, good("KOOTH-9"))

    assert first[0] == 202 and first[1]["accepted"] == 1 and first[1]["new"] == 1
    assert again[0] == 202 and again[1]["accepted"] == 1 and again[1]["new"] == 0
    assert len(outbox_rows(settings.outbox)) == 1


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {WRONG}", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", "Bearer é"],
)
def test_no_or_unknown_token_is_401(
    endpoint: PushEndpoint, settings: HubSettings, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    status, body, _ = request(
        endpoint, "POST", "/events", json.dumps(good("K-1")).encode(), headers
    )

    assert status == 401
    assert body == {"error": "unauthorised"}
    assert outbox_rows(settings.outbox) == []


def test_each_providers_token_names_its_provider(endpoint: PushEndpoint) -> None:
    status, body, _ = post(endpoint, good("C-1"), token=OTHER)

    assert status == 202
    assert body["request"].startswith("http-chatline-")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_json_by_type_is_415(
    endpoint: PushEndpoint, settings: HubSettings, content_type: str
) -> None:
    status, body, _ = post(endpoint, good("K-1"), content_type=content_type)

    assert status == 415
    assert "application/json" in body["error"]
    assert outbox_rows(settings.outbox) == []


def test_json_with_a_charset_parameter_is_accepted(endpoint: PushEndpoint) -> None:
    status, _, _ = post(endpoint, good("K-1"), content_type="application/json; charset=utf-8")

    assert status == 202


def test_a_body_over_the_limit_is_413_without_being_read(endpoint: PushEndpoint) -> None:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=30)
    try:
        conn.putrequest("POST", "/events")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(5 * 1024 * 1024 + 1))
        conn.endheaders()  # and no body: the answer must not wait for it
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()

    assert response.status == 413
    assert "body over" in body["error"]


def test_a_small_limit_applies_to_a_real_body(run: AdapterRun) -> None:
    with serve(run, "127.0.0.1", free_port(), TOKENS, max_body=100) as small:
        status, _, _ = post(small, good("K-1"))
        assert status == 413
        status, _, _ = post(small, {"record_id": "K-2", "occurred_on": "2026-01-02"})
        assert status == 202


def test_invalid_json_is_400_without_echoing_the_body(
    endpoint: PushEndpoint, settings: HubSettings
) -> None:
    status, body, text = post(endpoint, b'[{"family_name": "Nowak", "postcode": "DY1 4RT",')

    assert status == 400
    assert "not valid JSON" in body["error"]
    assert_no_values(text)
    assert outbox_rows(settings.outbox) == []


@pytest.mark.parametrize("payload", [b'"Nowak"', b"42", b"[]", b"NaN", b'["\xff"]'])
def test_a_body_that_is_not_objects_is_400(endpoint: PushEndpoint, payload: bytes) -> None:
    status, body, text = post(endpoint, payload)

    assert status == 400
    assert body["error"]
    assert_no_values(text)


def test_all_bad_items_are_400_naming_index_field_and_reason(
    endpoint: PushEndpoint, settings: HubSettings, tmp_path: Path
) -> None:
    items = [
        {**good("K-1"), "occurred_on": ""},
        {**good("K-2"), "nhs_number": "9434765918"},
        {**good("K-3"), "outcome": "banana"},
        {**good("K-4"), "family_name": {"first": "Nowak"}},
        "Nowak",
    ]
    status, body, text = post(endpoint, items)

    assert status == 400
    assert body["accepted"] == 0
    found = [(r["index"], r["row"], r["field"]) for r in body["rejected"]]
    assert found == [
        (0, 1, "occurred_on"),
        (1, 2, "nhs_number"),
        (2, 3, "outcome"),
        (3, 4, "family_name"),
        (4, 5, "*"),
    ]
    assert all(r["reason"] for r in body["rejected"])
    assert_no_values(text)
    assert outbox_rows(settings.outbox) == []
    report = tmp_path / "q" / f"{body['request']}.rejects.csv"
    assert report.exists()
    assert_no_values(report.read_text())


def test_good_items_are_accepted_beside_bad_ones(
    endpoint: PushEndpoint, settings: HubSettings
) -> None:
    items = [good("K-1"), {**good("K-2"), "occurred_on": "14/09/2026"}, good("K-3")]
    status, body, text = post(endpoint, items)

    assert status == 202
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "occurred_on")]
    assert "14/09/2026" not in text
    assert len(outbox_rows(settings.outbox)) == 2


def test_health_reports_the_pending_count(endpoint: PushEndpoint) -> None:
    assert request(endpoint, "GET", "/health")[:2] == (200, {"status": "ok", "pending": 0})
    post(endpoint, [good("K-1"), good("K-2"), good("K-3")])
    assert request(endpoint, "GET", "/health")[:2] == (200, {"status": "ok", "pending": 3})


def test_unknown_paths_are_404(endpoint: PushEndpoint) -> None:
    assert request(endpoint, "GET", "/events")[0] == 404
    assert (
        request(endpoint, "POST", "/other", b"{}", {"Authorization": f"Bearer {TOKEN}"})[0] == 404
    )


def test_concurrent_requests_all_land_in_the_outbox(
    endpoint: PushEndpoint, settings: HubSettings
) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def push(worker: int) -> None:
        for n in range(5):
            items = [good(f"W{worker}-{n}-{i}") for i in range(10)]
            status, _, _ = post(endpoint, items)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=push, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [202] * 40
    rows = outbox_rows(settings.outbox)
    assert len(rows) == 400
    assert len({event_id for event_id, _, _ in rows}) == 400


def test_requests_are_logged_without_their_body(
    endpoint: PushEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="adapters"):
        post(endpoint, [good("K-1"), {**good("K-2"), "outcome": "banana"}])
        post(endpoint, good("K-3"), token=WRONG)

    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.http_source"]
    assert any("provider=kooth" in m and "status=202" in m and "rejected=1" in m for m in lines)
    assert any("status=401" in m for m in lines)
    assert_no_values(caplog.text)
    assert "K-1" not in caplog.text


def test_stop_closes_the_port(run: AdapterRun) -> None:
    started = serve(run, "127.0.0.1", free_port(), TOKENS).start()
    assert request(started, "GET", "/health")[0] == 200
    started.stop()
    started.stop()  # twice is harmless

    with pytest.raises(OSError):
        request(started, "GET", "/health")


def test_serve_refuses_a_dry_run_and_no_tokens(settings: HubSettings, run: AdapterRun) -> None:
    with adapter_run(settings, "generic", "counselling", dry_run=True) as dry:
        with pytest.raises(ConfigError):
            serve(dry, "127.0.0.1", 0, TOKENS)
    with pytest.raises(ConfigError):
        serve(run, "127.0.0.1", 0, {})
