"""One error hierarchy for the hub.

`RecordError` means "this input record is bad": the caller quarantines it and
goes on. Every other `HubError` means the hub cannot do what was asked (a
missing tool, a taken port, an unreachable broker) and carries a message that
tells the user what to do. Anything else is a bug and should crash loudly.
"""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """A setting, key file or profile is missing or invalid."""


class BrokerError(HubError):
    """The local Kafka broker cannot be fetched, started, reached or stopped."""


class PublishError(HubError):
    """Kafka did not acknowledge an event."""


class CodecError(HubError):
    """A message could not be decoded: unknown schema, truncated or corrupt bytes."""


class RecordError(HubError):
    """One input record is unusable. Names where it came from, never its content."""

    def __init__(self, source: str, row: int, field: str, reason: str) -> None:
        self.source = source
        self.row = row
        self.field = field
        self.reason = reason
        super().__init__(f"{source}, row {row}, field {field!r}: {reason}")
