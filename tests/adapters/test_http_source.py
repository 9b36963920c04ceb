"""The HTTP push endpoint on a real loopback port: what is accepted, committed and refused.

No Kafka here: the events stop in the outbox (nothing drains it).
"""

from __future__ import annotations

import csv
import http.client
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.runner import AdapterRun, adapter_run
from adapters.sources.http_push import Limits, PushEndpoint, provider_scope, serve
from hub.codec import Codec
from hub.errors import ConfigError
from hub.models import CaseEvent
from hub.pseudonymise import KeyRing, Pseudonymiser, write_key_file
from hub.settings import HubSettings
from tests.support.http_push import OTHER, TOKEN, TOKENS, WRONG, good, post, request
from tests.support.processes import free_port

#: Values that must never come back in an answer or a log line.
PLANTED = ("Nowak", "Zara", "2013-05-02", "DY1 4RT", "943 476 5919", "9434765918", "banana")


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
    with serve(run, "127.0.0.1", free_port(), TOKENS, limits=Limits(max_body=100)) as small:
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
    status, body, _ = request(endpoint, "GET", "/health")
    assert (status, body["status"], body["pending"]) == (200, "ok", 0)
    assert body["oldest_pending_seconds"] == 0
    post(endpoint, [good("K-1"), good("K-2"), good("K-3")])
    status, body, _ = request(endpoint, "GET", "/health")
    assert (status, body["status"], body["pending"]) == (200, "ok", 3)
    assert body["forwarder"] == "stopped"  # nothing drains it here, but nothing is stale yet


def test_health_is_503_while_events_wait_on_a_forwarder_that_is_not_sending(
    settings: HubSettings, tmp_path: Path
) -> None:
    stale = settings.model_copy(update={"forwarder_stale_after": 0.5})
    with (
        adapter_run(stale, "generic", "counselling", quarantine=tmp_path / "q") as run,
        serve(run, "127.0.0.1", free_port(), TOKENS) as endpoint,
    ):
        assert run.forwarder is not None
        run.forwarder.status.set("waiting_for_kafka", "Kafka did not take the events")
        assert request(endpoint, "GET", "/health")[0] == 200  # nothing pending
        post(endpoint, [good("K-1"), good("K-2")])
        time.sleep(0.6)
        status, body, _ = request(endpoint, "GET", "/health")
        assert status == 503
        assert body["status"] == "stalled" and body["forwarder"] == "waiting_for_kafka"
        assert body["pending"] == 2 and body["oldest_pending_seconds"] >= 0.5
        assert "Kafka did not take the events" in body["detail"]
        run.forwarder.status.set("sending")  # a forwarder sending a backlog is healthy
        assert request(endpoint, "GET", "/health")[0] == 200


def test_a_full_outbox_answers_503_and_says_why_in_the_log(
    endpoint: PushEndpoint, run: AdapterRun, caplog: pytest.LogCaptureFixture
) -> None:
    assert run.outbox is not None
    db = run.outbox._db  # noqa: SLF001 (the disk is full: SQLite may not grow the file)
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with caplog.at_level(logging.ERROR, logger="adapters"):
        status, body, text = post(endpoint, [good(f"K-{i}") for i in range(200)])
    assert status == 503
    assert "again later" in body["error"] and str(run.outbox.path) not in text
    assert "is full" in caplog.text and "Free space" in caplog.text
    assert str(run.outbox.path) in caplog.text
    db.execute("PRAGMA max_page_count = 1073741823")  # space is back
    assert post(endpoint, [good(f"K-{i}") for i in range(200)])[0] == 202


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

    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.sources.http_push"]
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


# --- keys are never echoed ------------------------------------------------------------


def test_an_unknown_key_is_never_echoed(
    endpoint: PushEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A JSON key can itself be an identifier: errors name the canonical field or "other"."""
    key = "Zara Nowak DOB 2013-05-02 NHS 9434765919"
    items = [
        good("K-1"),
        {**good("K-2"), key: {"Begbie": "value"}},
        {**good("K-3"), key: ["a list under a key the profile does not map"]},
        {**good("K-4"), "risk_codes": [["grooming"]]},  # a known key: its canonical field
        {**good("K-5"), "RISK_CODES ": {"Begbie": 1}},
    ]
    with caplog.at_level(logging.DEBUG):
        status, body, text = post(endpoint, items)

    assert status == 202 and body["accepted"] == 1
    found = [(r["index"], r["field"]) for r in body["rejected"]]
    assert found == [(1, "other"), (2, "other"), (3, "risk"), (4, "risk")]
    report = (tmp_path / "q" / f"{body['request']}.rejects.csv").read_text()
    fields = [row["field"] for row in csv.DictReader(report.splitlines())]
    assert fields == ["other", "other", "risk", "risk"]
    for where in (text, report, caplog.text):
        for part in ("Zara", "Nowak", "9434765919", "2013-05-02", "RISK_CODES", "Begbie"):
            assert part not in where


# --- provider-scoped records ----------------------------------------------------------

SESSION = {
    "session_id": "s-1",
    "event": "chat_session",
    "session_date": "2026-09-14",
    "user_id": "u-1",
    "age": "14",
    "local_authority": "Brierley Hill",
    "presenting_issues": ["sexting"],
}


@pytest.fixture
def counselling(settings: HubSettings, tmp_path: Path) -> Iterator[PushEndpoint]:
    with (
        adapter_run(settings, "counselling", None, quarantine=tmp_path / "q") as opened,
        serve(opened, "127.0.0.1", free_port(), TOKENS) as started,
    ):
        yield started


def changes(answer: dict[str, Any]) -> tuple[int, int, int, int]:
    return answer["new"], answer["corrected"], answer["withdrawn"], answer["unchanged"]


def test_two_providers_never_overwrite_or_drop_each_others_records(
    counselling: PushEndpoint, settings: HubSettings
) -> None:
    """The same session id and user id from two providers are two records and two users."""
    kooth = post(counselling, SESSION)
    chatline = post(counselling, SESSION, token=OTHER)  # the very same item: still new
    chatline_changed = post(counselling, {**SESSION, "age": "16"}, token=OTHER)
    kooth_again = post(counselling, SESSION)  # a resend: recognised as unchanged
    chatline_again = post(counselling, {**SESSION, "age": "16"}, token=OTHER)

    assert [status for status, _, _ in (kooth, chatline, chatline_changed)] == [202] * 3
    assert changes(kooth[1]) == (1, 0, 0, 0)
    assert changes(chatline[1]) == (1, 0, 0, 0)
    assert changes(chatline_changed[1]) == (0, 1, 0, 0)  # its own record, not kooth's
    assert changes(kooth_again[1]) == (0, 0, 0, 1)
    assert changes(chatline_again[1]) == (0, 0, 0, 1)

    rows = outbox_rows(settings.outbox)
    codec = Codec("case_event")
    events = [CaseEvent.from_avro(codec.decode(value)) for _, _, value in rows]
    assert len(events) == 3
    by_key: dict[str, list[CaseEvent]] = {}
    for event in events:
        by_key.setdefault(event.record_key, []).append(event)
    assert sorted(len(v) for v in by_key.values()) == [1, 2]  # kooth 1, chatline 2 versions
    assert len({e.subject for e in events}) == 2  # one user id, two providers: two users
    # The record key stays keyed (HMAC under the partnership key), scoped to the provider.
    pseudonymiser = Pseudonymiser.from_settings(settings)
    kooth_key = pseudonymiser.record_key("counselling", provider_scope("kooth") + "s-1")
    chatline_key = pseudonymiser.record_key("counselling", provider_scope("chatline") + "s-1")
    assert set(by_key) == {kooth_key, chatline_key}
    assert pseudonymiser.record_key("counselling", "s-1") not in by_key
    for _, _, value in rows:
        for planted in (b"s-1", b"u-1", b"kooth", b"chatline", b"Brierley"):
            assert planted not in value
    assert {e.area_code for e in events} == {"brierley-hill"}


def test_one_providers_withdrawal_leaves_another_providers_record(
    endpoint: PushEndpoint, run: AdapterRun
) -> None:
    assert changes(post(endpoint, good("K-1"))[1]) == (1, 0, 0, 0)
    withdrawal = {**good("K-1"), "record_version": 2, "event_type": "withdrawn"}
    status, answer, _ = post(endpoint, withdrawal, token=OTHER)
    assert status == 202 and answer["accepted"] == 1
    assert run.outbox is not None
    pseudonymiser = run.adapter.pseudonymiser
    kooth_key = pseudonymiser.record_key("counselling", provider_scope("kooth") + "K-1")
    live = {state.record_key for state in run.outbox.live_records("counselling")}
    assert kooth_key in live
    assert changes(post(endpoint, good("K-1"))[1]) == (0, 0, 0, 1)  # still kooth's, unchanged
