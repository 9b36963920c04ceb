"""The push endpoint as `hub adapter run --serve` runs it, against clients that are not
well behaved: HTTPS, tokens that almost match, slow and silent clients, oversized bodies,
a Content-Length that lies; its log; and a clean stop on SIGTERM.

No Kafka here but for the stop: the forwarder waits for an unreachable broker, so what is
accepted stays in the outbox, where the tests read it.
"""

from __future__ import annotations

import datetime
import errno
import hmac
import http.client
import ipaddress
import json
import os
import re
import selectors
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.runner import AdapterRun, adapter_run
from adapters.sources import http_push
from adapters.sources.http_push import Limits, Tokens, serve, tls_context
from hub.codec import Codec
from hub.errors import ConfigError
from hub.models import CaseEvent
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from tests.support.http_push import TOKEN, TOKENS, Remote, good, post, request
from tests.support.outbox import event_ids_on
from tests.support.processes import free_port, settings_env

#: The read timeout the served endpoints run with, and what a close may take beyond it.
READ_TIMEOUT = 3.0
SLACK = 3.0
#: Values that must never reach the log.
PLANTED = ("Nowak", "Zara", "2013-05-02", "DY1 4RT", "943 476 5919", "9434765918")


# --- serving ---------------------------------------------------------------------------


@dataclass
class Served:
    """A `hub adapter run --serve` process, its log and its outbox."""

    process: subprocess.Popen[bytes]
    remote: Remote
    log: Path
    outbox: Path
    tls: ssl.SSLContext | None = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, within: float = 30) -> int:
        """SIGTERM, then SIGKILL after `within` seconds. Without Kafka the forwarder may be
        in the Kafka client's reconnect backoff (up to 30 s) when the signal comes."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def served_settings(tmp_path: Path, **update: Any) -> HubSettings:
    key_file = tmp_path / "partnership.key"
    if not key_file.exists():
        write_key_file(key_file, KeyRing.generate("t"))
    settings = HubSettings(
        key_file=key_file,
        outbox=tmp_path / "outbox.sqlite",
        bootstrap="127.0.0.1:1",  # no Kafka: the events stay in the outbox
        publish_timeout=2.0,
        push_read_timeout=READ_TIMEOUT,
    )
    return settings.model_copy(update=update)


def start_serving(
    settings: HubSettings, tmp_path: Path, client_tls: ssl.SSLContext | None = None
) -> Served:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "adapter", "run", "--profile", "generic"]
            + ["--agency", "camhs", "--serve", str(port), "--tokens", str(tokens)]
            + ["--quarantine", str(tmp_path / "q"), "--metrics-port", "0"],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Served(process, Remote("127.0.0.1", port), log, settings.outbox, client_tls)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, served.log_text()
        try:
            if request(served.remote, "GET", "/health", tls=client_tls)[0] == 200:
                return served
        except OSError:
            pass
        time.sleep(0.2)
    served.stop()
    raise AssertionError(f"the endpoint did not answer: {served.log_text()}")


def outbox_rows(path: Path) -> list[tuple[str, bytes]]:
    """The outbox as another process sees it: only what is committed."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT event_id, value FROM outbox ORDER BY seq").fetchall()
    return [(str(e), bytes(v)) for e, v in rows]


def headers_for(length: int, token: str = TOKEN) -> bytes:
    return (
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it did
    (seconds from now); AssertionError when it is still open after `within`."""
    began = time.monotonic()
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError as exc:
        raise AssertionError(f"still open after {within} s; got {received[:80]!r}") from exc
    except ConnectionResetError:
        pass
    return received, time.monotonic() - began


# --- HTTPS -----------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub push test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "push.crt", folder / "push.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_only_with_a_certificate_and_key(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    settings = served_settings(tmp_path, push_tls_certfile=cert_file, push_tls_keyfile=key_file)
    served = start_serving(settings, tmp_path, trusting)
    try:
        status, body, _ = post(served.remote, [good("TLS-1"), good("TLS-2")], tls=trusting)
        assert (status, body["accepted"]) == (202, 2)
        assert len(outbox_rows(served.outbox)) == 2

        # Plain HTTP to the TLS port is not served.
        with pytest.raises((http.client.HTTPException, OSError)):
            request(served.remote, "GET", "/health")
        with pytest.raises((http.client.HTTPException, OSError)):
            post(served.remote, good("PLAIN-1"))
        # A client that does not trust the certificate does not talk to it.
        with pytest.raises(ssl.SSLCertVerificationError):
            request(served.remote, "GET", "/health", tls=ssl.create_default_context())
        assert request(served.remote, "GET", "/health", tls=trusting)[0] == 200
        # A client that never starts its TLS handshake is dropped at the read timeout.
        with socket.create_connection((served.remote.host, served.remote.port)) as silent:
            received, took = read_until_closed(silent, READ_TIMEOUT + SLACK)
        assert received == b"" and READ_TIMEOUT - 0.5 < took
    finally:
        served.stop(within=5)
    log = served.log_text()
    assert "accepting events at https://127.0.0.1:" in log
    assert "unencrypted" not in log
    assert len(outbox_rows(served.outbox)) == 2


def test_the_tls_context_is_tls_1_2_or_later_and_needs_both_files(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    context = tls_context(cert_file, key_file)
    assert context is not None and context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert tls_context(None, None) is None
    with pytest.raises(ConfigError, match="HUB_PUSH_TLS_KEYFILE is not"):
        tls_context(cert_file, None)
    with pytest.raises(ConfigError, match="HUB_PUSH_TLS_CERTFILE is not"):
        tls_context(None, key_file)
    with pytest.raises(ConfigError, match="cannot load"):
        tls_context(key_file, cert_file)


def test_serve_with_only_a_certificate_is_an_error_naming_the_key(tmp_path: Path) -> None:
    cert_file, _ = self_signed(tmp_path)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    settings = served_settings(tmp_path, push_tls_certfile=cert_file)
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "adapter", "run", "--profile", "generic"]
        + ["--agency", "camhs", "--serve", str(free_port()), "--tokens", str(tokens)]
        + ["--quarantine", str(tmp_path / "q"), "--metrics-port", "0"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "error: HUB_PUSH_TLS_CERTFILE is set but HUB_PUSH_TLS_KEYFILE is not" in result.stderr
    assert "Traceback" not in result.stderr


# --- tokens ----------------------------------------------------------------------------


def test_every_token_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    many = {f"token-{n:02d}-{'x' * 30}": f"provider-{n}" for n in range(10)}
    tokens = Tokens(many)
    compared: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for token, provider in [*list(many.items())[:1], *list(many.items())[-1:]]:
        compared.clear()
        assert tokens.provider_of(f"Bearer {token}") == provider
        assert compared == [32] * 10  # all of them, as digests of one length
    compared.clear()
    assert tokens.provider_of("Bearer token-00") is None
    assert compared == [32] * 10


# --- one endpoint, many misbehaving clients --------------------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp_path = tmp_path_factory.mktemp("plain")
    served = start_serving(served_settings(tmp_path), tmp_path)
    try:
        yield served
    finally:
        served.stop(within=5)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        TOKEN[:-1] + ("A" if TOKEN[-1] != "A" else "B"),  # one character different
        "B" + TOKEN[1:] if TOKEN[0] != "B" else "C" + TOKEN[1:],
        TOKEN[:-1],  # a prefix
        TOKEN[:8],
        TOKEN + "x",  # the token and a suffix
        TOKEN + TOKEN,
        TOKEN.upper() if TOKEN.upper() != TOKEN else TOKEN.lower(),
    ],
)
def test_a_wrong_or_near_miss_token_is_401(plain: Served, token: str) -> None:
    before = len(outbox_rows(plain.outbox))
    status, body, _ = post(plain.remote, good("NEAR-1"), token=token)
    assert (status, body) == (401, {"error": "unauthorised"})
    assert len(outbox_rows(plain.outbox)) == before


def test_an_oversized_body_is_413_and_stores_nothing(plain: Served) -> None:
    before = len(outbox_rows(plain.outbox))
    item = json.dumps(good("BIG-1")).encode()
    body = b"[" + b",".join([item] * (5 * 1024 * 1024 // len(item) + 1)) + b"]"
    assert len(body) > 5 * 1024 * 1024
    status, answer, _ = post(plain.remote, body)
    assert status == 413 and "body over 5242880 bytes" in answer["error"]

    # Declared over the limit and never sent: answered at once, the connection closed.
    with socket.create_connection((plain.remote.host, plain.remote.port)) as sock:
        sock.sendall(headers_for(50 * 1024 * 1024))
        received, _ = read_until_closed(sock, 10)
    assert received.startswith(b"HTTP/1.1 413 ")
    assert len(outbox_rows(plain.outbox)) == before


def test_a_body_shorter_than_its_content_length_times_out_and_stores_nothing(
    plain: Served,
) -> None:
    before = len(outbox_rows(plain.outbox))
    body = json.dumps([good("SHORT-1")]).encode()
    with socket.create_connection((plain.remote.host, plain.remote.port)) as sock:
        sock.sendall(headers_for(len(body) + 100) + body)
        received, took = read_until_closed(sock, READ_TIMEOUT + SLACK)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"the body did not arrive" in received
    assert READ_TIMEOUT - 0.5 < took < READ_TIMEOUT + SLACK
    assert len(outbox_rows(plain.outbox)) == before


def test_a_body_longer_than_its_content_length_is_read_only_as_declared(
    plain: Served,
) -> None:
    before = len(outbox_rows(plain.outbox))
    body = json.dumps([good("LONG-1"), good("LONG-2")]).encode()
    declared = len(body) // 2  # the rest is not the body
    for pause in (0.0, 0.5):  # the surplus in the same packet, or after the answer
        with socket.create_connection((plain.remote.host, plain.remote.port)) as sock:
            sock.sendall(headers_for(declared) + body[:declared])
            time.sleep(pause)
            try:
                sock.sendall(body[declared:])
            except OSError:
                pass  # already closed: fine
            received, _ = read_until_closed(sock, READ_TIMEOUT + SLACK)
        assert received.startswith(b"HTTP/1.1 400 ") or received.startswith(b"HTTP/1.0 400 ")
        for planted in PLANTED:  # the bytes it could not read are never echoed
            assert planted.encode() not in received
    assert len(outbox_rows(plain.outbox)) == before


@dataclass
class Slow:
    """One slow connection: when it opened, how much of `PARTIAL` it sent (None: it sends
    nothing), and what the server sent it."""

    sock: socket.socket
    opened: float
    sent: int | None
    received: bytes = b""


class SlowClients:
    """`count` connections that send a request's headers a byte every `TRICKLE` s, or
    nothing, each re-opened as soon as the server closes it; how long each lived (from the
    client's connect, so including any wait in the listen backlog) and what it was told."""

    PARTIAL = (
        b"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + b"X-Padding: "
        + b"p" * 400
    )
    TRICKLE = 0.25

    def __init__(self, address: tuple[str, int], count: int) -> None:
        self.address = address
        self.count = count
        self.lifetimes: list[float] = []
        self.answers: dict[bytes, int] = {}
        self.stop = threading.Event()
        #: The fewest connections open at once (from the client's side).
        self.low_water = count
        self._selector = selectors.DefaultSelector()
        self._open: dict[socket.socket, Slow] = {}
        self._opened = 0

    def run(self) -> None:
        self._top_up()
        trickled = time.monotonic()
        while not self.stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                self._read(key.data)
            if time.monotonic() - trickled >= self.TRICKLE:
                trickled = time.monotonic()
                for slow in list(self._open.values()):
                    self._trickle(slow)
            self._top_up()
            self.low_water = min(self.low_water, len(self._open))
        for sock in list(self._open):
            sock.close()
        self._selector.close()

    def _top_up(self) -> None:
        while len(self._open) < self.count:
            sock = socket.socket()
            sock.setblocking(False)
            if sock.connect_ex(self.address) not in (0, errno.EINPROGRESS):
                sock.close()
                return
            self._opened += 1
            # Every other one trickles its headers; the rest send nothing.
            slow = Slow(sock, time.monotonic(), 0 if self._opened % 2 else None)
            self._open[sock] = slow
            self._selector.register(sock, selectors.EVENT_READ, data=slow)

    def _trickle(self, slow: Slow) -> None:
        if slow.sent is None or slow.sent >= len(self.PARTIAL):
            return
        try:
            slow.sock.send(self.PARTIAL[slow.sent : slow.sent + 1])
            slow.sent += 1
        except OSError:
            pass  # not connected yet, or closed: the read says which

    def _read(self, slow: Slow) -> None:
        try:
            chunk = slow.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            slow.received += chunk
            return
        del self._open[slow.sock]  # closed by the server
        self._selector.unregister(slow.sock)
        slow.sock.close()
        self.lifetimes.append(time.monotonic() - slow.opened)
        answered = slow.received.startswith(b"HTTP/1.")
        status = slow.received[9:12] if answered else b"---"
        self.answers[status] = self.answers.get(status, 0) + 1


def test_a_slow_or_silent_client_is_closed_at_the_read_timeout(plain: Served) -> None:
    address = (plain.remote.host, plain.remote.port)
    with (
        socket.create_connection(address) as silent,
        socket.create_connection(address) as trickling,
    ):
        began = time.monotonic()
        trickling.settimeout(0.2)
        for byte in SlowClients.PARTIAL:
            try:
                trickling.send(bytes([byte]))
            except OSError:
                break  # closed
            try:
                if trickling.recv(1000):
                    break
            except TimeoutError:
                pass
        for sock in (silent, trickling):
            received, _ = read_until_closed(sock, READ_TIMEOUT + SLACK)
            took = time.monotonic() - began
            assert READ_TIMEOUT - 0.5 < took < READ_TIMEOUT + SLACK
            assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received


def test_slow_clients_never_keep_out_a_valid_request(plain: Served) -> None:
    """200 connections sending headers a byte at a time or nothing, held for 30 s (re-opened
    as they are closed), against at most 64 open connections and a 3 s read timeout: valid
    requests are still answered within seconds, and every slow connection is closed."""
    before = len(outbox_rows(plain.outbox))
    slow = SlowClients((plain.remote.host, plain.remote.port), 200)
    flood = threading.Thread(target=slow.run, name="slow-clients")
    flood.start()
    latencies: list[float] = []
    try:
        time.sleep(2)  # the flood is at full strength
        held_until = time.monotonic() + 28
        n = 0
        while time.monotonic() < held_until:
            n += 1
            began = time.monotonic()
            status, body, _ = post(plain.remote, [good(f"VALID-{n}-{i}") for i in range(5)])
            latencies.append(time.monotonic() - began)
            assert (status, body["accepted"]) == (202, 5), body
            time.sleep(1)
    finally:
        slow.stop.set()
        flood.join()
    print(f"valid requests: {len(latencies)}, slowest {max(latencies):.2f} s;")
    print(f"slow connections closed: {len(slow.lifetimes)}, answers {slow.answers},")
    print(f"longest lived {max(slow.lifetimes):.2f} s; fewest open {slow.low_water}")
    assert len(latencies) >= 5
    assert max(latencies) < 6.0
    # The flood held: 200 open (or waiting to be accepted) all along.
    assert slow.low_water >= 190
    # Closed by the server within the read timeout (after waiting their turn to be accepted).
    assert len(slow.lifetimes) > 200
    assert max(slow.lifetimes) < READ_TIMEOUT + SLACK
    assert set(slow.answers) <= {b"408", b"503", b"---"}
    assert len(outbox_rows(plain.outbox)) == before + 5 * len(latencies)


def test_after_all_that_it_still_answers(plain: Served) -> None:
    status, body, _ = request(plain.remote, "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    status, body, _ = post(plain.remote, good("AFTER-1"))
    assert status == 202 and body["new"] == 1
    assert plain.process.poll() is None


def test_the_log_has_a_line_per_request_and_no_value_token_or_pseudonym(plain: Served) -> None:
    log = plain.log_text()
    line = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO adapters\.sources\.http_push: POST /events"
        r" provider=kooth request=http-kooth-\S+ status=202 accepted=\d+ new=\d+ rejected=0"
        r" duration=\d+\.\d{3}s$",
        re.MULTILINE,
    )
    assert line.search(log), log[-3000:]
    assert "status=401" in log and "status=413" in log and "status=408" in log
    assert log.count("serves plain HTTP") == 1  # the warning, once
    for secret in (*TOKENS, *PLANTED):
        assert secret not in log
    codec = Codec("case_event")
    for _, value in outbox_rows(plain.outbox):
        event = CaseEvent.from_avro(codec.decode(value))
        assert event.record_key not in log
        assert event.subject is None or event.subject.value not in log
    assert "Traceback" not in log


# --- stopping --------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight_and_exits_0(
    topics: HubSettings, tmp_path: Path
) -> None:
    """On a real broker, so that the forwarder is sending when the signal comes (its stop
    while Kafka is unreachable is the forwarder's own matter)."""
    settings = topics.model_copy(update={"push_read_timeout": READ_TIMEOUT})
    served = start_serving(settings, tmp_path)
    address = (served.remote.host, served.remote.port)
    body = json.dumps([good(f"LATE-{i}") for i in range(30)]).encode()
    try:
        assert post(served.remote, [good(f"EARLY-{i}") for i in range(20)])[0] == 202
        with (
            socket.create_connection(address) as idle,
            socket.create_connection(address) as in_flight,
        ):
            in_flight.sendall(headers_for(len(body)) + body[:100])
            time.sleep(0.5)

            os.killpg(served.process.pid, signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.5)
            with pytest.raises(OSError):  # no longer accepting
                socket.create_connection(address, timeout=2).close()
            in_flight.sendall(body[100:])  # the rest of a body begun before the signal
            answer, _ = read_until_closed(in_flight, 10)
            assert answer.startswith(b"HTTP/1.1 202 "), answer
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["accepted"] == 30
            assert read_until_closed(idle, 10)[0] == b""  # closed, unanswered

        assert served.process.wait(timeout=15) == 0
        took = time.monotonic() - signalled
    finally:
        served.stop()
    assert took < 10, took
    # Nothing lost: every accepted event is in the outbox, sent or still to be sent.
    stored = {event_id for event_id, _ in outbox_rows(served.outbox)}
    assert len(stored) == 50
    assert set(event_ids_on(settings, settings.case_topic("camhs"))) <= stored
    log = served.log_text()
    assert "SIGTERM: stopping the push endpoint" in log and "stopped" in log
    assert "Traceback" not in log


# --- in one process: the cap ------------------------------------------------------------


@pytest.fixture
def run(tmp_path: Path) -> Iterator[AdapterRun]:
    settings = served_settings(tmp_path)
    with adapter_run(settings, "generic", "counselling", quarantine=tmp_path / "q") as opened:
        yield opened


def test_at_the_cap_the_connection_waiting_longest_makes_room(run: AdapterRun) -> None:
    limits = Limits(max_connections=4, read_timeout=30)
    with serve(run, "127.0.0.1", free_port(), TOKENS, limits=limits) as endpoint:
        idle = [socket.create_connection((endpoint.host, endpoint.port)) for _ in range(4)]
        time.sleep(0.2)
        began = time.monotonic()
        status, _, _ = post(endpoint, good("CAP-1"))  # waits in the backlog, then is served
        took = time.monotonic() - began
        assert status == 202
        assert http_push.STALLED_AFTER - 0.5 < took < http_push.STALLED_AFTER + 2
        answers = []
        for sock in idle:
            sock.settimeout(0.5)
            try:
                answers.append(sock.recv(200)[:12])
            except TimeoutError:
                answers.append(b"")
            sock.close()
        assert answers.count(b"HTTP/1.1 503") == 1 and answers.count(b"") == 3
