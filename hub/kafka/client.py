"""Small helpers around kafka-python shared by the CLI, adapters and tests."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    RetriableError,
    SaslAuthenticationFailedError,
)

from hub.errors import BrokerError, HubError
from hub.kafka.security import PLAINTEXT, ClientConfig, client_config
from hub.settings import HubSettings

_UNREACHABLE = (RetriableError, OSError)


def min_insync(replication: int) -> str:
    """A topic's ``min.insync.replicas`` for its replication factor: two when there are
    three or more replicas (one broker may be down), one below that. Every topic the hub
    declares has it, and the workers' changelog, which Faust creates."""
    return str(max(1, min(2, replication - 1)))


def accepts_connections(bootstrap: str, timeout: float) -> bool:
    """Whether anything at `bootstrap` accepts a TCP connection within `timeout`: a check
    to make before building a kafka-python client, which leaks a socket per refused
    connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def broker_answers(bootstrap: str, timeout: float, config: ClientConfig = PLAINTEXT) -> bool:
    """True when a broker at `bootstrap` answers a metadata request within `timeout`, to
    a client connecting with `config` (default: a plain listener)."""
    # A plain TCP check first: kafka-python leaks a socket per refused connection.
    if not accepts_connections(bootstrap, timeout):
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
            **config.kafka_python(),
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


def admin_client(settings: HubSettings, client_id: str) -> KafkaAdminClient:
    """An admin client with the hub's client configuration, or a BrokerError that says
    how to start the local broker."""
    bootstrap = settings.bootstrap_servers
    config = client_config(settings)
    with bootstrap_watch() as watch:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id=client_id, **config.kafka_python()
            )
        except KafkaError as exc:
            problem = connection_problem(bootstrap, config, watch)
            raise BrokerError(
                problem
                or f"cannot reach Kafka at {bootstrap} ({exc}); is it running?"
                " `hub broker start` starts the local one, HUB_BOOTSTRAP points elsewhere."
            ) from exc


class BootstrapWatch(logging.Handler):
    """Notes what kafka-python logs (and retries) while a client bootstraps, so that a
    wrong password is reported as such, not as a timeout: the authentication failure
    itself, or the broker closing a connection before the client was in.

    kafka-python drops a response that arrives together with the end of the connection,
    and a broker answers a refused password just so (after a delay, then it closes):
    often only the closed connection is seen."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failure: SaslAuthenticationFailedError | None = None
        #: A connection the broker closed while the client was connecting (logging in).
        self.closed_while_connecting = False

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, SaslAuthenticationFailedError):
                self.failure = arg
            elif (
                isinstance(arg, KafkaConnectionError)
                and record.msg == _BOOTSTRAP_CONNECTION_FAILED
                and "disconnected" in str(arg)
            ):
                self.closed_while_connecting = True


#: What kafka-python logs when a bootstrap connection fails before it is established.
_BOOTSTRAP_CONNECTION_FAILED = "Bootstrap connection to %s failed: %s (backoff %.2f secs)"


@contextlib.contextmanager
def bootstrap_watch() -> Iterator[BootstrapWatch]:
    """Watches what kafka-python logs while a client is built in the block, for
    `connection_problem`."""
    watch = BootstrapWatch()
    kafka_log = logging.getLogger("kafka")
    kafka_log.addHandler(watch)
    try:
        yield watch
    finally:
        kafka_log.removeHandler(watch)


def connection_problem(
    bootstrap: str, config: ClientConfig, watch: BootstrapWatch, timeout: float = 5.0
) -> str | None:
    """Why a client with `config` could not bootstrap from `bootstrap`, when it is the
    client's configuration that keeps it out: its credentials refused (as `watch` saw),
    a broker certificate it does not trust, or a listener that speaks TLS to a client
    that does not. None when it is none of these (nothing answers, or too slowly)."""

    def refused(why: object) -> str:
        return (
            f"Kafka at {bootstrap} refused the credentials of User:{config.username} ({why});"
            " check HUB_SASL_USERNAME, HUB_SASL_PASSWORD and HUB_SASL_MECHANISM"
        )

    if watch.failure is not None:
        return refused(watch.failure)
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout)
        except (OSError, ValueError):
            continue
        with sock:
            problem = _tls_problem(sock, host, server.strip(), config)
        if problem is None and config.sasl and watch.closed_while_connecting:
            # Through TLS (if any), a broker closes a SASL client's connection before it is
            # in only when it refuses the credentials.
            return refused("it closed the connection while checking them")
        return problem
    return None


def _tls_problem(sock: socket.socket, host: str, server: str, config: ClientConfig) -> str | None:
    """What a TLS handshake on `sock` (connected to `server`) shows is wrong with `config`."""
    context = config.ssl_context()
    if context is None:
        # A client without TLS: does the listener speak TLS? Any certificate will do here.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            context.wrap_socket(sock, server_hostname=host).close()
        except OSError:  # ssl.SSLError included: not a TLS listener
            return None
        return (
            f"Kafka at {server} speaks TLS, and HUB_SECURITY_PROTOCOL={config.protocol} does"
            " not: set HUB_SECURITY_PROTOCOL=SASL_SSL (or SSL), with HUB_SSL_CAFILE naming"
            " the cluster's CA and, for SASL_SSL, HUB_SASL_USERNAME and HUB_SASL_PASSWORD"
        )
    try:
        context.wrap_socket(sock, server_hostname=host).close()
    except ssl.SSLCertVerificationError as exc:
        trusted = (
            f"HUB_SSL_CAFILE={config.cafile}"
            if config.cafile is not None
            else "the system's trusted CAs (HUB_SSL_CAFILE is not set)"
        )
        return (
            f"the TLS certificate of Kafka at {server} failed verification against"
            f" {trusted} ({exc.verify_message}): set HUB_SSL_CAFILE to the CA that signed"
            " the cluster's certificates"
        )
    except ssl.SSLError as exc:
        return (
            f"the TLS handshake with Kafka at {server} failed ({exc.reason or exc}):"
            f" does its listener take HUB_SECURITY_PROTOCOL={config.protocol}?"
        )
    except OSError:
        return None
    return None


_NOT_AUTHORISED = 29  # TOPIC_AUTHORIZATION_FAILED


def _topic_error(bootstrap: str, topic: str, config: ClientConfig) -> int:
    """The broker's error code for `topic` as this client sees it (0: none)."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="hub-probe", **config.kafka_python()
    )
    try:
        (described,) = admin.describe_topics([topic])
        return int(described.get("error_code", 0))
    finally:
        admin.close()


class TopicReader:
    """Every partition of one topic, read from its beginning, without a consumer group,
    with the hub's client configuration; `options` are further KafkaConsumer options.

    Raises `missing` (an error naming what to do) when the topic does not exist, and
    `refused` (if given) when the broker does not let this principal describe it.
    """

    def __init__(
        self,
        settings: HubSettings,
        topic: str,
        client_id: str,
        missing: HubError,
        refused: HubError | None = None,
        **options: Any,
    ) -> None:
        self.topic = topic
        bootstrap = settings.bootstrap_servers
        config = client_config(settings)
        # With credentials, a bootstrap that timed out before the broker's answer to them
        # (a loaded broker is slow to check a SCRAM password) is tried once more, so a
        # wrong password is reported as such rather than as an unreachable broker.
        attempts = 2 if config.sasl else 1
        with bootstrap_watch() as watch:
            for attempt in range(attempts):
                try:
                    self._consumer = KafkaConsumer(
                        bootstrap_servers=bootstrap,
                        client_id=client_id,
                        enable_auto_commit=False,
                        **options,
                        **config.kafka_python(),
                    )
                    break
                except KafkaError as exc:
                    problem = connection_problem(bootstrap, config, watch)
                    if problem is not None:
                        raise BrokerError(problem) from exc
                    if attempt + 1 == attempts:
                        raise BrokerError(
                            f"cannot reach Kafka at {bootstrap} ({exc}); is HUB_BOOTSTRAP right?"
                        ) from exc
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            self._consumer.close()
            if refused is not None and _topic_error(bootstrap, topic, config) == _NOT_AUTHORISED:
                raise refused
            raise missing
        self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def poll(self, timeout_ms: int) -> Iterator[Any]:
        """The messages one poll returns (possibly none)."""
        for messages in self._consumer.poll(timeout_ms=timeout_ms).values():
            yield from messages

    def read_to_end(self) -> Iterator[Any]:
        """Every message up to the end offsets as they are now."""
        ends = self._consumer.end_offsets(self._partitions)
        while any(self._consumer.position(tp) < ends[tp] for tp in self._partitions):
            yield from self.poll(500)

    def close(self) -> None:
        self._consumer.close()
