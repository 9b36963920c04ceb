"""The broker launcher against a real second Kafka broker of its own (not the session one)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from hub.errors import BrokerError
from hub.ops.broker import Broker, ensure_artifacts, kafka_version
from hub.ops.broker.launcher import port_is_free
from hub.settings import HubSettings
from tests.support.processes import hub


def java_processes(config: Path) -> int:
    found = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found += b"kafka.Kafka" in argv and str(config).encode() in argv
    return found


def test_start_twice_is_one_broker_and_stop_frees_the_port(private_broker: Broker) -> None:
    s = private_broker.settings
    assert hub(s, "broker", "status").returncode == 3

    first = hub(s, "broker", "start")
    assert first.returncode == 0, first.stderr
    assert "running: Kafka on" in first.stdout and str(private_broker.logs) in first.stdout
    second = hub(s, "broker", "start")
    assert second.returncode == 0 and second.stdout.startswith("already running")
    assert java_processes(private_broker.config) == 1

    status = hub(s, "broker", "status")
    assert status.returncode == 0 and status.stdout.startswith("running")

    stopped = hub(s, "broker", "stop")
    assert stopped.returncode == 0 and "broker stopped" in stopped.stdout
    assert java_processes(private_broker.config) == 0
    assert port_is_free(s.broker_host, s.broker_port)
    assert port_is_free(s.broker_host, s.controller_port)
    assert hub(s, "broker", "status").returncode == 3
    assert "not running" in hub(s, "broker", "status").stdout


def test_data_survives_a_restart(private_broker: Broker) -> None:
    private_broker.start(quiet=True)
    admin = KafkaAdminClient(bootstrap_servers=private_broker.settings.bootstrap_servers)
    admin.create_topics([NewTopic("survives-restart", 2, 1)])
    admin.close()
    private_broker.stop()
    private_broker.start(quiet=True)
    admin = KafkaAdminClient(bootstrap_servers=private_broker.settings.bootstrap_servers)
    try:
        assert "survives-restart" in admin.list_topics()
    finally:
        admin.close()


def test_a_stale_pid_file_does_not_block_start(private_broker: Broker) -> None:
    private_broker.state.mkdir(parents=True)
    private_broker.pidfile.write_text(f"{os.getpid()}\n")  # alive, but not a broker
    assert private_broker.pid() is None
    assert not private_broker.pidfile.exists()


def test_a_taken_port_is_a_clear_error(private_broker: Broker) -> None:
    s = private_broker.settings
    with socket.socket() as squatter:
        squatter.bind((s.broker_host, s.broker_port))
        squatter.listen()
        with pytest.raises(BrokerError, match=f"port {s.broker_port} .* is taken"):
            private_broker.start(quiet=True)


def test_missing_java_or_maven_is_a_clear_error(
    broker_settings: HubSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    empty_cache = broker_settings.model_copy(update={"broker_cache": tmp_path / "cache"})
    with pytest.raises(BrokerError, match=r"Maven was not found.*apt-get install maven"):
        ensure_artifacts(empty_cache, quiet=True)
    with pytest.raises(BrokerError, match=r"Java 17 was not found"):
        Broker(empty_cache.model_copy(update={"broker_data": tmp_path / "b"})).start(quiet=True)


def test_a_failed_download_is_a_clear_error(broker_settings: HubSettings, tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text(
        broker_settings.kafka_pom.read_text().replace(
            f"<kafka.version>{kafka_version(broker_settings.kafka_pom)}<",
            "<kafka.version>0.0.404-no-such-release<",
        )
    )
    settings = broker_settings.model_copy(
        update={"kafka_pom": pom, "broker_cache": tmp_path / "cache"}
    )
    with pytest.raises(BrokerError, match="Maven could not fetch Kafka"):
        ensure_artifacts(settings, quiet=True)
    assert not (tmp_path / "cache" / "kafka-0.0.404-no-such-release" / ".complete").exists()


def test_the_pinned_version_is_kafka_4_or_newer(broker_settings: HubSettings) -> None:
    major, _, _ = (int(x) for x in kafka_version(broker_settings.kafka_pom).split("."))
    assert major >= 4


def test_the_broker_logs_to_its_server_log(broker_settings: HubSettings) -> None:
    """Kafka's log lines reach logs/server.log through the configuration the launcher
    writes; nothing (a missing logging binding, a logger that fell back) reaches its
    console output."""
    broker = Broker(broker_settings)
    version = kafka_version(broker_settings.kafka_pom)
    server_log = (broker.logs / "server.log").read_text()
    assert f"INFO Kafka version: {version} " in server_log
    assert (broker.logs / "broker.out").read_text() == ""
