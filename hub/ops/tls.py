"""TLS material for the partnership's Kafka: a CA, and the broker and client certificates
it signs.

The files, all PEM:

``<dir>/ca.pem``
    The CA certificate. Every broker and client trusts it: Kafka loads it with
    ``ssl.truststore.type=PEM`` and ``ssl.truststore.location``, kafka-python with
    ``ssl_cafile`` (HUB_SSL_CAFILE).
``<dir>/ca.key``
    The CA's private key. Only `issue_certificate` needs it; keep it off the brokers.
``<dir>/<name>.pem``
    One certificate's private key, then its certificate, then the CA certificate: the
    broker's keystore (``ssl.keystore.type=PEM`` and ``ssl.keystore.location``, no
    password), or a client's ``ssl_certfile``.

Private keys are PKCS#8 and NOT encrypted: whoever can read a key file can act as its
owner. They are written readable by their owner only (0600), and the directory that holds
them must be protected as well (owned by the service account, mode 0700). No file is ever
overwritten: a name that is taken is an error naming the file.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub.errors import ConfigError

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
#: The name of the local broker's certificate in its TLS directory (`broker_tls`).
BROKER_NAME = "broker"
#: The host names a broker certificate covers unless told otherwise.
BROKER_HOSTS = ("127.0.0.1", "localhost")

CA_DAYS = 3650
CERT_DAYS = 825

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$)(\*\.)?{_LABEL}(\.{_LABEL})*")
_PUBLIC = 0o644
_PRIVATE = 0o600


@dataclass(frozen=True)
class BrokerTls:
    """What a broker's SSL listener loads: its keystore and the CA it trusts."""

    keystore: Path
    truststore: Path


def certificate_path(directory: Path, name: str) -> Path:
    """Where `issue_certificate` writes `name`'s key and certificate chain."""
    return directory / f"{name}.pem"


def create_ca(out: Path, common_name: str = "online-risk-hub partnership CA") -> Path:
    """Write a new self-signed CA (ca.pem, and ca.key 0600) into `out`; returns ca.pem."""
    _require_absent(out / CA_CERT, out / CA_KEY)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_all(
        [
            (out / CA_CERT, _pem(cert), _PUBLIC),
            (out / CA_KEY, _key_pem(key), _PRIVATE),
        ]
    )
    return out / CA_CERT


def issue_certificate(
    ca_dir: Path, name: str, out: Path, hosts: Sequence[str] = (), *, server: bool = False
) -> Path:
    """Write `<out>/<name>.pem` (0600): a new private key, a certificate for CN=`name`
    signed by the CA in `ca_dir`, and the CA certificate. A `server` certificate (a broker)
    names `hosts` as its subjectAltName (BROKER_HOSTS when none are given) and serves TLS as
    well as connecting with it; any other is a client certificate. Returns the file."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"certificate name {name!r} is not usable: letters, digits, '.', '_' and '-'"
            " only, starting with a letter or digit (it becomes the file name and the CN)"
        )
    names = list(hosts) or (list(BROKER_HOSTS) if server else [])
    alt_names = [_alt_name(host) for host in dict.fromkeys(names)]
    target = certificate_path(out, name)
    _require_absent(target)
    ca_cert, ca_key = load_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if alt_names or server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), CERT_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_all([(target, _key_pem(key) + _pem(cert) + _pem(ca_cert), _PRIVATE)])
    return target


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key in `ca_dir`, or a ConfigError saying what is missing."""
    if not (ca_dir / CA_CERT).exists():
        raise ConfigError(
            f"{ca_dir} holds no CA certificate ({CA_CERT}): `hub security ca --out DIR` makes a CA"
        )
    cert = read_certificates(ca_dir / CA_CERT)[0]
    key_file = ca_dir / CA_KEY
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(
            f"{key_file} does not exist: signing needs the CA's key"
            " (`hub security ca --out DIR` makes a CA)"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{key_file} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ConfigError(f"{key_file} is not the key of the CA certificate {ca_dir / CA_CERT}")
    return cert, key


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in the PEM file `path` (at least one), or a ConfigError."""
    try:
        found = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} holds no readable PEM certificate: {exc}") from None
    return found


def hosts_of(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses `cert` is valid for (its subjectAltName)."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    ips = [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    return [*alt.get_values_for_type(x509.DNSName), *ips]


def is_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether the CA certificate `ca` issued and signed `cert`."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def broker_tls(directory: Path, host: str) -> BrokerTls:
    """The local broker's keystore and truststore in `directory`, made there when absent.

    Without ca.pem and broker.pem a new CA and a broker certificate for `host` (and
    BROKER_HOSTS) are written; with ca.pem and ca.key but no broker.pem, the broker
    certificate is issued by that CA. Existing files are checked, never replaced."""
    ca_file = directory / CA_CERT
    keystore = certificate_path(directory, BROKER_NAME)
    if not ca_file.exists() and not keystore.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        create_ca(directory)
    if not ca_file.exists():
        raise ConfigError(
            f"{directory} holds {keystore.name} but not {CA_CERT}, the CA that signed it:"
            f" copy the CA certificate to {ca_file}"
        )
    if not keystore.exists():
        if not (directory / CA_KEY).exists():
            raise ConfigError(
                f"{directory} holds no {keystore.name}, and no {CA_KEY} to issue one: run"
                f" `hub security cert --ca CA_DIR --name {BROKER_NAME} --out {directory}"
                f" --host {host}` with the directory that holds the CA's key"
            )
        issue_certificate(directory, BROKER_NAME, directory, [host, *BROKER_HOSTS], server=True)
    chain = read_certificates(keystore)
    ca = read_certificates(ca_file)[0]
    if not is_signed_by(chain[0], ca):
        raise ConfigError(f"the certificate in {keystore} is not signed by the CA in {ca_file}")
    if host not in hosts_of(chain[0]):
        raise ConfigError(
            f"the certificate in {keystore} is not valid for {host} (it names"
            f" {', '.join(hosts_of(chain[0])) or 'no host'}): move it away and issue one with"
            f" `hub security cert --ca CA_DIR --name {BROKER_NAME} --out {directory}"
            f" --host {host}`"
        )
    return BrokerTls(keystore=keystore, truststore=ca_file)


# --- building and writing -------------------------------------------------------
def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # A little slack for clocks that are slightly behind.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST.fullmatch(host):
        raise ConfigError(f"{host!r} is neither an IP address nor a host name")
    return x509.DNSName(host.lower())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _require_absent(*paths: Path) -> None:
    for path in paths:
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path} exists; TLS files are never overwritten")


def _write_all(files: Iterable[tuple[Path, bytes, int]]) -> None:
    """Create every file with its mode, none of which may exist; all or none are left."""
    written: list[Path] = []
    try:
        for path, content, mode in files:
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileExistsError:
                raise ConfigError(f"{path} exists; TLS files are never overwritten") from None
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
            written.append(path)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)  # whatever the umask
                handle.write(content)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
