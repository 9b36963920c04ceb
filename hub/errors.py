"""One error hierarchy for the hub.

`RecordError` means "this input record is bad": the caller quarantines it and
goes on. Every other `HubError` means the hub cannot do what was asked (a
missing tool, a taken port, an unreachable broker) and carries a message that
tells the user what to do. Anything else is a bug and should crash loudly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """A setting, key file or profile is missing or invalid."""


class BrokerError(HubError):
    """The local Kafka broker cannot be fetched, started, reached or stopped."""


class PublishError(HubError):
    """Kafka did not acknowledge an event."""


class OutboxError(HubError):
    """The adapter's outbox (SQLite) cannot be read or written: the disk is full, the file
    is read-only, locked or damaged. The message names the file and what to do.

    `kind` is one of "full", "readonly", "cantopen", "io", "busy", "corrupt", "other";
    only a damaged outbox (`fatal`) is beyond retrying."""

    def __init__(self, message: str, path: str, kind: str) -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind

    @property
    def fatal(self) -> bool:
        return self.kind == "corrupt"


class CodecError(HubError):
    """A message could not be decoded: unknown schema, truncated or corrupt bytes."""


class UnknownSchemaError(CodecError):
    """The writer used a schema version this reader does not ship (most likely a newer one:
    an agency upgraded before the hub). Not a bad message: it must be kept, not dropped."""


class ImplausibleValueError(CodecError):
    """The message is well-formed Avro but a value is outside what the reader can represent
    (a date or timestamp beyond year 9999, before year 1)."""


class RecordError(HubError):
    """One input record is unusable. Names where it came from, never its content."""

    def __init__(self, source: str, row: int, field: str, reason: str) -> None:
        self.source = source
        self.row = row
        self.field = field
        self.reason = reason
        super().__init__(f"{source}, row {row}, field {field!r}: {reason}")


#: The optional extras of the package (pyproject.toml) by the module each one brings.
EXTRAS: dict[str, str] = {
    "confluent_kafka": "confluent",
    "matplotlib": "report",
    "jinja2": "report",
    "python_calamine": "spreadsheet",
}


def install_command(extra: str) -> str:
    """How to install `extra` beside the hub."""
    return f"pip install 'online-risk-hub[{extra}]'"


@contextmanager
def extra_needed(what: str) -> Iterator[None]:
    """Turn the failed import of an extra's module in the block into a ConfigError
    naming the extra and its install command: "`what` needs the confluent extra
    (confluent_kafka is missing): pip install 'online-risk-hub[confluent]'". Any other
    ImportError is a fault of the installation and goes on as it is."""
    try:
        yield
    except ImportError as exc:
        module = (exc.name or "").split(".", 1)[0]
        extra = EXTRAS.get(module)
        if extra is None:
            raise
        raise ConfigError(
            f"{what} needs the {extra} extra ({module} is missing): {install_command(extra)}"
        ) from exc


def require_extra(extra: str, what: str) -> None:
    """Import every module of `extra` now, so that a command that needs it says so before
    it does any work (`extra_needed`'s ConfigError)."""
    with extra_needed(what):
        for module, owner in EXTRAS.items():
            if owner == extra:
                importlib.import_module(module)
