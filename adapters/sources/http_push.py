"""HTTP push endpoint: providers (e.g. an online counselling service) POST JSON events.

TLS is terminated by the partnership's reverse proxy; this server speaks plain
HTTP and binds to loopback unless told otherwise. Standard library only.

``POST /events`` with ``Authorization: Bearer <token>`` and
``Content-Type: application/json``; the body is one flat JSON object or a list
of them, keyed as in the adapter's profile (the same rules as a JSON-lines
file: see `adapters.sources.jsonl.flat_values`). Responses, checked in order:

- 401: no bearer token, or one not in the configured tokens (compared in constant time).
- 415: the content type is not ``application/json``.
- 411 / 400: no usable Content-Length (chunked bodies are not accepted).
- 413: the body is over the limit (`MAX_BODY`, 5 MB, by default).
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
  accepted events are committed to the outbox (`Adapter.ingest` returns after
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

Every request is logged with its provider, counts and status, never its body.
The endpoint stores each request through a `Sink` (`adapters.sources.base`):
the adapter run, which maps it into its outbox. The outbox's SQLite connection
is shared, so ingestion and /health are serialised with a lock. Forwarding to
Kafka is not done in the request path: the caller runs the outbox forwarder
beside the endpoint (`AdapterRun.forwarding_in_background`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from adapters.profile import vocabulary_key
from adapters.sources.base import Health, Ingested, Sink, SourceKind, SourceRecord
from adapters.sources.jsonl import flat_values, header_fields, list_headers
from adapters.versions import CHANGES
from hub.errors import ConfigError, HubError, OutboxError, RecordError

log = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
#: Seconds a client may take to send its request before the connection is dropped.
SOCKET_TIMEOUT = 30.0
#: Longest field name echoed back (a canonical field name, "other" or "*").
FIELD_CHARS = 100
#: The canonical fields whose values are the provider's own ids: scoped to the provider.
SCOPED_FIELDS = frozenset({"record_id", "local_id", "case_id"})


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


class PushServer(ThreadingHTTPServer):
    """The HTTP server; holds the sink, the tokens and the ingest lock."""

    daemon_threads = False  # server_close() waits for requests in flight
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        sink: Sink,
        tokens: Mapping[str, str],
        max_body: int = MAX_BODY,
    ) -> None:
        if not sink.storing:
            raise ConfigError("the HTTP push endpoint needs an outbox (not a dry run)")
        if not tokens:
            raise ConfigError("the HTTP push endpoint needs at least one provider token")
        self.sink = sink
        self.tokens = [(t.encode("utf-8"), provider) for t, provider in tokens.items()]
        self.max_body = max_body
        self.lists = list_headers(sink.profile)
        self.fields = header_fields(sink.profile)
        self.lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._numbers_lock = threading.Lock()
        super().__init__(address, PushHandler)

    def provider_of(self, token: str) -> str | None:
        """The provider whose token this is; every known token is compared, in constant time."""
        given = token.encode("utf-8")
        found: str | None = None
        for known, provider in self.tokens:
            if hmac.compare_digest(given, known) and found is None:
                found = provider
        return found

    def next_request(self) -> int:
        with self._numbers_lock:
            return next(self._numbers)

    def ingest(self, source: RequestSource) -> Ingested:
        """Map and commit one request's items; returns once the outbox transaction committed."""
        with self.lock:
            return self.sink.ingest(source)

    def health(self) -> Health:
        """The outbox and the run's forwarder (see `adapters.metrics.outbox_health`)."""
        with self.lock:
            return self.sink.health()


class PushHandler(BaseHTTPRequestHandler):
    server: PushServer
    timeout = SOCKET_TIMEOUT
    server_version = "hub-push/1"
    sys_version = ""

    # --- routes ----------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/health":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        health = self.server.health()
        status = HTTPStatus.SERVICE_UNAVAILABLE if health.stalled else HTTPStatus.OK
        self._reply(status, health.as_json())

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/events":
            self._discard_body()
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        provider = self._provider()
        if provider is None:
            self._discard_body()
            self._finish(None, None, HTTPStatus.UNAUTHORIZED, {"error": "unauthorised"})
            return
        number = self.server.next_request()
        # Unique across restarts, so a quarantine report is never overwritten.
        name = f"http-{provider}-{self.server.started}-{number}"
        items, status, problem = self._read_items()
        if items is None:
            self._finish(provider, name, status, {"error": problem, "rejected": []})
            return
        try:
            source = RequestSource(name, items, self.server.lists, self.server.fields, provider)
            summary = self.server.ingest(source)
        except OutboxError as exc:  # a full disk, a read-only file: the provider sends it later
            log.error("request %s from %s: not stored: %s", name, provider, exc)
            later = {"error": "the events cannot be stored now; send them again later"}
            self._finish(provider, name, HTTPStatus.SERVICE_UNAVAILABLE, later)
            return
        except Exception:
            log.exception("request %s from %s: ingest failed", name, provider)
            self._finish(provider, name, HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal"})
            return
        body: dict[str, Any] = {
            "request": name,
            "accepted": summary.accepted,
            **{change: summary.changes.get(change, 0) for change in CHANGES},
            "rejected": [rejection(e) for e in summary.rejected],
        }
        if summary.accepted == 0:
            body["error"] = "no item was accepted"
            self._finish(provider, name, HTTPStatus.BAD_REQUEST, body, summary)
            return
        self._finish(provider, name, HTTPStatus.ACCEPTED, body, summary)

    # --- request checks ----------------------------------------------------------
    def _provider(self) -> str | None:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return self.server.provider_of(token)

    def _content_length(self) -> int | None:
        text = self.headers.get("Content-Length")
        if text is None or not (text.strip().isascii() and text.strip().isdigit()):
            return None
        return int(text)

    def _read_items(self) -> tuple[list[Any] | None, HTTPStatus, str]:
        """The request's items, or (None, status, problem) when the request is refused whole."""
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            self._discard_body()
            return None, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "content type must be application/json"
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return None, HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length"
        length = self._content_length()
        if length is None:
            self.close_connection = True
            return None, HTTPStatus.LENGTH_REQUIRED, "a valid Content-Length is required"
        if length > self.server.max_body:
            self.close_connection = True
            limit = self.server.max_body
            return None, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes"
        raw = self.rfile.read(length)
        if len(raw) < length:
            self.close_connection = True
            return None, HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length"
        items, problem = parse_items(raw)
        if items is None:
            return None, HTTPStatus.BAD_REQUEST, problem
        return items, HTTPStatus.OK, ""

    def _discard_body(self) -> None:
        """Read and drop a body within the limit, so the client sees the answer, not a reset."""
        length = self._content_length()
        if length is None or length > self.server.max_body or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return
        try:
            self.rfile.read(length)
        except OSError:
            self.close_connection = True

    # --- answers -------------------------------------------------------------------
    def _finish(
        self,
        provider: str | None,
        name: str | None,
        status: HTTPStatus,
        body: Mapping[str, Any],
        summary: Ingested | None = None,
    ) -> None:
        accepted = summary.accepted if summary else 0
        rejected = len(summary.rejected) if summary else 0
        log.info(
            "POST /events provider=%s request=%s status=%d accepted=%d new=%d rejected=%d",
            provider or "-",
            name or "-",
            status,
            accepted,
            summary.new if summary else 0,
            rejected,
        )
        self._reply(status, body)

    def _reply(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="hub"')
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The base class writes every request line to stderr; our own log line suffices.
        log.debug("%s " + format, self.address_string(), *args)


class PushEndpoint:
    """A bound push server: `start()` in the background or `serve_forever()`; `stop()`."""

    def __init__(self, server: PushServer) -> None:
        self.server = server
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> PushEndpoint:
        """Serve (and drain, if asked) in background threads; returns at once."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="hub-push"
        )
        self._thread.start()
        log.info("push endpoint listening on %s (POST /events, GET /health)", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve until `stop()` or Ctrl-C, then stop cleanly (requests in flight finish)."""
        self.start()
        try:
            self._stopped.wait()
        except KeyboardInterrupt:
            log.info("interrupted: stopping the push endpoint")
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish, stop draining, close the socket."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()  # joins the request threads

    def __enter__(self) -> PushEndpoint:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    sink: Sink,
    host: str,
    port: int,
    tokens: Mapping[str, str],
    *,
    max_body: int = MAX_BODY,
) -> PushEndpoint:
    """Bind the push endpoint storing into `sink`, an adapter run (port 0: any free port);
    call `.start()` or `.serve_forever()` on the result, and `.stop()` (or use it as a
    context manager).

    `tokens` maps bearer token -> provider name. Raises `ConfigError` for a dry
    run or no tokens, and `HubError` when the address cannot be bound.
    """
    try:
        server = PushServer((host, port), sink, tokens, max_body)
    except OSError as exc:
        raise HubError(
            f"cannot listen on {host}:{port} ({exc}); is another process using the port?"
        ) from exc
    return PushEndpoint(server)
