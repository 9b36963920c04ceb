"""One client configuration (`hub.kafka.security.client_config`) for every Kafka client:
its mapping onto kafka-python, librdkafka and Faust, its checks, the password kept out
of reprs, errors, logs and command lines, and no client of the hub built without it."""

from __future__ import annotations

import ast
import datetime as dt
import logging
import re
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import SecretStr

from adapters import drain
from hub.errors import ConfigError
from hub.kafka.security import ClientConfig, client_config
from hub.settings import HubSettings
from streams.app import broker_credentials

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - a test credential


def settings(**fields: Any) -> HubSettings:
    return HubSettings(bootstrap="127.0.0.1:9", **fields)


def sasl(protocol: str = "SASL_PLAINTEXT", **fields: Any) -> HubSettings:
    return settings(
        security_protocol=protocol,
        sasl_username="analysts",
        sasl_password=SecretStr(PASSWORD),
        **fields,
    )


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    combined: Path  # the certificate and its key in one file


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a client certificate it signed, as PEM files."""
    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("hub test CA"))
        .issuer_name(_name("hub test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("analysts"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    found = Pki(
        folder / "ca.pem", folder / "client.pem", folder / "client.key", folder / "both.pem"
    )
    found.ca.write_bytes(ca_cert.public_bytes(pem))
    found.cert.write_bytes(cert.public_bytes(pem))
    found.key.write_bytes(key_pem)
    found.combined.write_bytes(cert.public_bytes(pem) + key_pem)
    return found


# --- the mapping -----------------------------------------------------------------
def test_plaintext() -> None:
    config = client_config(settings())
    assert config.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert config.librdkafka() == {"security.protocol": "PLAINTEXT"}
    assert config.ssl_context() is None
    assert broker_credentials(config) is None


def test_plaintext_ignores_credentials_and_tls_files() -> None:
    config = client_config(
        settings(
            sasl_username="analysts",
            sasl_password=SecretStr(PASSWORD),
            ssl_cafile=Path("/nonexistent/ca.pem"),
        )
    )
    assert config.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert config.password is None and config.cafile is None


def test_sasl_plaintext() -> None:
    config = client_config(sasl(sasl_mechanism="SCRAM-SHA-256"))
    assert config.kafka_python() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "analysts",
        "sasl_plain_password": PASSWORD,
    }
    assert config.librdkafka() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "SCRAM-SHA-256",
        "sasl.username": "analysts",
        "sasl.password": PASSWORD,
    }
    credentials = broker_credentials(config)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert (credentials.username, credentials.password) == ("analysts", PASSWORD)
    assert credentials.ssl_context is None


def test_sasl_ssl_with_ca_and_client_certificate(pki: Pki) -> None:
    config = client_config(
        sasl("SASL_SSL", ssl_cafile=pki.ca, ssl_certfile=pki.cert, ssl_keyfile=pki.key)
    )
    assert config.kafka_python() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "analysts",
        "sasl_plain_password": PASSWORD,
        "ssl_check_hostname": True,
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.cert),
        "ssl_keyfile": str(pki.key),
    }
    assert config.librdkafka() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "analysts",
        "sasl.password": PASSWORD,
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(pki.ca),
        "ssl.certificate.location": str(pki.cert),
        "ssl.key.location": str(pki.key),
    }
    credentials = broker_credentials(config)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    context = credentials.ssl_context
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "hub test CA"),),)]


def test_ssl_without_a_ca_file_trusts_the_system() -> None:
    config = client_config(settings(security_protocol="SSL"))
    assert config.kafka_python() == {"security_protocol": "SSL", "ssl_check_hostname": True}
    assert config.librdkafka() == {
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "https",
    }
    credentials = broker_credentials(config)
    assert isinstance(credentials, SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


def test_a_key_in_the_certificate_file(pki: Pki) -> None:
    config = client_config(
        settings(security_protocol="SSL", ssl_cafile=pki.ca, ssl_certfile=pki.combined)
    )
    assert "ssl_keyfile" not in config.kafka_python()
    assert config.librdkafka()["ssl.key.location"] == str(pki.combined)
    assert config.ssl_context() is not None


def test_the_settings_come_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "HUB_SECURITY_PROTOCOL": "SASL_SSL",
        "HUB_SASL_USERNAME": "camhs-adapter",
        "HUB_SASL_PASSWORD": PASSWORD,
        "HUB_SSL_CAFILE": str(pki.ca),
        "HUB_SSL_CERTFILE": str(pki.cert),
        "HUB_SSL_KEYFILE": str(pki.key),
    }.items():
        monkeypatch.setenv(name, value)
    config = client_config(HubSettings())
    assert (config.protocol, config.username) == ("SASL_SSL", "camhs-adapter")
    assert (config.cafile, config.certfile, config.keyfile) == (pki.ca, pki.cert, pki.key)


# --- the checks ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "needs"),
    [
        ({}, "needs HUB_SASL_USERNAME and HUB_SASL_PASSWORD"),
        ({"sasl_username": "analysts"}, "needs HUB_SASL_PASSWORD"),
        ({"sasl_password": SecretStr(PASSWORD)}, "needs HUB_SASL_USERNAME"),
    ],
)
def test_sasl_needs_a_username_and_password(fields: dict[str, Any], needs: str) -> None:
    with pytest.raises(ConfigError, match=needs) as raised:
        client_config(settings(security_protocol="SASL_SSL", **fields))
    assert "HUB_SECURITY_PROTOCOL=SASL_SSL" in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_configuration_built_directly_is_checked_too() -> None:
    with pytest.raises(ConfigError, match="needs HUB_SASL_PASSWORD"):
        ClientConfig(protocol="SASL_PLAINTEXT", username="hub-operator")
    config = ClientConfig("SASL_PLAINTEXT", username="hub-operator", password=SecretStr(PASSWORD))
    assert config.kafka_python()["sasl_plain_username"] == "hub-operator"
    assert PASSWORD not in repr(config)


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(
        ConfigError, match=re.escape(f"HUB_SSL_CAFILE={missing} does not")
    ) as raised:
        client_config(sasl("SASL_SSL", ssl_cafile=missing))
    assert PASSWORD not in str(raised.value)


def test_a_missing_client_key_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "client.key"
    with pytest.raises(ConfigError, match=re.escape(f"HUB_SSL_KEYFILE={missing} does not")):
        client_config(settings(security_protocol="SSL", ssl_certfile=pki.cert, ssl_keyfile=missing))


def test_a_key_without_its_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="HUB_SSL_KEYFILE is set without HUB_SSL_CERTFILE"):
        client_config(settings(security_protocol="SSL", ssl_keyfile=pki.key))


def test_files_that_do_not_load_are_named(pki: Pki) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"HUB_SSL_CAFILE={pki.key} is not a CA")):
        client_config(settings(security_protocol="SSL", ssl_cafile=pki.key))
    # The certificate alone, without its key: unusable.
    unusable = re.escape(f"HUB_SSL_CERTFILE={pki.cert}") + ".* cannot be used"
    with pytest.raises(ConfigError, match=unusable) as raised:
        client_config(sasl("SASL_SSL", ssl_cafile=pki.ca, ssl_certfile=pki.cert))
    assert PASSWORD not in str(raised.value)


# --- the password stays secret ---------------------------------------------------
def test_the_password_is_not_in_repr_or_str() -> None:
    config = client_config(sasl())
    for text in (repr(config), str(config), repr(broker_credentials(config))):
        assert PASSWORD not in text
    assert "analysts" in repr(config)


def test_kafka_python_logs_the_admin_options_masked(caplog: pytest.LogCaptureFixture) -> None:
    options = client_config(sasl()).kafka_python()
    caplog.set_level(logging.DEBUG, logger="kafka.admin.client")
    # What KafkaAdminClient logs first, with every option it was given.
    logging.getLogger("kafka.admin.client").debug(
        "Starting KafkaAdminClient with configuration: %s", options
    )
    # Options written out by hand are masked as well.
    logging.getLogger("kafka.admin.client").debug(
        "Starting KafkaAdminClient with configuration: %s",
        {"sasl_plain_username": "hub-operator", "sasl_plain_password": PASSWORD},
    )
    assert "sasl_plain_username': 'analysts'" in caplog.text
    assert "sasl_plain_username': 'hub-operator'" in caplog.text
    assert PASSWORD not in caplog.text
    assert options["sasl_plain_password"] == PASSWORD  # masked in the log only


class _Child:
    returncode = 0

    def poll(self) -> None:
        return None

    def send_signal(self, _signal: int) -> None:
        pass

    def wait(self, timeout: float | None = None) -> int:
        return 0


def test_the_drain_process_gets_the_password_from_its_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[tuple[list[str], dict[str, str]]] = []

    def popen(command: list[str], env: dict[str, str], **_: Any) -> _Child:
        started.append((command, env))
        return _Child()

    monkeypatch.setattr(subprocess, "Popen", popen)
    with drain.drain_process(sasl(outbox=tmp_path / "outbox.sqlite"), "camhs", 1.0):
        pass
    ((command, env),) = started
    assert not any(PASSWORD in part for part in command)
    assert env["HUB_SASL_PASSWORD"] == PASSWORD
    assert env["HUB_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"


# --- no client without it ----------------------------------------------------------
#: The client classes of each library, and what a construction must pass to carry the
#: hub's configuration.
_KAFKA_PYTHON = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
_LIBRDKAFKA = {"Producer", "Consumer", "AdminClient"}


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it was imported as, for every import in `tree`."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _calls_method(node: ast.AST, method: str) -> bool:
    """`node` is a call ``<something>.<method>()``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
    )


def _calls_function(node: ast.AST, function: str) -> bool:
    """`node` contains a call of ``function(...)``."""
    return any(
        isinstance(each, ast.Call)
        and isinstance(each.func, ast.Name | ast.Attribute)
        and (each.func.id if isinstance(each.func, ast.Name) else each.func.attr) == function
        for each in ast.walk(node)
    )


def _missing_configuration(client: str, call: ast.Call) -> str | None:
    """What the construction of `client` (a dotted class name) lacks; None if nothing,
    or if `client` is no Kafka client class."""
    library, _, cls = client.partition(".")
    cls = cls.rsplit(".", 1)[-1]
    if library == "kafka" and cls in _KAFKA_PYTHON:
        if any(k.arg is None and _calls_method(k.value, "kafka_python") for k in call.keywords):
            return None
        return "passes no **<ClientConfig>.kafka_python()"
    if library == "confluent_kafka" and cls in _LIBRDKAFKA:
        first = call.args[0] if call.args else None
        if isinstance(first, ast.Dict) and any(
            key is None and _calls_method(value, "librdkafka")
            for key, value in zip(first.keys, first.values, strict=True)
        ):
            return None
        return "its properties hold no **<ClientConfig>.librdkafka()"
    if library == "faust" and cls == "App":
        for keyword in call.keywords:
            if keyword.arg == "broker_credentials" and _calls_function(
                keyword.value, "client_config"
            ):
                return None
        return "passes no broker_credentials=...(client_config(settings))"
    if library == "aiokafka" and cls.startswith("AIOKafka"):
        return "is an aiokafka client outside Faust (build it through faust.App)"
    return None


def unconfigured_clients(source: str, where: str) -> list[str]:
    """`where:line Class(...) ...` for every Kafka client `source` builds without the
    hub's client configuration."""
    tree = ast.parse(source, filename=where)
    names = _imported_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            client = _dotted(node.func, names)
            problem = None if client is None else _missing_configuration(client, node)
            if problem is not None:
                found.append((node.lineno, f"{where}:{node.lineno} {client}(...) {problem}"))
    return [problem for _, problem in sorted(found)]


def client_constructions(source: str, where: str) -> Iterator[str]:
    """`where` once per Kafka client `source` builds, configured or not."""
    tree = ast.parse(source, filename=where)
    names = _imported_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            client = _dotted(node.func, names)
            if client is not None and client.split(".")[0] in (
                "kafka",
                "confluent_kafka",
                "faust",
                "aiokafka",
            ):
                short = client.rsplit(".", 1)[-1]
                if short in _KAFKA_PYTHON | _LIBRDKAFKA | {"App"} or short.startswith("AIO"):
                    yield where


def _modules() -> Iterator[tuple[str, str]]:
    for package in ("hub", "adapters", "streams"):
        for path in sorted((REPO / package).rglob("*.py")):
            yield str(path.relative_to(REPO)), path.read_text(encoding="utf-8")


def test_every_client_is_built_with_the_client_configuration() -> None:
    problems = [p for where, source in _modules() for p in unconfigured_clients(source, where)]
    assert not problems, "build these with hub.kafka.security.client_config:\n" + "\n".join(
        problems
    )


def test_the_check_sees_every_client_library() -> None:
    """The check is not vacuous: it finds the clients of each library where they are."""
    sites = {found for where, source in _modules() for found in client_constructions(source, where)}
    assert {
        "hub/kafka/client.py",
        "adapters/publishers/kafka_python.py",
        "adapters/publishers/confluent.py",
        "streams/app.py",
        "streams/lag.py",
        "streams/deferred.py",
        "streams/publish/publisher.py",
    } <= sites


PLANTED = """
import faust
import kafka
from confluent_kafka import Producer as Librdkafka
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import KafkaAdminClient as Admin

def build(settings, config, options):
    KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    kafka.KafkaConsumer("topic", **options)
    Admin(bootstrap_servers="x", security_protocol="PLAINTEXT")
    Librdkafka({"bootstrap.servers": "x"})
    faust.App("id", broker="kafka://x")
    faust.App("id", broker="kafka://x", broker_credentials=None)
    KafkaAdminClient(bootstrap_servers="x", **config.kafka_python())
    Librdkafka({"bootstrap.servers": "x", **config.librdkafka()})
    faust.App("id", broker_credentials=broker_credentials(client_config(settings)))
"""


def test_the_check_finds_a_plain_construction() -> None:
    problems = unconfigured_clients(PLANTED, "planted.py")
    assert [p.split(" ", 1)[0] for p in problems] == [
        f"planted.py:{line}" for line in (9, 10, 11, 12, 13, 14)
    ]
    assert "kafka.KafkaProducer(...) passes no **<ClientConfig>.kafka_python()" in problems[0]
    assert "confluent_kafka.Producer(...)" in problems[3]
    assert "faust.App(...)" in problems[4]
