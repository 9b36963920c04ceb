"""How every hub process logs: one handler on stderr, as text or as JSON lines.

`configure_logging` is called once per process by the `hub` command (HUB_LOG_LEVEL,
HUB_LOG_FORMAT, or `hub --log-level / --log-format`) and by the processes the hub
starts for itself (``python -m adapters.drain``), which inherit the settings through
the environment. The stream worker keeps this setup too: Faust is told not to
install its own (streams/worker.py).

Both formats shorten a library's traceback to one line naming the exception, unless
the level is DEBUG; the hub's own tracebacks are kept whole (they mean a fault), also
when a library logs them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

#: How a line of the text format reads.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Libraries whose INFO lines are their own bookkeeping (a Kafka client's every
#: connection): they log warnings and errors only, unless the level is DEBUG.
CHATTY = ("kafka", "aiokafka")
#: The project's own packages: their tracebacks mean a fault in the hub and are kept.
OWN = ("hub", "adapters", "streams")

LogFormat = Literal["text", "json"]


def _library_failure(record: logging.LogRecord, keep_all: bool) -> BaseException | None:
    """The exception of a library's record whose traceback is shortened, else None: a
    record of the hub's own loggers, or one whose exception passed through the hub's
    code (an agent of the stream worker failing, logged by Faust), keeps its traceback."""
    if keep_all or record.name.split(".", 1)[0] in OWN or not record.exc_info:
        return None
    exc = record.exc_info[1]
    if exc is None or _through_own_code(exc):
        return None
    return exc


def _through_own_code(exc: BaseException) -> bool:
    """Whether a frame of the exception's traceback (or of its causes') is the hub's."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            module = str(tb.tb_frame.f_globals.get("__name__", ""))
            if module.split(".", 1)[0] in OWN:
                return True
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return False


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``; a library's traceback (a Kafka client losing its connection while
    the broker restarts) becomes ``(ExceptionType: message)`` after the message, unless
    the level is DEBUG: the library recovers on its own, and the operator needs what
    happened, not where in its code."""

    def __init__(self, *, keep_all: bool) -> None:
        super().__init__(TEXT_FORMAT)
        self.keep_all = keep_all

    def format(self, record: logging.LogRecord) -> str:
        exc = _library_failure(record, self.keep_all)
        if exc is None:
            return super().format(record)
        summary = logging.LogRecord(
            record.name,
            record.levelno,
            record.pathname,
            record.lineno,
            f"{record.getMessage()} ({type(exc).__name__}: {exc})",
            None,
            None,
        )
        summary.created, summary.msecs = record.created, record.msecs
        return super().format(summary)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for containers' log collectors: ``time`` (ISO 8601,
    UTC, milliseconds), ``level``, ``logger``, ``message``, and ``exception`` (one
    string: the traceback, or for a library's record above DEBUG ``ExceptionType:
    message``) when the record carries one."""

    def __init__(self, *, keep_all: bool) -> None:
        super().__init__()
        self.keep_all = keep_all

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, str] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            exc = _library_failure(record, self.keep_all)
            if exc is not None:
                entry["exception"] = f"{type(exc).__name__}: {exc}"
            else:
                entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(fmt: LogFormat, level: int) -> logging.Formatter:
    """The formatter of `fmt` for a process logging at `level`."""
    keep_all = level <= logging.DEBUG
    if fmt == "json":
        return JsonFormatter(keep_all=keep_all)
    return TextFormatter(keep_all=keep_all)


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """Log to stderr at `level` (HUB_LOG_LEVEL) in `fmt` (HUB_LOG_FORMAT).

    Once per process, before any command runs: when the root logger already has a
    handler (a host application, a test runner, an earlier call) nothing changes.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    numeric = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, numeric))
    root.addHandler(handler)
    root.setLevel(numeric)
    if numeric > logging.DEBUG:
        for name in CHATTY:
            logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
