"""How the worker's agent reads the case topics (``streams.consumer``): keys and values
passed through as the bytes on the broker. A real Faust app and topic; no broker."""

from __future__ import annotations

import asyncio

import faust
from faust.types.tuples import ConsumerMessage

from streams.consumer import raw_topic

POLICE = "t.cases.police"


def message(offset: int, *, value: bytes | None = b"v") -> ConsumerMessage:
    return ConsumerMessage(POLICE, 1, offset, 0.0, 0, None, b"k", value, None)


def test_keys_and_values_pass_through_as_bytes() -> None:
    async def run() -> None:
        app = faust.App(
            "consumer-test",
            broker="kafka://localhost:1",
            autodiscover=False,
            loop=asyncio.get_running_loop(),
        )
        decode = raw_topic(app, POLICE).schema.compile(app)
        event = await decode(message(5, value=b"\x00\x01avro"))
        assert (event.key, event.value) == (b"k", b"\x00\x01avro")
        assert (await decode(message(6, value=None))).value is None  # refused by the worker

    asyncio.run(run())
