"""Hub settings: built once in the entry point and passed down, never read at import.

Every field can be set from the environment with the ``HUB_`` prefix, for
example ``HUB_BOOTSTRAP`` or ``HUB_BROKER_PORT``. A ``HUB_`` variable that is neither
a field nor one of ``READ_ELSEWHERE`` is reported by `unknown_variables` (the `hub`
command warns about it: most likely a typo).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub import resources


def case_topic_name(agency: str) -> str:
    """An agency's case topic before the namespace: ``cases.<agency id>``. The agreement
    requires every partner's ``topic`` to be this name (`hub.agreement.model`)."""
    return f"cases.{agency}"


#: The trends topic before the namespace: the topic the hub reads published trends from.
TRENDS_TOPIC = "partnership.trends.v1"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "online-risk-hub"


#: HUB_ variables that are read on purpose outside `HubSettings`, and by what.
READ_ELSEWHERE: dict[str, str] = {
    "HUB_TEST_PG_BIN": "the test suite: the PostgreSQL server binaries (tests/support/postgres.py)",
}


class HubSettings(BaseSettings):
    """Everything the hub's commands need to know about where things are."""

    model_config = SettingsConfigDict(env_prefix="HUB_", frozen=True, extra="ignore")

    log_level: str = Field(
        default="INFO",
        pattern=r"(?i)^(debug|info|warning|error|critical)$",
        description="HUB_LOG_LEVEL: the level of what every `hub` command logs to stderr"
        " (DEBUG, INFO, WARNING, ERROR, CRITICAL; any case).",
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="HUB_LOG_FORMAT: text (a line of time, level, logger and message), or"
        " json (one JSON object per line: time in ISO 8601 UTC, level, logger, message, and"
        " exception when there is one), for a container's log collector.",
    )

    # --- the local development broker (hub broker ...) -----------------------
    broker_cache: Path = Field(
        default_factory=_default_cache,
        description="HUB_BROKER_CACHE: where Kafka's jars, its Maven repository and,"
        " unless HUB_BROKER_DATA is set, its data live. Outside the repository.",
    )
    broker_data: Path | None = Field(
        default=None,
        description="HUB_BROKER_DATA: the broker's state directory (KRaft metadata, logs, pid)."
        " Defaults to <cache>/broker.",
    )
    broker_host: str = "127.0.0.1"
    broker_port: int = Field(default=9092, description="HUB_BROKER_PORT: client listener.")
    controller_port: int = Field(default=9093, description="HUB_CONTROLLER_PORT: KRaft quorum.")
    broker_heap: str = Field(default="512m", description="HUB_BROKER_HEAP: JVM -Xmx.")
    broker_sasl_port: int | None = Field(
        default=None,
        description="HUB_BROKER_SASL_PORT: also listen for SASL_PLAINTEXT (SCRAM-SHA-512) here"
        " and enforce ACLs there; the plain listener stays a super user for the hub's own"
        " services on this machine. Off by default.",
    )
    broker_start_timeout: float = 90.0
    kafka_pom: Path = resources.deploy("kafka", "pom.xml")
    # The local broker's own security (hub/ops/broker/launcher.py, hub/ops/tls.py).
    broker_security: Literal["plaintext", "sasl_ssl"] = Field(
        default="plaintext",
        description="HUB_BROKER_SECURITY: plaintext (development), or sasl_ssl: the broker's"
        " only client listener, on HUB_BROKER_PORT, is SASL_SSL (SCRAM-SHA-512 over TLS) with"
        " ACLs enforced, and HUB_BROKER_OPERATOR is its only super user.",
    )
    broker_tls_dir: Path | None = Field(
        default=None,
        description="HUB_BROKER_TLS_DIR: with sasl_ssl, the CA (ca.pem) and the broker's key"
        " and certificate chain (broker.pem), as `hub security ca` and `hub security cert`"
        " write them; made there when absent. Defaults to <broker state>/tls.",
    )
    broker_operator: str = Field(
        default="hub-operator",
        description="HUB_BROKER_OPERATOR: with sasl_ssl, the super user (User:<name>) the"
        " broker talks to itself as and the operator logs in as.",
    )
    broker_operator_password: SecretStr | None = Field(
        default=None,
        description="HUB_BROKER_OPERATOR_PASSWORD: the operator's SCRAM password; required"
        " with sasl_ssl, stored in the broker's metadata when its storage is first formatted.",
    )

    # --- clients ---------------------------------------------------------------
    bootstrap: str | None = Field(
        default=None,
        description="HUB_BOOTSTRAP: Kafka bootstrap servers; defaults to the local broker.",
    )
    topic_namespace: str = Field(
        default="",
        description="HUB_TOPIC_NAMESPACE: prefix for every topic and consumer group, so"
        " several hubs (or tests) can share one broker.",
    )
    case_partitions: int = Field(
        default=6,
        description="HUB_CASE_PARTITIONS: partitions of every case topic (one per partner in"
        " the agreement). All share it so one worker sees every event of a child.",
    )
    replication_factor: int = Field(
        default=1,
        description="HUB_REPLICATION_FACTOR: 1 is for the single-node development broker only.",
    )

    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT",
        description="HUB_SECURITY_PROTOCOL: how clients reach Kafka; SASL_SSL in production"
        " (see hub/kafka/security.py).",
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="HUB_SASL_MECHANISM: with a SASL protocol."
    )
    sasl_username: str | None = Field(
        default=None,
        description="HUB_SASL_USERNAME: the principal (User:<name>) the agreement grants to,"
        " e.g. analysts for `hub subscribe`.",
    )
    sasl_password: SecretStr | None = Field(
        default=None, description="HUB_SASL_PASSWORD: that principal's password."
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="HUB_SSL_CAFILE: the cluster's CA bundle (SSL, SASL_SSL); without it, the"
        " system's trusted CAs.",
    )
    ssl_certfile: Path | None = Field(
        default=None,
        description="HUB_SSL_CERTFILE: this client's certificate (PEM), for brokers that ask"
        " for one (SSL, SASL_SSL); may hold the private key too.",
    )
    ssl_keyfile: Path | None = Field(
        default=None,
        description="HUB_SSL_KEYFILE: the private key (PEM, unencrypted) of HUB_SSL_CERTFILE,"
        " when it is not in that file.",
    )

    publisher: Literal["kafka-python", "confluent"] = Field(
        default="kafka-python",
        description="HUB_PUBLISHER: kafka-python (default) or confluent (install extra"
        " `confluent`, librdkafka, much faster).",
    )
    outbox: Path = Field(
        default=Path("outbox.sqlite"),
        description="HUB_OUTBOX: the adapter's store-and-forward database.",
    )
    publish_timeout: float = Field(
        default=30.0,
        gt=0,
        description="HUB_PUBLISH_TIMEOUT: seconds Kafka has to acknowledge a batch from the"
        " outbox before the adapter takes it as unavailable (the events stay in the outbox).",
    )
    forwarder_backoff: float = Field(
        default=1.0,
        ge=0,
        description="HUB_FORWARDER_BACKOFF: seconds the outbox forwarder waits before its"
        " first retry after Kafka or the outbox failed; doubled on each failure in a row.",
    )
    forwarder_backoff_max: float = Field(
        default=30.0,
        ge=0,
        description="HUB_FORWARDER_BACKOFF_MAX: the longest wait between the forwarder's retries.",
    )
    forwarder_stale_after: float = Field(
        default=30.0,
        ge=0,
        description="HUB_FORWARDER_STALE_AFTER: seconds an event may wait in the outbox while"
        " the forwarder is not sending (Kafka unreachable, an outbox error) before the push"
        " endpoint's /health answers 503 and hub_adapter_forwarder_stalled turns 1.",
    )
    withdrawal_limit: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="HUB_WITHDRAWAL_LIMIT: the largest share of an agency's live records one"
        " full export may withdraw by no longer listing them; above it the withdrawals wait"
        " for `hub adapter run --accept-withdrawals`.",
    )

    # --- the adapter's HTTP push endpoint (hub adapter run --serve) ------------
    push_tls_certfile: Path | None = Field(
        default=None,
        description="HUB_PUSH_TLS_CERTFILE: the push endpoint's certificate chain (PEM); with"
        " HUB_PUSH_TLS_KEYFILE it serves HTTPS only (TLS 1.2 or later), without both plain"
        " HTTP (with a warning at start). One without the other is an error.",
    )
    push_tls_keyfile: Path | None = Field(
        default=None,
        description="HUB_PUSH_TLS_KEYFILE: the private key (PEM, unencrypted) of"
        " HUB_PUSH_TLS_CERTFILE.",
    )
    push_max_connections: int = Field(
        default=64,
        ge=1,
        description="HUB_PUSH_MAX_CONNECTIONS: connections the push endpoint keeps open at"
        " once; further clients wait in the listen backlog, and when it is full the"
        " connection that has waited longest for its request is closed to make room.",
    )
    push_read_timeout: float = Field(
        default=10.0,
        gt=0,
        description="HUB_PUSH_READ_TIMEOUT: seconds a push client has to send a request's"
        " headers (from connecting, or from the previous answer), and then its body;"
        " a slower one is disconnected (408).",
    )
    push_max_body: int = Field(
        default=5 * 1024 * 1024,
        ge=1,
        description="HUB_PUSH_MAX_BODY: the largest request body the push endpoint accepts,"
        " in bytes (a larger one is answered 413, unread).",
    )

    # --- pseudonymisation (agency side) --------------------------------------
    key_file: Path | None = Field(
        default=None, description="HUB_KEY_FILE: the partnership key file (hub keys new)."
    )
    key_passphrase: SecretStr | None = Field(
        default=None, description="HUB_KEY_PASSPHRASE: opens an encrypted key file."
    )
    age_bands: str = Field(
        default="0-4,5-7,8-10,11-13,14-15,16-17,18-25",
        description="HUB_AGE_BANDS: inclusive age bands, comma-separated.",
    )
    area_lookup: Path | None = Field(
        default=None,
        description="HUB_AREA_LOOKUP: the partnership's CSV of postcode,area; without it, or"
        " for a postcode it lacks, the postcode sector is used.",
    )

    # --- the data-sharing agreement ---------------------------------------------
    agreement: Path = Field(
        default=resources.deploy("agreement", "example.yaml"),
        description="HUB_AGREEMENT: the data-sharing agreement (partners and their case"
        " topics, deadlines, publication timetable and topics, disclosure rule, retention)."
        " Check it with `hub agreement check`.",
    )

    # --- stream worker ---------------------------------------------------------
    schemas_dir: Path = Field(
        default_factory=resources.schemas,
        description="HUB_SCHEMAS_DIR: the Avro schemas the stream worker reads with"
        " (<name>/v<N>.avsc); defaults to the ones shipped with this version of the hub.",
    )
    app_id: str = Field(default="online-risk-hub", description="HUB_APP_ID: Faust app id.")
    store: str = Field(
        default="rocksdb://",
        description="HUB_STORE: the worker's Faust table store: rocksdb:// (on disk, under"
        " HUB_WORKER_DATA), or memory:// (nothing on disk: development only).",
    )
    worker_data: Path = Field(
        default=Path(".hub-worker"), description="HUB_WORKER_DATA: Faust's local state."
    )
    session_timeout: float = Field(
        default=30.0,
        description="HUB_SESSION_TIMEOUT: seconds before the group gives a dead worker's"
        " partitions to another.",
    )
    changelog_snapshot_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description="HUB_CHANGELOG_SNAPSHOT_BYTES: a stream worker writes a snapshot of a"
        " partition's records to the record-versions changelog, and deletes the batches it"
        " covers, once the batches written since the last snapshot reach this many bytes or"
        " the size of that snapshot, whichever is larger; the changelog then holds at most"
        " about twice each partition's current records.",
    )
    worker_instance_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="HUB_WORKER_INSTANCE_ID: a stream worker's static member id in its"
        " consumer group, one per worker, the same across its restarts (a container or pod"
        " name). A worker restarted under it takes its partitions back at once, without a"
        " rebalance; one that does not come back has its partitions moved after"
        " HUB_SESSION_TIMEOUT. Unset: a restart waits for the session timeout.",
    )
    worker_stall_after: float = Field(
        default=30.0,
        gt=0,
        description="HUB_WORKER_STALL_AFTER: seconds a stream worker may read nothing while"
        " its partitions have events waiting before its watchdog resumes them; after as"
        " long again it asks its group to rebalance, then exits (status 4) to be restarted.",
    )
    shutdown_timeout: float = Field(
        default=30.0,
        gt=0,
        description="HUB_SHUTDOWN_TIMEOUT: seconds a stream worker may take to stop cleanly"
        " after SIGTERM or Ctrl-C before it exits anyway (Kafka gone: its flush would wait"
        " forever); what it had not acknowledged is re-read at the next start.",
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, description="HUB_METRICS_PORT: /metrics port.")
    prometheus_port: int = Field(
        default=9090, description="HUB_PROMETHEUS_PORT: the demo's Prometheus (web UI and API)."
    )
    history_months: int = Field(
        default=24,
        ge=0,
        description="HUB_HISTORY_MONTHS: how far back before the latest closed period the"
        " publisher releases never-released periods that hold records (a hub started on an"
        " existing event log), and how many months of trend history it serves as metrics.",
    )
    publisher_metrics_port: int = Field(
        default=9465,
        description="HUB_PUBLISHER_METRICS_PORT: the publisher's /metrics (published trends).",
    )
    adapter_metrics_port: int = Field(
        default=9466,
        description="HUB_ADAPTER_METRICS_PORT: the adapter's /metrics (rows read, rejected,"
        " sent) in the long-running modes: run --watch or --serve, drain --follow.",
    )

    def to_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment from which a `hub` subprocess builds these same settings."""
        source = os.environ if base is None else base
        env = {k: v for k, v in source.items() if not k.startswith("HUB_")}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"HUB_{name.upper()}"] = str(value)
        return env

    @property
    def passphrase(self) -> str | None:
        return self.key_passphrase.get_secret_value() if self.key_passphrase else None

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"{self.broker_host}:{self.broker_port}"

    @property
    def broker_state(self) -> Path:
        return self.broker_data or self.broker_cache / "broker"

    def topic(self, name: str) -> str:
        """The full name of a hub topic, with the namespace prefix."""
        return f"{self.topic_namespace}{name}"

    def case_topic(self, agency: str) -> str:
        """The full name of `agency`'s case topic: the topic the agreement gives the
        partner (`case_topic_name`), with the namespace prefix."""
        return self.topic(case_topic_name(agency))

    @property
    def deferred_topic(self) -> str:
        """Case events written with a schema the worker does not ship yet (a newer one),
        kept until `hub streams replay-deferred` sends them back (streams/deferred.py)."""
        return self.topic("deferred.cases")

    @property
    def publish_requests_topic(self) -> str:
        """Forced releases asked of the running publisher service, and its answers
        (`hub publish --now`; streams/publish/requests.py)."""
        return self.topic("publish.requests")

    @property
    def staged_releases_topic(self) -> str:
        """Releases of two-person publications waiting for approval, and what became of
        them (`hub release`; streams/publish/approval.py). Compacted, keyed by release."""
        return self.topic("partnership.releases.staged.v1")

    @property
    def trends_topic(self) -> str:
        """The topic the hub reads published trends from (`hub subscribe` by default, the
        board pack, the publisher's own read-back), so the publisher requires every
        publication in the agreement to name it."""
        return self.topic(TRENDS_TOPIC)

    @property
    def worker_app_id(self) -> str:
        return f"{self.topic_namespace}{self.app_id}"


def variable_names() -> list[str]:
    """Every HUB_ variable a hub process reads: the settings' and ``READ_ELSEWHERE``."""
    fields = [f"HUB_{name.upper()}" for name in HubSettings.model_fields]
    return sorted({*fields, *READ_ELSEWHERE})


def unknown_variables(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The HUB_ variables of `environ` (os.environ) that nothing reads, each with the
    nearest known name, or None when none is close (a misspelt setting, most likely)."""
    source = os.environ if environ is None else environ
    known = variable_names()
    unknown: dict[str, str | None] = {}
    for name in sorted(source):
        if name.upper().startswith("HUB_") and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.8)
            unknown[name] = close[0] if close else None
    return unknown
