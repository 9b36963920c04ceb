"""TLS material: a CA, broker and client certificates it signs, files never overwritten."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.errors import ConfigError
from hub.ops.tls import (
    broker_tls,
    create_ca,
    hosts_of,
    is_signed_by,
    issue_certificate,
    read_certificates,
)
from hub.settings import HubSettings
from tests.support.processes import hub


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_a_broker_certificate_verifies_against_the_ca_and_names_its_hosts(tmp_path: Path) -> None:
    ca_file = create_ca(tmp_path / "ca")
    pem = issue_certificate(tmp_path / "ca", "broker", tmp_path / "broker", server=True)

    ca = read_certificates(ca_file)[0]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert is_signed_by(ca, ca)  # self-signed
    leaf, chain_ca = read_certificates(pem)
    assert is_signed_by(leaf, ca)
    assert chain_ca == ca  # key, then certificate, then the CA: Kafka's PEM keystore
    assert common_name(leaf) == "broker"
    assert set(hosts_of(leaf)) == {"127.0.0.1", "localhost"}
    alt = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in alt.get_values_for_type(x509.IPAddress)
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages

    text = pem.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, not encrypted
    key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == leaf.public_key()


def test_a_client_certificate_carries_the_principal_and_no_hosts(tmp_path: Path) -> None:
    create_ca(tmp_path)
    pem = issue_certificate(tmp_path, "analysts", tmp_path)
    leaf = read_certificates(pem)[0]
    assert common_name(leaf) == "analysts"
    assert hosts_of(leaf) == []
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_another_ca_did_not_sign_it(tmp_path: Path) -> None:
    create_ca(tmp_path / "ours")
    other = read_certificates(create_ca(tmp_path / "theirs"))[0]
    leaf = read_certificates(issue_certificate(tmp_path / "ours", "b", tmp_path, ["kafka.test"]))
    assert hosts_of(leaf[0]) == ["kafka.test"]
    assert not is_signed_by(leaf[0], other)


def test_private_keys_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        create_ca(tmp_path)
        pem = issue_certificate(tmp_path, "broker", tmp_path, server=True)
    finally:
        os.umask(old)
    assert mode(tmp_path / "ca.key") == 0o600
    assert mode(pem) == 0o600
    assert mode(tmp_path / "ca.pem") == 0o644


def test_nothing_is_ever_overwritten(tmp_path: Path) -> None:
    create_ca(tmp_path)
    key_before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(ConfigError, match=r"ca\.pem exists; TLS files are never overwritten"):
        create_ca(tmp_path)
    assert (tmp_path / "ca.key").read_bytes() == key_before

    pem = issue_certificate(tmp_path, "analysts", tmp_path)
    before = pem.read_bytes()
    with pytest.raises(ConfigError, match=r"analysts\.pem exists"):
        issue_certificate(tmp_path, "analysts", tmp_path)
    assert pem.read_bytes() == before

    # Not even the half of a CA that is missing is written beside the half that exists.
    (tmp_path / "ca.pem").unlink()
    with pytest.raises(ConfigError, match=r"ca\.key exists"):
        create_ca(tmp_path)
    assert not (tmp_path / "ca.pem").exists()


def test_bad_names_hosts_and_a_missing_ca_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no CA certificate"):
        issue_certificate(tmp_path / "nowhere", "analysts", tmp_path)
    create_ca(tmp_path)
    with pytest.raises(ConfigError, match="not usable"):
        issue_certificate(tmp_path, "../escape", tmp_path)
    with pytest.raises(ConfigError, match="neither an IP address nor a host name"):
        issue_certificate(tmp_path, "broker", tmp_path, ["bad host"])
    (tmp_path / "ca.key").unlink()
    with pytest.raises(ConfigError, match="signing needs the CA's key"):
        issue_certificate(tmp_path, "analysts", tmp_path)
    assert not (tmp_path / "analysts.pem").exists()


def test_the_broker_directory_is_made_once_then_only_checked(tmp_path: Path) -> None:
    tls = broker_tls(tmp_path / "tls", "127.0.0.1")
    assert tls.truststore == tmp_path / "tls" / "ca.pem"
    assert tls.keystore == tmp_path / "tls" / "broker.pem"
    assert mode(tmp_path / "tls") == 0o700
    first = tls.keystore.read_bytes()
    assert broker_tls(tmp_path / "tls", "127.0.0.1") == tls
    assert tls.keystore.read_bytes() == first

    with pytest.raises(ConfigError, match="not valid for kafka.test"):
        broker_tls(tmp_path / "tls", "kafka.test")

    # A broker certificate from another CA is refused before Kafka sees it.
    create_ca(tmp_path / "other")
    issue_certificate(tmp_path / "other", "broker", tmp_path / "mixed", server=True)
    (tmp_path / "mixed" / "ca.pem").write_bytes(tls.truststore.read_bytes())
    with pytest.raises(ConfigError, match="not signed by the CA"):
        broker_tls(tmp_path / "mixed", "127.0.0.1")


def test_the_commands_write_a_ca_and_certificates(tmp_path: Path) -> None:
    settings = HubSettings()
    made = hub(settings, "security", "ca", "--out", str(tmp_path / "ca"))
    assert made.returncode == 0, made.stderr
    again = hub(settings, "security", "ca", "--out", str(tmp_path / "ca"))
    assert again.returncode == 1
    assert again.stderr.startswith("error: ") and "never overwritten" in again.stderr
    assert "Traceback" not in again.stderr

    broker = hub(
        settings,
        *("security", "cert", "--ca", str(tmp_path / "ca"), "--name", "broker"),
        *("--out", str(tmp_path / "b"), "--host", "kafka.test", "--host", "127.0.0.1"),
    )
    assert broker.returncode == 0, broker.stderr
    assert "broker certificate for kafka.test, 127.0.0.1" in broker.stdout
    client = hub(
        settings,
        *("security", "cert", "--ca", str(tmp_path / "ca"), "--name", "analysts"),
        *("--out", str(tmp_path / "c")),
    )
    assert client.returncode == 0, client.stderr
    assert "client certificate, CN=analysts" in client.stdout
    ca = read_certificates(tmp_path / "ca" / "ca.pem")[0]
    assert is_signed_by(read_certificates(tmp_path / "c" / "analysts.pem")[0], ca)


def test_the_broker_uses_a_ca_it_is_given(tmp_path: Path) -> None:
    ca = read_certificates(create_ca(tmp_path / "given"))[0]
    tls = broker_tls(tmp_path / "given", "localhost")
    leaf = read_certificates(tls.keystore)[0]
    assert is_signed_by(leaf, ca)
    assert {"localhost", "127.0.0.1"} <= set(hosts_of(leaf))

    # Without the CA's key nothing can be issued: the error says how to make one.
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "ca.pem").write_bytes((tmp_path / "given" / "ca.pem").read_bytes())
    with pytest.raises(ConfigError, match="hub security cert --ca CA_DIR --name broker"):
        broker_tls(tmp_path / "public", "127.0.0.1")
