"""Small helpers around kafka-python shared by the CLI, adapters and tests."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.errors import RetriableError

_UNREACHABLE = (RetriableError, OSError)


def broker_answers(bootstrap: str, timeout: float) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within `timeout`."""
    # kafka-python logs every refused connection; while polling that is expected.
    quiet = logging.getLogger("kafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            client_id="hub-probe",
        )
    except _UNREACHABLE:
        return False
    finally:
        quiet.setLevel(level)
    try:
        admin.list_topics()
        return True
    except _UNREACHABLE:
        return False
    finally:
        admin.close()
