"""What every `hub` command shares: one error style, one way to stop, and the agreement
loaded once (the logging setup is hub.logs)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a supervisor's stop: systemd, Docker, Kubernetes) does in the block what
    Ctrl-C does: it raises KeyboardInterrupt in the main thread, so the command stops the
    same clean way and says the same. Commands that handle Ctrl-C use it."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
