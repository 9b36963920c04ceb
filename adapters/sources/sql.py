"""An agency database as a source: its SELECT (often a view), read incrementally.

The agency's query is wrapped as a subquery, filtered on a watermark column
(e.g. ``updated_at``, or an increasing integer) and ordered by it::

    SELECT * FROM (<query>) AS src
    WHERE src.<watermark> IS NOT NULL [AND src.<watermark> >= :since]
    ORDER BY src.<watermark>

and streamed (server-side cursor). Every value becomes text as a CSV export
would hold it: dates as ISO ``YYYY-MM-DD``, timestamps as ISO 8601 (with
their offset when they have one), NULL as "", arrays joined by the profile's
separator. Row numbers are the 1-based result rows of this read.

Resuming. `Adapter.ingest(source, watermark=source.watermark_of)` stores,
in the same outbox transaction as each batch of events, the watermark of the
last record stored; the next run passes it back as `since`
(`adapters.runner.AdapterRun.ingest_query` does both). The filter is
``>=``, not ``>``: a batch can end part-way through rows that share one
watermark value (and rows with the value already read can still be added
later, e.g. by a transaction that began earlier), so ``>`` would skip the
rest of them for good. With ``>=`` the rows at the stored value are read
again and, their event ids being the same, the outbox stores them once: the
re-read costs a few rows per run and loses nothing.

The stored watermark is text; before it is compared it is turned back into
the column's own type (int, Decimal, date, datetime with its offset, ...),
found from one row of the column, so the database compares numbers as
numbers and timestamps as timestamps, exactly.

Limits: a row whose watermark is set to a value *below* one already stored
(a clock set back, or a transaction that commits long after it stamped its
rows) is not seen again; a watermark column the system stamps on commit, or
an increasing sequence, avoids that. Rows with no watermark value cannot be
read incrementally: each is reported as a rejected record on every run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Subquery,
    bindparam,
    column,
    create_engine,
    literal_column,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from adapters.sources.base import SourceKind, SourceRecord
from hub.errors import HubError, RecordError

#: Rows fetched per round trip from the server-side cursor.
FETCH = 1000
_SINCE = "hub_watermark_since"


class SourceError(HubError):
    """The database cannot be reached or the query cannot run; names the source, never secrets."""


def safe_url(url: URL) -> str:
    """The URL as it can be shown: no password, no query-string options (which may hold one)."""
    return url.set(password=None, query={}).render_as_string(hide_password=True)


def _secrets(url: URL) -> list[str]:
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if "pass" in key.lower() or "secret" in key.lower():
            values += [value] if isinstance(value, str) else list(value)
    return [str(v) for v in values if v]


def default_name(url: URL, query: str) -> str:
    """A readable, stable name: the database without the password, and a digest of the query.

    It names the source in error reports and quarantine files, and keys its
    watermark in the outbox, so the same query on the same database resumes.
    """
    normalised = " ".join(query.split())
    digest = hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:12]
    return f"{safe_url(url)} (query {digest})"


def as_text(value: object, separator: str = ";") -> str:
    """A database value as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple):
        return separator.join(as_text(v, separator) for v in value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _parse_int(text_value: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text_value):
        raise ValueError(text_value)
    return int(text_value)


def _parse_decimal(text_value: str) -> Decimal:
    try:
        return Decimal(text_value)
    except InvalidOperation as exc:
        raise ValueError(text_value) from exc


#: Python type of the watermark column's values -> how a stored watermark is read back.
_PARSERS: tuple[tuple[type, Callable[[str], object]], ...] = (
    (bool, lambda v: {"true": True, "false": False}[v]),
    (int, _parse_int),
    (Decimal, _parse_decimal),
    (float, float),
    (datetime, datetime.fromisoformat),
    (date, date.fromisoformat),
    (time, time.fromisoformat),
    (str, str),
)


def from_text(stored: str, sample: object) -> object:
    """`stored` (made by `as_text`) as a value of the same type as `sample`."""
    for kind, parse in _PARSERS:
        if isinstance(sample, kind):
            try:
                return parse(stored)
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{stored!r} is not a {kind.__name__}") from exc
    return stored


class SqlSource:
    """Rows of an agency's SELECT, in watermark order, from `since` on (inclusive)."""

    def __init__(
        self,
        url: str,
        query: str,
        watermark_column: str,
        since: str | None,
        name: str | None = None,
        separator: str = ";",
    ) -> None:
        try:
            self.url = make_url(url)
        except ArgumentError:
            raise SourceError(
                f"{name or 'SQL source'}: the database URL is not valid. Write it as"
                " dialect+driver://user:password@host:port/database, e.g."
                " postgresql+psycopg://hub@db.example:5432/casework."
            ) from None
        self.query = query.strip().rstrip(";").strip()
        if not self.query:
            raise SourceError(f"{name or safe_url(self.url)}: the query is empty")
        if not watermark_column.strip():
            raise SourceError(f"{name or safe_url(self.url)}: no watermark column given")
        self.watermark_column = watermark_column
        self.since = since
        self.separator = separator
        self.name = name or default_name(self.url, self.query)

    @property
    def kind(self) -> SourceKind:
        return "sql"

    # --- the record's watermark ---------------------------------------------------
    def watermark_of(self, record: SourceRecord) -> str:
        """The record's watermark value, as text `since` accepts on the next run."""
        return record.values[self.watermark_column]

    # --- errors -------------------------------------------------------------------
    def _reason(self, exc: BaseException) -> str:
        """The driver's own first line, with anything secret from the URL taken out."""
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        reason = lines[0] if lines else type(cause).__name__
        for secret in _secrets(self.url):
            reason = reason.replace(secret, "***")
        return reason

    def _cannot_connect(self, exc: BaseException) -> SourceError:
        return SourceError(
            f"{self.name}: cannot connect to the database ({self._reason(exc)}). Check the"
            " URL's host, port, database name, user and password, that the server is running"
            " and accepts connections from this machine, and that the driver named in the URL"
            " is installed."
        )

    def _query_failed(self, exc: BaseException) -> SourceError:
        return SourceError(
            f"{self.name}: the query failed ({self._reason(exc)}). Check that it runs in the"
            f" database as this user, and that its result has the watermark column"
            f" {self.watermark_column!r}."
        )

    # --- reading --------------------------------------------------------------------
    def _engine(self) -> Engine:
        try:
            return create_engine(self.url, poolclass=NullPool)
        except (SQLAlchemyError, ImportError) as exc:
            raise self._cannot_connect(exc) from None

    def _subquery(self) -> tuple[Subquery, ColumnElement[Any]]:
        src = text(self.query).columns(column(self.watermark_column)).subquery("src")
        return src, src.c[self.watermark_column]

    def _since(self, conn: Connection, since: str) -> object:
        """`since` as a value of the watermark column's type, learnt from one of its values."""
        _, mark = self._subquery()
        sample = conn.execute(select(mark).where(mark.is_not(None)).limit(1)).scalar()
        try:
            return from_text(since, sample)
        except ValueError as exc:
            raise SourceError(
                f"{self.name}: the stored watermark does not fit the column"
                f" {self.watermark_column!r} ({exc}). Was the watermark column or its type"
                " changed? Run with a watermark of this column's type, or with none to read"
                " everything again (the outbox keeps each event once)."
            ) from None

    def _rows(
        self, conn: Connection, stmt: Select[Any], start: int
    ) -> Generator[tuple[int, list[str], tuple[object, ...]], None, None]:
        """Streamed through a server-side cursor, closed even when the reader stops early."""
        result = conn.execution_options(yield_per=FETCH).execute(stmt)
        try:
            keys = list(result.keys())
            for number, row in enumerate(result, start=start):
                yield number, keys, tuple(row)
        finally:
            result.close()

    def records(self) -> Iterator[SourceRecord | RecordError]:
        engine = self._engine()
        try:
            try:
                conn = engine.connect()
            except (SQLAlchemyError, ImportError) as exc:
                raise self._cannot_connect(exc) from None
            with conn:
                yield from self._read(conn)
        finally:
            engine.dispose()

    def _read(self, conn: Connection) -> Iterator[SourceRecord | RecordError]:
        src, mark = self._subquery()
        every: Select[Any] = select(literal_column("*")).select_from(src)
        unmarked = every.where(mark.is_(None))
        number = 0
        try:
            rows = every.where(mark.is_not(None)).order_by(mark)
            if self.since is not None:
                rows = rows.where(mark >= bindparam(_SINCE, self._since(conn, self.since)))
            with closing(self._rows(conn, rows, 1)) as marked:
                for number, keys, values in marked:
                    pairs = zip(keys, values, strict=True)
                    cells = {k: as_text(v, self.separator) for k, v in pairs}
                    yield SourceRecord(self.name, number, cells)
            with closing(self._rows(conn, unmarked, number + 1)) as rest:
                for unmarked_number, _, _ in rest:
                    yield RecordError(
                        self.name,
                        unmarked_number,
                        self.watermark_column,
                        "no value in the watermark column, so it cannot be read incrementally",
                    )
        except SQLAlchemyError as exc:
            raise self._query_failed(exc) from None
