"""What every `hub` command shares: one error style, one logging setup, and the agreement
loaded once."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from hub.errors import HubError

if TYPE_CHECKING:
    from hub.agreement.model import Agreement


P = ParamSpec("P")
R = TypeVar("R")


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a HubError into a one-paragraph message and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except HubError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper


#: How every `hub` command writes its log lines to stderr.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Libraries whose INFO lines are their own bookkeeping (a Kafka client's every
#: connection): they log warnings and errors only, unless the level is DEBUG.
CHATTY = ("kafka", "aiokafka")
#: The project's own packages: their tracebacks mean a fault in the hub and are kept.
OWN = ("hub", "adapters", "streams")


class LibraryTracebacksAsOneLine(logging.Formatter):
    """A library's traceback (a Kafka client losing its connection while the broker
    restarts) is one line naming the exception, unless the level is DEBUG: the library
    recovers on its own, and the operator needs what happened, not where in its code."""

    def __init__(self, fmt: str, *, keep_all: bool) -> None:
        super().__init__(fmt)
        self.keep_all = keep_all

    def format(self, record: logging.LogRecord) -> str:
        own = record.name.split(".", 1)[0] in OWN
        if self.keep_all or own or not record.exc_info or record.exc_info[1] is None:
            return super().format(record)
        exc = record.exc_info[1]
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


def configure_logging(level: str) -> None:
    """Log to stderr at `level` (HUB_LOG_LEVEL), with the time and the logger's name.

    Once per process, before any command runs: when the root logger already has a
    handler (a host application, a test runner, an earlier call) nothing changes.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    numeric = logging.getLevelName(level.upper())
    handler.setFormatter(LibraryTracebacksAsOneLine(LOG_FORMAT, keep_all=numeric <= logging.DEBUG))
    root.addHandler(handler)
    root.setLevel(numeric)
    if numeric > logging.DEBUG:
        for name in CHATTY:
            logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


class AgreementHolder:
    """The agreement at HUB_AGREEMENT, loaded once per process, when a command first asks
    for it: a command that does not use it runs whatever the file holds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._agreement: Agreement | None = None

    def get(self) -> Agreement:
        """The agreement; a ConfigError naming every problem when the file is bad."""
        if self._agreement is None:
            from hub.agreement.model import load_agreement

            self._agreement = load_agreement(self.path)
        return self._agreement


AGREEMENT = "hub.agreement"


def current_agreement() -> Agreement:
    """The process's agreement, beside its settings (see `main`). Call it inside a
    `friendly` command, so a bad file is reported as an error, not a traceback."""
    holder: AgreementHolder = click.get_current_context().meta[AGREEMENT]
    return holder.get()
