"""What an adapter has forwarded: event ids on a topic, the outbox's counts as another
process reads them, and waiting for a condition."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from kafka import KafkaConsumer

from hub.codec import Codec
from hub.settings import HubSettings


def event_ids_on(settings: HubSettings, topic: str) -> list[str]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    codec = Codec("case_event")
    try:
        return [codec.decode(m.value)["event_id"] for m in consumer]
    finally:
        consumer.close()


def outbox_counts(path: Path) -> tuple[int, int]:
    """(pending, sent), read from a connection of the test's own, as another process would."""
    if not path.exists():
        return 0, 0
    db = sqlite3.connect(path, timeout=30)
    try:
        row = db.execute(
            "SELECT COALESCE(SUM(sent_at IS NULL), 0), COALESCE(SUM(sent_at IS NOT NULL), 0)"
            " FROM outbox"
        ).fetchone()
    except sqlite3.OperationalError:  # the adapter has not created its tables yet
        return 0, 0
    finally:
        db.close()
    return int(row[0]), int(row[1])


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
