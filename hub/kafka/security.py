"""Kafka client configuration: how every hub client connects and authenticates.

Every setting comes from the environment::

    HUB_SECURITY_PROTOCOL=SASL_SSL        # PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL, SSL
    HUB_SASL_MECHANISM=SCRAM-SHA-512      # or SCRAM-SHA-256, PLAIN
    HUB_SASL_USERNAME=analysts            # the principal User:analysts
    HUB_SASL_PASSWORD=...
    HUB_SSL_CAFILE=/etc/hub/ca.pem        # the cluster's CA (SSL, SASL_SSL); default: system CAs
    HUB_SSL_CERTFILE=/etc/hub/client.pem  # a client certificate, when the brokers ask for one
    HUB_SSL_KEYFILE=/etc/hub/client.key   # its private key, unless it is in the certificate file

`client_config` checks them once and gives a `ClientConfig`, from which each
client library gets its own options: `ClientConfig.kafka_python` (producers,
consumers and admin clients of the CLI, the adapters, the worker's probes and the
publisher), `ClientConfig.librdkafka` (the confluent-kafka publisher) and, for
Faust, the fields themselves and `ClientConfig.ssl_context` (``streams.app`` turns
them into Faust's ``broker_credentials``). No client of the hub is built without
it (tests/hub/test_client_config.py).

The password stays a `SecretStr` until a client library is handed it: it is not
in the configuration's repr, in an error message or on a command line (a process
the hub starts inherits it through the environment), and kafka-python's debug line
listing an admin client's options shows it masked.

An analyst's `hub subscribe` reads as ``User:analysts``, which the agreement's
``readers`` section allows onto the aggregate topics only (``hub.ops.acls``
derives those ACLs; docs/architecture.md, invariant 7).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from hub.errors import ConfigError
from hub.settings import HubSettings

Protocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]

_MASK = "**********"
#: kafka-python loggers that log a client's options (with its password) at debug level.
_OPTION_LOGGERS = ("kafka.admin.client",)


@dataclass(frozen=True)
class ClientConfig:
    """The protocol, SASL credentials and TLS files every Kafka client connects with.

    Checked when built: a SASL protocol needs a username and password, and a TLS file
    that is named must exist and load. Outside SSL and SASL_SSL the TLS files are not
    used; outside the SASL protocols neither are the credentials.
    """

    protocol: Protocol = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def __post_init__(self) -> None:
        if self.sasl:
            missing = []
            if not self.username:
                missing.append("HUB_SASL_USERNAME")
            if self.password is None or not self.password.get_secret_value():
                missing.append("HUB_SASL_PASSWORD")
            if missing:
                raise ConfigError(
                    f"HUB_SECURITY_PROTOCOL={self.protocol} needs {' and '.join(missing)}"
                    " (the principal's credentials)"
                )
        if self.tls:
            self._check_tls_files()

    @property
    def sasl(self) -> bool:
        """True when the clients authenticate with SASL (SASL_PLAINTEXT, SASL_SSL)."""
        return self.protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        """True when the connections are encrypted (SSL, SASL_SSL)."""
        return self.protocol.endswith("SSL")

    def kafka_python(self) -> dict[str, Any]:
        """Options for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            _mask_in_kafka_python_logs()
            options["sasl_mechanism"] = self.mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self._secret()
        if self.tls:
            options["ssl_check_hostname"] = True
            if self.cafile is not None:
                options["ssl_cafile"] = str(self.cafile)
            if self.certfile is not None:
                options["ssl_certfile"] = str(self.certfile)
            if self.keyfile is not None:
                options["ssl_keyfile"] = str(self.keyfile)
        return options

    def librdkafka(self) -> dict[str, str]:
        """Properties for confluent-kafka (librdkafka) clients."""
        options: dict[str, str] = {"security.protocol": self.protocol}
        if self.sasl:
            options["sasl.mechanisms"] = self.mechanism
            options["sasl.username"] = self.username or ""
            options["sasl.password"] = self._secret()
        if self.tls:
            options["ssl.endpoint.identification.algorithm"] = "https"
            if self.cafile is not None:
                options["ssl.ca.location"] = str(self.cafile)
            if self.certfile is not None:
                options["ssl.certificate.location"] = str(self.certfile)
                # librdkafka reads the key from the certificate file when it holds both.
                options["ssl.key.location"] = str(self.keyfile or self.certfile)
        return options

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of clients that take one (Faust's); None without TLS.

        It verifies the brokers' certificates and host names against HUB_SSL_CAFILE, or
        the system's trusted CAs without it, and presents the client certificate if set.
        """
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(
                cafile=None if self.cafile is None else str(self.cafile)
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"HUB_SSL_CAFILE={self.cafile} is not a CA bundle in PEM ({_reason(exc)})"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certfile is not None:
            try:
                context.load_cert_chain(
                    str(self.certfile),
                    None if self.keyfile is None else str(self.keyfile),
                    password=_no_passphrase,
                )
            except (ssl.SSLError, OSError) as exc:
                key = self.keyfile or self.certfile
                raise ConfigError(
                    f"HUB_SSL_CERTFILE={self.certfile} with its key in {key} cannot be used"
                    f" ({_reason(exc)}): both must be PEM, the key unencrypted and matching"
                    " the certificate"
                ) from None
        return context

    def _secret(self) -> str:
        return "" if self.password is None else self.password.get_secret_value()

    def _check_tls_files(self) -> None:
        if self.keyfile is not None and self.certfile is None:
            raise ConfigError("HUB_SSL_KEYFILE is set without HUB_SSL_CERTFILE (its certificate)")
        for variable, path in (
            ("HUB_SSL_CAFILE", self.cafile),
            ("HUB_SSL_CERTFILE", self.certfile),
            ("HUB_SSL_KEYFILE", self.keyfile),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"{variable}={path} does not exist (or is not a file)")
        if self.cafile is not None or self.certfile is not None:
            self.ssl_context()  # every client library would fail on the same files


#: No security: what the local development broker's plain listener takes.
PLAINTEXT = ClientConfig()


def client_config(settings: HubSettings) -> ClientConfig:
    """The configuration every Kafka client of the hub connects with; a ConfigError
    naming the variables to set (or the file that is missing) when it is incomplete."""
    protocol = settings.security_protocol
    sasl = protocol.startswith("SASL")
    tls = protocol.endswith("SSL")
    return ClientConfig(
        protocol=protocol,
        mechanism=settings.sasl_mechanism,
        username=settings.sasl_username if sasl else None,
        password=settings.sasl_password if sasl else None,
        cafile=settings.ssl_cafile if tls else None,
        certfile=settings.ssl_certfile if tls else None,
        keyfile=settings.ssl_keyfile if tls else None,
    )


def principal_name(settings: HubSettings) -> str:
    """The principal the clients authenticate as, as the broker names it (``User:<name>``,
    or ``ANONYMOUS`` without SASL)."""
    if settings.security_protocol.startswith("SASL") and settings.sasl_username:
        return f"User:{settings.sasl_username}"
    return "ANONYMOUS"


def principal(settings: HubSettings) -> str:
    """Who the clients authenticate as, for messages."""
    name = principal_name(settings)
    return "the unauthenticated (ANONYMOUS) principal" if name == "ANONYMOUS" else name


def _no_passphrase() -> str:
    """Refuses an encrypted key, where OpenSSL would otherwise prompt on the terminal."""
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


class _MaskPasswords(logging.Filter):
    """Masks the password in a record whose arguments are a client's options."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):
            record.args = _masked(args)
        elif isinstance(args, tuple):
            record.args = tuple(_masked(a) if isinstance(a, Mapping) else a for a in args)
        return True


def _masked(options: Mapping[str, Any]) -> Mapping[str, Any]:
    if options.get("sasl_plain_password") is None:
        return options
    return {**options, "sasl_plain_password": _MASK}


_MASK_FILTER = _MaskPasswords()


def _mask_in_kafka_python_logs() -> None:
    for name in _OPTION_LOGGERS:
        logging.getLogger(name).addFilter(_MASK_FILTER)  # once: a filter is added only once


# Every process that builds a Kafka client imports this module first (hub.kafka.client
# does), so the mask is in place before any client logs its options.
_mask_in_kafka_python_logs()
