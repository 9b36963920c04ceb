"""Small helpers around kafka-python shared by the CLI, adapters and tests."""

from __future__ import annotations

import logging
import socket

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, RetriableError

from hub.errors import BrokerError

_UNREACHABLE = (RetriableError, OSError)


def _accepts_connections(bootstrap: str, timeout: float) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def broker_answers(bootstrap: str, timeout: float) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within `timeout`."""
    # A plain TCP check first: kafka-python leaks a socket per refused connection.
    if not _accepts_connections(bootstrap, timeout):
        return False
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


def admin_client(bootstrap: str, client_id: str) -> KafkaAdminClient:
    """An admin client, or a BrokerError that says how to start the local broker."""
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    except KafkaError as exc:
        raise BrokerError(
            f"cannot reach Kafka at {bootstrap} ({exc}); is it running?"
            " `hub broker start` starts the local one, HUB_BOOTSTRAP points elsewhere."
        ) from exc
