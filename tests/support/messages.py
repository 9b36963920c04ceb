"""Messages no adapter sends: poison, out-of-range values, a next schema version; and
small helpers to watch a worker's metrics."""

from __future__ import annotations

import copy
import io
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
from kafka import KafkaConsumer, KafkaProducer

from hub import resources
from hub.codec import Codec
from hub.settings import HubSettings
from tests.support.processes import WorkerProcess

EPOCH_DAY = date(1970, 1, 1)
EXTRA_FIELD = "platform_detail"


def raw_body(codec: Codec, record: dict[str, Any], **raw: int) -> bytes:
    """`record` in the current schema, with `raw` fields (dates, timestamps) written as the
    plain numbers Avro carries, so values Python's date types cannot hold can be sent.
    Logical types are not part of a schema's canonical form: the fingerprint is the same."""
    schema = json.loads(codec.current.path.read_text(encoding="utf-8"))
    plain = copy.deepcopy(schema)
    for field in plain["fields"]:
        kind = field["type"]
        if isinstance(kind, dict) and "logicalType" in kind:
            field["type"] = kind["type"]
    values = dict(record)
    values["occurred_on"] = (record["occurred_on"] - EPOCH_DAY).days
    values["reported_at"] = int(record["reported_at"].timestamp() * 1000)
    values.update(raw)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(plain), values)
    return codec.current.header + out.getvalue()


def next_schemas(root: Path) -> Path:
    """A copy of the shipped schemas plus the next case_event version: the current one
    with one more optional field (backward and forward compatible, as a release would be)."""
    target = root / "schemas"
    shutil.copytree(resources.schemas(), target, ignore=shutil.ignore_patterns("__pycache__"))
    current = Codec("case_event").current
    schema = json.loads(current.path.read_text(encoding="utf-8"))
    schema["fields"].append(
        {
            "name": EXTRA_FIELD,
            "type": ["null", "string"],
            "default": None,
            "doc": "A test-only field of the next version.",
        }
    )
    (target / "case_event" / f"v{current.version + 1}.avsc").write_text(
        json.dumps(schema, indent=2), encoding="utf-8"
    )
    return target


def produce(settings: HubSettings, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send (topic, key, value) messages as they are, acks=all."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def read_all(settings: HubSettings, topic: str) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def total(samples: dict[str, float], name: str) -> float:
    """The sum of every sample of `name`, whatever its labels."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


def by_code(samples: dict[str, float]) -> Counter[str]:
    return Counter(
        {
            k.split('"')[1]: int(v)
            for k, v in samples.items()
            if k.startswith("hub_events_by_risk_code{")
        }
    )


def wait_for(
    worker: WorkerProcess,
    done: Callable[[dict[str, float]], bool],
    what: str,
    timeout: float = 90.0,
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        try:
            samples = worker.metrics()
        except OSError:
            samples = {}
        if samples and done(samples):
            return samples
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s: {samples}")


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)
