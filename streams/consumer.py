"""How the worker's agent reads the case topics: as the bytes on the broker.

Faust's schema would look up the "raw" codec for the key and for the value of every
message to pass the bytes through unchanged; ``RawSchema`` hands them over as they
came, and the worker decodes the Avro itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import AppT, EventT, Message, TopicT


class RawSchema(faust.Schema[bytes, bytes]):
    """Keys and values as the bytes on the broker, with no codec lookups per message."""

    def __init__(self) -> None:
        super().__init__(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    def compile(self, app: AppT, **_: Any) -> Callable[..., Awaitable[EventT[bytes]]]:
        event_type = app.conf.Event  # read once: a settings lookup per message otherwise

        async def decode(message: Message, *, propagate: bool = False) -> EventT[bytes]:
            event = event_type(app, message.key, message.value, message.headers, message)  # type: ignore[operator]
            return event  # type: ignore[no-any-return]

        return decode


def raw_topic(app: faust.App, *names: str) -> TopicT:
    """The topics `names`, read as bytes (``RawSchema``)."""
    return app.topic(*names, schema=RawSchema())
