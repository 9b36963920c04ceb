"""HTTP push endpoint: providers (e.g. an online counselling service) POST JSON events.

Served by aiohttp's web server in the adapter process: over HTTPS when the run has a
certificate and key (`tls_context`: HUB_PUSH_TLS_CERTFILE and HUB_PUSH_TLS_KEYFILE,
TLS 1.2 or later, HTTPS only), otherwise over plain HTTP on the address it is given
(loopback by default), with a warning at start that requests and tokens then travel
unencrypted.

``POST /events`` with ``Authorization: Bearer <token>`` and
``Content-Type: application/json``; the body is one flat JSON object or a list
of them, keyed as in the adapter's profile (the same rules as a JSON-lines
file: see `adapters.sources.jsonl.flat_values`). Responses, checked in order:

- 401: no bearer token, or one not in the configured tokens. Every configured
  token is compared, each in constant time (`Tokens`).
- 415: the content type is not ``application/json``.
- 411: no usable Content-Length (chunked bodies are not accepted).
- 413: the body is over the limit (`Limits.max_body`, 5 MiB by default), answered
  without reading it; the connection is then closed.
- 408: the body did not arrive within the read timeout (a Content-Length larger
  than the body sent); nothing is stored and the connection is closed.
- 400: the body is not valid JSON (or is nested too deeply to parse), is neither
  an object nor a list, is an empty list, or no item in it was accepted. The
  JSON answer names each rejected item's ``index`` (0-based position in the
  list; 0 for a single object), ``row`` (index + 1, the row of the quarantine
  report), ``field`` (the canonical field, e.g. ``risk`` for ``presenting_issues``;
  ``other`` for a key the profile does not map; ``*`` for the item as a whole)
  and ``reason``. Neither values nor keys are ever echoed. A risk or platform
  value may be a list of the agency's terms (``["Sexting", "Online grooming"]``).
- 202: ``{"accepted": n, "new": a, "corrected": b, "withdrawn": c, "unchanged": d,
  "rejected": [...], "request": "http-<provider>-<t>-<n>"}`` sent only after the
  accepted events are committed to the outbox (`Sink.ingest` returns after
  the outbox transaction commits). ``new`` counts records the adapter had not
  seen, ``unchanged`` items identical to what was sent before (a resent request
  sends nothing twice), ``corrected`` and ``withdrawn`` changed records.

Records are the provider's own: the provider a token names scopes its record
ids, person ids and case ids (`RequestSource`), so two providers pushing
under one agency never overwrite, withdraw or drop each other's records, nor
link each other's users, whatever ids they use.

Partial acceptance: a request with some bad items accepts the good ones and
answers 202 with the rejected ones listed (they also go to the quarantine
report as ``<quarantine>/http:<provider>:<n>.rejects.csv``); only when every
item is bad is the answer 400. A provider should fix and resend only the
rejected items (resending all is harmless: events are keyed by event id).

``GET /health`` (no authentication) answers ``{"status": "ok" | "stalled", "pending": n,
"oldest_pending_seconds": s, "forwarder": <state>, "forwarder_since": <Unix time>,
"detail": <what went wrong>}``: 200, or 503 when the outbox forwarder failed, or is
not sending (Kafka unreachable, an outbox error) while an event has waited longer
than HUB_FORWARDER_STALE_AFTER seconds, or the outbox cannot be read
(`adapters.metrics.outbox_health`). A request that cannot be stored because the
outbox cannot be written (a full disk) is answered 503: send it again later.

Limits (`Limits`, from the HUB_PUSH_* settings), so that no client, slow or
hostile, holds the endpoint:

- At most `Limits.max_connections` (64) connections are open at once, TLS
  handshakes included; further clients wait in the listen backlog. When the
  endpoint is full and a client is waiting, the open connection that has waited
  longest for its next request, if that is over `STALLED_AFTER` (1 s), is closed
  with 503 to make room; a request being answered is never cut off.
- A request's line and headers must arrive within `Limits.read_timeout` (10 s)
  of the connection opening (or of the previous answer on a kept-alive
  connection), else the connection is closed with 408; its body must arrive
  within as long again. A TLS handshake has as long too.
- A request line or header line over `MAX_LINE` bytes, or more than
  `MAX_HEADERS` headers, is refused with 400.
- A Content-Length that is larger than the body sent times out (408, closed,
  nothing stored); one that is smaller makes only the declared bytes the body
  (the rest is read as the next request, and refused as such).

Every request is logged at INFO, once: method, path, provider, request name,
status, items accepted, new and rejected, and duration; ``GET /health``, which
monitors poll, at DEBUG. Never a body, a value, a key, a token or a pseudonym:
aiohttp's own line about a request it could not parse (which may quote the
bytes received) is replaced by one naming the kind of error only.

The endpoint stores each request through a `Sink` (`adapters.sources.base`):
the adapter run, which maps it into its outbox. The outbox is synchronous, so
every store and every /health read runs on one thread of its own, one at a
time, in order: requests never interleave writes. Forwarding to Kafka is not
done in the request path: the caller runs the outbox forwarder beside the
endpoint (`AdapterRun.forwarding_in_background`).

`PushEndpoint.stop` (SIGTERM or Ctrl-C under `PushEndpoint.serve_forever`)
stops accepting, closes idle connections, lets the requests in flight finish
(for up to `STOP_GRACE` seconds; any still running then is cancelled and its
client gets no answer, so it sends the request again, which stores nothing
twice), waits for the store in progress to commit, and closes the socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import signal
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from aiohttp import web

from adapters.profile import vocabulary_key
from adapters.sources.base import Ingested, Sink, SourceKind, SourceRecord
from adapters.sources.jsonl import flat_values, header_fields, list_headers
from adapters.versions import CHANGES
from hub.errors import ConfigError, HubError, OutboxError, RecordError

log = logging.getLogger(__name__)

#: Largest body accepted, in bytes (HUB_PUSH_MAX_BODY).
MAX_BODY = 5 * 1024 * 1024
#: Connections open at once (HUB_PUSH_MAX_CONNECTIONS).
MAX_CONNECTIONS = 64
#: Seconds a client has to send a request's line and headers, and then its body
#: (HUB_PUSH_READ_TIMEOUT); a TLS handshake has as long.
READ_TIMEOUT = 10.0
DEFAULT_HOST = "127.0.0.1"
#: Seconds a connection may wait for its request before, when the endpoint is full and
#: another client waits, it is closed to make room.
STALLED_AFTER = 1.0
#: Longest request line or header line, in bytes, and most headers in one request.
MAX_LINE = 8190
MAX_HEADERS = 64
#: Clients the operating system holds waiting while every connection is taken.
BACKLOG = 1024
#: Seconds an unread body (a refused request) is still read and dropped after the
#: answer, so that the client sees the answer rather than a reset connection.
LINGER = 2.0
#: Seconds requests in flight have to finish when the endpoint stops.
STOP_GRACE = 10.0
SERVER = "hub-push/1"
#: Longest field name echoed back (a canonical field name, "other" or "*").
FIELD_CHARS = 100
#: The canonical fields whose values are the provider's own ids: scoped to the provider.
SCOPED_FIELDS = frozenset({"record_id", "local_id", "case_id"})
#: The routes, as the log names them; any other path is logged as "other".
ROUTES = frozenset({"/events", "/health"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def provider_scope(provider: str) -> str:
    """The prefix of a provider's ids: a digest of its name, so that no id one provider
    sends can equal one another sends, whatever the names and ids hold, even once the
    mapper has folded case and spacing (it stays on this machine: ids are keyed)."""
    return hashlib.sha256(provider.encode("utf-8")).hexdigest()[:32] + ":"


@dataclass
class RequestSource:
    """The items of one request as a `Source`: row = 1-based position of the item.

    With a `provider`, the values of its id fields (`SCOPED_FIELDS`: record id,
    person id, case id) are prefixed with `provider_scope`, so records and people
    are the provider's own: the same session id from two providers is two records,
    and a request resent by the same provider is recognised as unchanged.
    """

    name: str
    items: list[Any]
    #: Headers whose value may be a list of terms (`adapters.sources.jsonl.list_headers`).
    lists: frozenset[str] = frozenset()
    #: Header -> canonical field (`adapters.sources.jsonl.header_fields`): what errors name.
    fields: Mapping[str, str] = field(default_factory=dict)
    #: The provider the bearer token names; None: ids are not scoped.
    provider: str | None = None

    @property
    def kind(self) -> SourceKind:
        return "http"

    def records(self) -> Iterator[SourceRecord | RecordError]:
        scope = None if self.provider is None else provider_scope(self.provider)
        for row, item in enumerate(self.items, start=1):
            record = flat_values(self.name, row, item, self.lists, self.fields)
            if scope is not None and isinstance(record, SourceRecord):
                record = self._scoped(record, scope)
            yield record

    def _scoped(self, record: SourceRecord, scope: str) -> SourceRecord:
        values = dict(record.values)
        for header, text in record.values.items():
            if text.strip() and self.fields.get(vocabulary_key(header)) in SCOPED_FIELDS:
                values[header] = scope + text.strip()
        return SourceRecord(record.source, record.row, values)


def rejection(error: RecordError) -> dict[str, Any]:
    """What the provider is told about one rejected item: where and why, never the value."""
    return {
        "index": error.row - 1,
        "row": error.row,
        "field": error.field[:FIELD_CHARS],
        "reason": error.reason,
    }


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_items(raw: bytes) -> tuple[list[Any] | None, str]:
    """A body's items (one object or a list), or None and what is wrong, never quoting it."""
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        # The position only: the message of a JSONDecodeError never holds the document.
        return None, f"body is not valid JSON (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        return None, "body is not valid JSON"
    except RecursionError:
        return None, "body is not valid JSON: nested too deeply"
    if isinstance(data, dict):
        return [data], ""
    if not isinstance(data, list):
        return None, "body must be a JSON object or a list of objects"
    if not data:
        return None, "empty list: no items"
    return data, ""


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What one client may take of the endpoint (the HUB_PUSH_* settings)."""

    max_body: int = MAX_BODY
    max_connections: int = MAX_CONNECTIONS
    read_timeout: float = READ_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_body < 1 or self.max_connections < 1 or not self.read_timeout > 0:
            raise ConfigError(
                "the push endpoint's body limit, connection cap and read timeout must be"
                f" positive (got {self.max_body}, {self.max_connections}, {self.read_timeout})"
            )


def tls_context(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or later) from a PEM certificate chain and its
    private key; None when neither is given (plain HTTP). ConfigError when only one is
    given, or they cannot be loaded."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        given, missing = (
            ("HUB_PUSH_TLS_KEYFILE", "HUB_PUSH_TLS_CERTFILE")
            if certfile is None
            else ("HUB_PUSH_TLS_CERTFILE", "HUB_PUSH_TLS_KEYFILE")
        )
        raise ConfigError(
            f"{given} is set but {missing} is not: the push endpoint serves HTTPS with both"
            " (the certificate chain and its private key, PEM), plain HTTP with neither"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the push endpoint's certificate {certfile} and key {keyfile}: {exc}"
        ) from exc
    return context


class Tokens:
    """Bearer token -> provider. A presented token is compared with every configured one,
    each in constant time (digests of equal length), so the time taken says neither
    whether nor which token matched."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._known = [(_digest(token), provider) for token, provider in tokens.items()]

    def provider_of(self, authorization: str) -> str | None:
        """The provider an ``Authorization: Bearer <token>`` header names, or None."""
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            given = _digest(token)
        except UnicodeError:
            return None
        matches = [hmac.compare_digest(given, known) for known, _ in self._known]
        return next((p for (_, p), hit in zip(self._known, matches, strict=True) if hit), None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


# --- requests --------------------------------------------------------------------------


@dataclass
class Answer:
    """One answer, and what its log line says."""

    status: HTTPStatus
    body: Mapping[str, Any]
    provider: str | None = None
    name: str | None = None
    summary: Ingested | None = None
    #: Close the connection after answering (the body was not, or not all, read); an
    #: unread body is still read and dropped for up to `LINGER` s, so the client sees the
    #: answer rather than a reset.
    close: bool = False
    #: Close it as soon as the answer is written (the client is too slow to wait for).
    close_now: bool = False

    def response(self) -> web.Response:
        headers = {"Cache-Control": "no-store", "Server": SERVER}
        if self.status == HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer realm="hub"'
        response = web.Response(
            status=int(self.status),
            body=json.dumps(self.body).encode("utf-8"),
            content_type="application/json",
            headers=headers,
        )
        if self.close:
            response.force_close()
        return response


class PushHandler:
    """What the endpoint does with a request: authenticate, read, store, answer, log.

    Stores (and /health reads) run on `store_lane`, a single thread: one at a time.
    """

    def __init__(self, sink: Sink, tokens: Mapping[str, str], limits: Limits) -> None:
        if not sink.storing:
            raise ConfigError("the HTTP push endpoint needs an outbox (not a dry run)")
        if not tokens:
            raise ConfigError("the HTTP push endpoint needs at least one provider token")
        self.sink = sink
        self.tokens = Tokens(tokens)
        self.limits = limits
        self.lists = list_headers(sink.profile)
        self.fields = header_fields(sink.profile)
        self.started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._numbers = itertools.count(1)
        self.store_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-push-store")

    def close(self) -> None:
        """Wait for the store in progress; nothing is stored once this returns."""
        self.store_lane.shutdown(wait=True, cancel_futures=True)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            answer = await self._route(request)
        except Exception:  # never an aiohttp error page, whose log line could quote input
            log.exception("a request to the push endpoint failed")
            answer = Answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal"}, close=True)
        self._log(request, answer, loop.time() - began)
        response = answer.response()
        if answer.close_now:
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()  # the written answer is sent first
        return response

    async def _route(self, request: web.BaseRequest) -> Answer:
        if request.path == "/health" and request.method == "GET":
            return await self._health()
        if request.path == "/events" and request.method == "POST":
            return await self._events(request)
        return Answer(HTTPStatus.NOT_FOUND, {"error": "not found"})

    async def _health(self) -> Answer:
        health = await asyncio.get_running_loop().run_in_executor(self.store_lane, self.sink.health)
        status = HTTPStatus.SERVICE_UNAVAILABLE if health.stalled else HTTPStatus.OK
        return Answer(status, health.as_json())

    async def _events(self, request: web.BaseRequest) -> Answer:
        provider = self.tokens.provider_of(request.headers.get("Authorization", ""))
        if provider is None:
            return Answer(HTTPStatus.UNAUTHORIZED, {"error": "unauthorised"})
        refused = self._refused(request)
        if refused is not None:
            refused.provider = provider
            return refused
        length = int(request.headers["Content-Length"])
        if request.headers.get("Expect", "").lower() == "100-continue":
            # The client waits for this before sending the body: only now it is wanted.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        timeout = self.limits.read_timeout
        try:
            async with asyncio.timeout(timeout):
                raw = await request.content.readexactly(length)
        except TimeoutError:
            problem = f"the body did not arrive within {timeout:g} s"
            return Answer(HTTPStatus.REQUEST_TIMEOUT, {"error": problem}, provider, close_now=True)
        except asyncio.IncompleteReadError:
            problem = "body shorter than its Content-Length"
            return Answer(HTTPStatus.BAD_REQUEST, {"error": problem}, provider, close=True)
        return await asyncio.get_running_loop().run_in_executor(
            self.store_lane, self._store, provider, raw
        )

    def _refused(self, request: web.BaseRequest) -> Answer | None:
        """The answer to a request refused before its body is read, or None."""
        ctype = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            problem = "content type must be application/json"
            return Answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": problem})
        if "Transfer-Encoding" in request.headers:
            problem = "send the body with a Content-Length"
            return Answer(HTTPStatus.LENGTH_REQUIRED, {"error": problem}, close=True)
        text = request.headers.get("Content-Length", "").strip()
        if not (text.isascii() and text.isdigit()):
            problem = "a valid Content-Length is required"
            return Answer(HTTPStatus.LENGTH_REQUIRED, {"error": problem}, close=True)
        if int(text) > self.limits.max_body:
            problem = f"body over {self.limits.max_body} bytes"
            return Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": problem}, close=True)
        return None

    def _store(self, provider: str, raw: bytes) -> Answer:
        """Parse, map and commit one request's items (on the store lane); the answer is
        202 only once the outbox transaction committed."""
        # Unique across restarts, so a quarantine report is never overwritten.
        name = f"http-{provider}-{self.started}-{next(self._numbers)}"
        items, problem = parse_items(raw)
        if items is None:
            body = {"error": problem, "rejected": []}
            return Answer(HTTPStatus.BAD_REQUEST, body, provider, name)
        try:
            source = RequestSource(name, items, self.lists, self.fields, provider)
            summary = self.sink.ingest(source)
        except OutboxError as exc:  # a full disk, a read-only file: the provider sends it later
            log.error("request %s from %s: not stored: %s", name, provider, exc)
            later = {"error": "the events cannot be stored now; send them again later"}
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, later, provider, name)
        except Exception:
            log.exception("request %s from %s: ingest failed", name, provider)
            return Answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal"}, provider, name)
        answer: dict[str, Any] = {
            "request": name,
            "accepted": summary.accepted,
            **{change: summary.changes.get(change, 0) for change in CHANGES},
            "rejected": [rejection(e) for e in summary.rejected],
        }
        if summary.accepted == 0:
            answer["error"] = "no item was accepted"
            return Answer(HTTPStatus.BAD_REQUEST, answer, provider, name, summary)
        return Answer(HTTPStatus.ACCEPTED, answer, provider, name, summary)

    def _log(self, request: web.BaseRequest, answer: Answer, seconds: float) -> None:
        path = request.path if request.path in ROUTES else "other"
        level = (
            logging.DEBUG if path == "/health" and answer.status == HTTPStatus.OK else logging.INFO
        )
        summary = answer.summary
        log.log(
            level,
            "%s %s provider=%s request=%s status=%d accepted=%d new=%d rejected=%d duration=%.3fs",
            request.method if request.method in METHODS else "other",
            path,
            answer.provider or "-",
            answer.name or "-",
            answer.status,
            summary.accepted if summary else 0,
            summary.new if summary else 0,
            len(summary.rejected) if summary else 0,
            seconds,
        )


# --- connections -----------------------------------------------------------------------


def _raw_answer(status: HTTPStatus, problem: str, retry: bool = False) -> bytes:
    """A whole response, written straight to a connection that has no request to answer."""
    body = json.dumps({"error": problem}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"Server: {SERVER}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n"
        + ("Retry-After: 1\r\n" if retry else "")
        + "\r\n"
    )
    return head.encode("ascii") + body


class _UnreadableRequests(logging.Filter):
    """aiohttp's own lines about a connection's failures may quote the bytes received (a
    record, a token): each is replaced by one naming the kind of error only."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        kind = type(error).__name__ if error is not None else "unknown error"
        log.info("- - provider=- request=- connection failed (%s)", kind)
        return False


_AIOHTTP_LOG = logging.getLogger(f"{__name__}.aiohttp")
_AIOHTTP_LOG.addFilter(_UnreadableRequests())


class _Protocol(web.RequestHandler):
    """aiohttp's connection, answering what it cannot parse without quoting it: its own
    error page repeats the bytes it could not read, which may be a record or a token."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer was begun: the connection is broken
            raise ConnectionError("the answer was already begun")
        kind = type(exc).__name__ if exc is not None else "error"
        log.info("- - provider=- request=- status=%d unreadable request (%s)", status, kind)
        problem = "the request could not be read" if status < 500 else "internal"
        return Answer(HTTPStatus(status), {"error": problem}, close=True).response()


class Connections(web.Server):
    """aiohttp's server, keeping account of its connections: the cap on how many are open
    (`make_room`), and the deadline by which each must have sent its request.

    A connection is waiting (for its request's line and headers: from when it opened, or
    from the previous answer on it) or busy (a request is being handled). A waiting
    connection is closed with 408 at `Limits.read_timeout`; one that has waited over
    `STALLED_AFTER` may be closed with 503 to make room for a new client.
    """

    def __init__(
        self,
        handle: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        limits: Limits,
        **kwargs: Any,
    ) -> None:
        # A store in progress is never cut short by its client going away.
        super().__init__(self._handle, handler_cancellation=False, **kwargs)
        self._inner = handle
        self._protocol_loop = asyncio.get_running_loop()
        self._protocol_options = kwargs  # what aiohttp's connections are made with
        self.limits = limits
        self.handshaking = 0  # accepted, not yet connected (a TLS handshake in progress)
        self._finishing = False  # stopping: each connection closes after its answer
        self._waiting: dict[web.RequestHandler, float] = {}  # -> since when; oldest first
        self._busy: set[web.RequestHandler] = set()
        self._deadlines: dict[web.RequestHandler, asyncio.TimerHandle] = {}
        self._changed = asyncio.Event()
        self._connecting: set[asyncio.Task[None]] = set()
        self._timed_out = _raw_answer(
            HTTPStatus.REQUEST_TIMEOUT, f"no complete request within {limits.read_timeout:g} s"
        )
        self._busy_answer = _raw_answer(
            HTTPStatus.SERVICE_UNAVAILABLE, "the endpoint is busy; send it again", retry=True
        )

    @property
    def open(self) -> int:
        """Connections counted against the cap."""
        return self.handshaking + len(self._waiting) + len(self._busy)

    # --- aiohttp's hooks -------------------------------------------------------------------
    def __call__(self) -> web.RequestHandler:
        return _Protocol(self, loop=self._protocol_loop, **self._protocol_options)

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._wait_for_request(handler)

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._forget(handler)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        handler = request.protocol
        if handler in self._waiting:
            self._forget(handler)
            self._busy.add(handler)
        try:
            return await self._inner(request)
        finally:
            if handler in self._busy:
                if self._finishing:
                    self._busy.discard(handler)
                    handler.close()  # once this answer is written
                    self._changed.set()
                else:
                    self._wait_for_request(handler)

    # --- accounting --------------------------------------------------------------------------
    def _wait_for_request(self, handler: web.RequestHandler) -> None:
        self._forget(handler)
        loop = asyncio.get_running_loop()
        self._waiting[handler] = loop.time()
        self._deadlines[handler] = loop.call_later(
            self.limits.read_timeout, self._close, handler, True
        )

    def _forget(self, handler: web.RequestHandler) -> None:
        was_open = self._waiting.pop(handler, None) is not None or handler in self._busy
        self._busy.discard(handler)
        deadline = self._deadlines.pop(handler, None)
        if deadline is not None:
            deadline.cancel()
        if was_open:
            self._changed.set()

    def _close(self, handler: web.RequestHandler, timed_out: bool) -> None:
        """Answer a waiting connection (408 when its time is up, 503 to make room) and
        close it."""
        self._forget(handler)
        transport = handler.transport
        if transport is not None and not transport.is_closing():
            transport.write(self._timed_out if timed_out else self._busy_answer)
        handler.force_close()
        if timed_out:
            status, why = 408, f"no complete request within {self.limits.read_timeout:g} s"
        else:
            status, why = 503, f"no request for over {STALLED_AFTER:g} s while the endpoint is full"
        log.info("- - provider=- request=- status=%d closed: %s", status, why)

    async def make_room(self) -> None:
        """Return once one more connection may be opened: below the cap, or after closing
        the connection that has waited longest for its request, once that is over
        `STALLED_AFTER`. Until then the new client waits."""
        loop = asyncio.get_running_loop()
        while self.open >= self.limits.max_connections:
            wait: float | None = None
            if self._waiting:
                handler, since = next(iter(self._waiting.items()))
                wait = since + STALLED_AFTER - loop.time()
                if wait <= 0:
                    self._close(handler, False)
                    continue
            self._changed.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()

    def connect(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        """Serve an accepted socket (after its TLS handshake), counted from now on."""
        self.handshaking += 1
        task = asyncio.get_running_loop().create_task(self._connect(sock, tls))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            if tls is None:
                await loop.connect_accepted_socket(self, sock)
            else:
                await loop.connect_accepted_socket(
                    self, sock, ssl=tls, ssl_handshake_timeout=self.limits.read_timeout
                )
        except asyncio.CancelledError:
            sock.close()
            raise
        except (OSError, TimeoutError) as exc:  # a failed or slow TLS handshake, a client gone
            log.debug("a connection closed before it was ready (%s)", type(exc).__name__)
            sock.close()
        except Exception:
            log.exception("a connection to the push endpoint could not be set up")
            sock.close()
        finally:
            self.handshaking -= 1
            self._changed.set()

    async def stop_connecting(self) -> None:
        """Drop the connections still in their TLS handshake."""
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)

    async def finish(self, grace: float) -> None:
        """Close the connections waiting for a request, and give the requests being
        handled up to `grace` seconds to be answered (their bodies are still read); each
        of those connections closes after its answer."""
        self._finishing = True
        for handler in list(self._waiting):
            self._forget(handler)
            handler.force_close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._busy and loop.time() < deadline:
            self._changed.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(deadline - loop.time()):
                    await self._changed.wait()
        if self._busy:
            log.warning(
                "%d requests were not answered within %g s of the stop: cancelled; their"
                " clients send them again",
                len(self._busy),
                grace,
            )


# --- the endpoint ----------------------------------------------------------------------


class PushEndpoint:
    """A bound push endpoint: `start()` serves in the background, `serve_forever()` until
    SIGTERM, Ctrl-C or `stop()`; `stop()` stops cleanly. A context manager too."""

    def __init__(
        self, handler: PushHandler, listener: socket.socket, tls: ssl.SSLContext | None
    ) -> None:
        self.handler = handler
        self.tls = tls
        self._listener = listener
        address = listener.getsockname()
        self._host, self._port = str(address[0]), int(address[1])
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._failure: BaseException | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    def start(self) -> PushEndpoint:
        """Serve in a background thread (its own event loop); returns once accepting."""
        if self._thread is not None:
            return self
        if self._stopped:
            raise HubError("the push endpoint was stopped; serve it again")
        self._thread = threading.Thread(target=self._run, name="hub-push", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise HubError(f"the push endpoint did not start: {self._failure}") from self._failure
        limits = self.handler.limits
        log.info(
            "push endpoint listening on %s (POST /events, GET /health): at most %d connections,"
            " %g s to send a request, bodies up to %d bytes",
            self.url,
            limits.max_connections,
            limits.read_timeout,
            limits.max_body,
        )
        if self.tls is None:
            log.warning(
                "the push endpoint serves plain HTTP on %s: requests and tokens travel"
                " unencrypted; set HUB_PUSH_TLS_CERTFILE and HUB_PUSH_TLS_KEYFILE to serve HTTPS",
                self.url,
            )
        return self

    def serve_forever(self) -> None:
        """Serve until SIGTERM, Ctrl-C (SIGINT) or `stop()`, then stop cleanly.

        The signals are handled only while this runs in the main thread. HubError when the
        endpoint itself failed.
        """
        self.start()
        signalled: list[int] = []

        def note(signum: int, frame: FrameType | None) -> None:
            signalled.append(signum)

        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for stopping in (signal.SIGTERM, signal.SIGINT):
                previous[stopping] = signal.signal(stopping, note)
        try:
            while not signalled and not self._ended.wait(0.2):
                pass
            if signalled:
                name = signal.Signals(signalled[0]).name
                log.info("%s: stopping the push endpoint", name)
            self.stop()
        finally:
            for restored, handler in previous.items():
                signal.signal(restored, handler)
        if self._failure is not None:
            raise HubError(f"the push endpoint failed: {self._failure}") from self._failure

    def stop(self) -> None:
        """Stop accepting, close idle connections, let requests in flight finish (at most
        `STOP_GRACE` s), wait for the store in progress, close the socket. Returns once
        done, from any thread; twice is harmless."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            thread, loop, stopping = self._thread, self._loop, self._stopping
            if thread is not None and loop is not None and stopping is not None:
                with suppress(RuntimeError):  # the loop already ended
                    loop.call_soon_threadsafe(stopping.set)
                thread.join()
            self._listener.close()
            self.handler.close()
            self._ended.set()
            log.info("push endpoint on %s stopped", self.url)

    def __enter__(self) -> PushEndpoint:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the event loop's thread -------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._failure = exc
            log.exception("the push endpoint stopped")
        finally:
            self._ready.set()
            self._ended.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        limits = self.handler.limits
        server = Connections(
            self.handler,
            limits,
            keepalive_timeout=limits.read_timeout + 1,  # behind the connection deadlines
            lingering_time=min(LINGER, limits.read_timeout),
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            access_log=None,  # `PushHandler` logs each request itself
            logger=_AIOHTTP_LOG,
        )
        # By the runner's clean-up the requests in flight are answered (`Connections.finish`):
        # what is left is answers being written, and unread bodies being dropped.
        runner = web.ServerRunner(server, shutdown_timeout=LINGER)
        await runner.setup()
        accepting = asyncio.get_running_loop().create_task(self._accept(server))
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            accepting.cancel()
            await asyncio.gather(accepting, return_exceptions=True)
            self._listener.close()
            await server.stop_connecting()
            await server.finish(STOP_GRACE)
            await runner.cleanup()

    async def _accept(self, server: Connections) -> None:
        """Accept clients one at a time, each once there is room for it (`make_room`):
        beyond the cap, clients wait in the listen backlog."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(self._listener)
            except OSError as exc:  # out of file descriptors or buffers: wait, then go on
                log.warning("the push endpoint cannot accept a connection now: %s", exc)
                await asyncio.sleep(1.0)
                continue
            try:
                await server.make_room()
            except BaseException:
                sock.close()
                raise
            server.connect(sock, self.tls)


def serve(
    sink: Sink,
    host: str,
    port: int,
    tokens: Mapping[str, str],
    *,
    limits: Limits | None = None,
    tls: ssl.SSLContext | None = None,
) -> PushEndpoint:
    """Bind the push endpoint storing into `sink`, an adapter run (port 0: any free port);
    call `.start()` or `.serve_forever()` on the result, and `.stop()` (or use it as a
    context manager). `tls` (see `tls_context`): HTTPS only; None: plain HTTP.

    `tokens` maps bearer token -> provider name. Raises `ConfigError` for a dry
    run or no tokens, and `HubError` when the address cannot be bound.
    """
    handler = PushHandler(sink, tokens, limits or Limits())
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as exc:
        handler.close()
        raise HubError(
            f"cannot listen on {host}:{port} ({exc}); is another process using the port?"
        ) from exc
    listener.setblocking(False)
    return PushEndpoint(handler, listener, tls)
