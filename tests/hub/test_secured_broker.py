"""A broker whose only client listener is SASL_SSL (HUB_BROKER_SECURITY=sasl_ssl).

The operator, the broker's only super user, works over SASL_SSL trusting the
broker's CA; a plaintext client, a wrong password and a client that trusts
another CA are all refused, quickly.
"""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from pydantic import SecretStr

from hub.ops.broker import Broker
from hub.ops.broker.launcher import port_is_free
from hub.ops.tls import create_ca
from tests.support.processes import hub

#: Characters the properties file, JAAS and SCRAM each treat specially.
PASSWORD = secrets.token_urlsafe(12) + ',"\\ é=]'
#: How long a refused client may take to give up.
REFUSED_WITHIN = 15.0


@pytest.fixture
def secured(private_broker: Broker) -> Iterator[Broker]:
    """The test's own broker (free ports, its own data), secured, not started."""
    settings = private_broker.settings.model_copy(
        update={"broker_security": "sasl_ssl", "broker_operator_password": SecretStr(PASSWORD)}
    )
    broker = Broker(settings)
    try:
        yield broker
    finally:
        broker.stop()


def sasl_ssl(cafile: Path, password: str = PASSWORD) -> dict[str, Any]:
    """kafka-python options for the operator over SASL_SSL."""
    return {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(cafile),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "hub-operator",
        "sasl_plain_password": password,
    }


#: One client's attempt, in a process of its own: kafka-python leaves the socket of a
#: failed TLS handshake open and its I/O thread running. Options come on standard input.
ATTEMPT = """
import json, sys, time
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

options = json.loads(sys.stdin.read())
started = time.monotonic()
try:
    admin = KafkaAdminClient(client_id="refused", bootstrap_timeout_ms=5000,
                             request_timeout_ms=5000, **options)
    admin.list_topics()
    admin.close()
    refused = None
except KafkaError as exc:
    refused = type(exc).__name__
print(json.dumps({"refused": refused, "seconds": time.monotonic() - started}))
"""


def assert_all_refused(bootstrap: str, *attempts: dict[str, Any]) -> None:
    """Each client (its kafka-python options) fails to get metadata, within REFUSED_WITHIN."""
    running = [
        subprocess.Popen(
            [sys.executable, "-c", ATTEMPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in attempts
    ]
    outputs = []
    try:
        for process, options in zip(running, attempts, strict=True):
            request = json.dumps({"bootstrap_servers": bootstrap, **options})
            outputs.append(process.communicate(request, timeout=60))
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for options, (out, err) in zip(attempts, outputs, strict=True):
        what = options.get("security_protocol", "PLAINTEXT"), options.get("ssl_cafile")
        assert out.strip(), f"{what}: {err[-2000:]}"
        result = json.loads(out)
        assert result["refused"], f"{what} got in"
        assert result["seconds"] < REFUSED_WITHIN, f"{what} took {result['seconds']:.1f}s"


def test_only_the_operator_over_sasl_ssl_gets_in(secured: Broker, tmp_path: Path) -> None:
    s = secured.settings
    bootstrap = s.bootstrap_servers
    started = hub(s, "broker", "start")
    assert started.returncode == 0, started.stderr
    assert "running: Kafka on" in started.stdout and "SASL_SSL" in started.stdout
    status = hub(s, "broker", "status")
    assert status.returncode == 0 and status.stdout.startswith("running"), status.stderr
    cafile = secured.tls_dir / "ca.pem"
    assert (secured.tls_dir / "broker.pem").is_file()

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="operator", **sasl_ssl(cafile))
    try:
        admin.create_topics([NewTopic("secured.events", 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **sasl_ssl(cafile))
    try:
        producer.send("secured.events", key=b"k", value=b"over tls").get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        "secured.events",
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20000,
        **sasl_ssl(cafile),
    )
    try:
        first = next(consumer, None)
        assert first is not None and first.value == b"over tls"
    finally:
        consumer.close()

    create_ca(tmp_path / "other-ca")
    assert_all_refused(
        bootstrap,
        {},  # plaintext
        sasl_ssl(cafile, secrets.token_urlsafe(12)),  # a wrong password
        sasl_ssl(tmp_path / "other-ca" / "ca.pem"),  # trusting another CA
    )

    # The password is in the owner-only config only: not on a command line, not in a log.
    pid = secured.pid()
    assert pid is not None
    assert PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert stat.S_IMODE(secured.config.stat().st_mode) == 0o600
    for log in secured.logs.iterdir():
        assert PASSWORD not in log.read_text(errors="replace"), log

    stopped = hub(s, "broker", "stop")
    assert stopped.returncode == 0 and "broker stopped" in stopped.stdout
    assert port_is_free(s.broker_host, s.broker_port)
    assert port_is_free("127.0.0.1", s.controller_port)
    assert hub(s, "broker", "status").returncode == 3

    # Started again with another password, the operator is refused: said, and stopped.
    wrong = secrets.token_urlsafe(12)
    other = s.model_copy(update={"broker_operator_password": SecretStr(wrong)})
    refused = hub(other, "broker", "start")
    assert refused.returncode == 1
    assert "refused the credentials of User:hub-operator" in refused.stderr
    assert "Traceback" not in refused.stderr and wrong not in refused.stderr
    assert secured.pid() is None and port_is_free(s.broker_host, s.broker_port)


def test_a_secured_broker_without_its_password_is_a_clear_error(secured: Broker) -> None:
    s = secured.settings.model_copy(update={"broker_operator_password": None})
    refused = hub(s, "broker", "start")
    assert refused.returncode == 1
    assert "HUB_BROKER_SECURITY=sasl_ssl needs HUB_BROKER_OPERATOR_PASSWORD" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not secured.state.exists()
