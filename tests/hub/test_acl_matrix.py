"""Every principal against every resource, on a broker that enforces the agreement's ACLs.

A broker of the module's own has SASL_SSL as its only client listener and the operator
as its only super user. The operator creates the topics, stores a password for every
principal the agreement names (and for a stranger it does not name) and applies the
ACLs. Then each principal, logged in with its own password, tries every operation on
every resource (`Prober`), and the set of what the broker allowed must be exactly what
docs/security.md says each principal may do: `expected`, written out here from those
rules, not taken from `hub.ops.acls`.

The hub's own commands, when the broker refuses them, say why in one ``error:`` line:
no credentials, a wrong password, a CA the broker's certificate is not from, a partner
writing another partner's topic, an analyst reading a case topic.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    TransactionalIdNotFoundError,
    for_code,
)

from adapters.outbox import Outbox, OutboxItem
from hub.agreement.model import Agreement
from hub.ops.broker import Broker
from hub.ops.tls import CA_CERT, create_ca
from hub.settings import HubSettings
from tests.support.agreements import TEST_PARTNERS, agreement_of, write_agreement
from tests.support.processes import settings_env
from tests.support.secured import (
    agreement_principals,
    as_operator,
    as_principal,
    kafka_options,
    new_password,
    scram_user,
    secured_broker,
    set_up_partnership,
)

#: A principal with a password and no ACL at all.
STRANGER = "User:matrix-stranger"
#: How long an allowed read, join or send may take before it counts as refused.
WITHIN = 10.0
#: The same for joining a group (coordinator, join, sync, then a read): slower on a loaded
#: machine; a refused join fails at once, so only allowed ones can take this long.
JOIN_WITHIN = 30.0


@dataclass(frozen=True)
class Secured:
    """The module's broker, as its operator set it up: topics, passwords, ACLs."""

    broker: Broker
    operator: HubSettings
    agreement: Agreement
    #: Every principal that logs in (the agreement's, the stranger, the operator).
    principals: tuple[str, ...]
    passwords: dict[str, str]  # principal -> password

    @property
    def operator_principal(self) -> str:
        return f"User:{self.broker.settings.broker_operator}"

    def login(self, principal: str) -> HubSettings:
        """Settings that log in as `principal` with its own password."""
        return as_principal(self.broker, scram_user(principal), self.passwords[principal])


@pytest.fixture(scope="module")
def secured(
    broker_settings: HubSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("acl-matrix")
    base = broker_settings.model_copy(
        update={
            "topic_namespace": "acl.",
            "agreement": write_agreement(tmp / "agreement.yaml", TEST_PARTNERS),
            "case_partitions": 2,
        }
    )
    operator_password = new_password()
    broker = secured_broker(base, tmp / "broker", operator_password)
    broker.start(quiet=True)
    try:
        operator = as_operator(broker)
        agreement = agreement_of(operator)
        passwords = set_up_partnership(broker, [STRANGER])
        operator_principal = f"User:{broker.settings.broker_operator}"
        named = agreement_principals(agreement, operator_principal)
        yield Secured(
            broker=broker,
            operator=operator,
            agreement=agreement,
            principals=(*named, STRANGER, operator_principal),
            passwords=passwords,
        )
    finally:
        broker.stop()


# --- what docs/security.md says ---------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """Operations allowed on a resource of `kind` named `name`, or (`prefixed`) on every
    one whose name starts with `name`."""

    kind: str  # "topic", "group" or "transactional-id"
    name: str
    operations: frozenset[str]
    prefixed: bool = False

    def covers(self, kind: str, name: str) -> bool:
        matches = name.startswith(self.name) if self.prefixed else name == self.name
        return kind == self.kind and matches


def rule(kind: str, name: str, *operations: str, prefixed: bool = False) -> Rule:
    return Rule(kind, name, frozenset(operations), prefixed)


def documented_rules(settings: HubSettings, agreement: Agreement) -> dict[str, list[Rule]]:
    """The table of docs/security.md ("The ACLs"), for this agreement: principal -> rules."""
    app = settings.worker_app_id
    cases = [settings.topic(partner.topic) for partner in agreement.partners]
    publications = {settings.trends_topic, *map(settings.topic, agreement.publication_topics)}
    audit = settings.topic("partnership.audit.v1")
    rules: dict[str, list[Rule]] = {}
    for partner in agreement.partners:
        # Each partner: WRITE, DESCRIBE on its own case topic, and on the audit topic.
        rules.setdefault(partner.principal, []).extend(
            [
                rule("topic", settings.topic(partner.topic), "WRITE", "DESCRIBE"),
                rule("topic", audit, "WRITE", "DESCRIBE"),
            ]
        )
    workers = rules.setdefault(agreement.services.workers.principal, [])
    workers += [rule("topic", topic, "READ", "DESCRIBE") for topic in cases]
    workers += [
        rule("group", app, "READ"),
        rule("group", f"{app}-deferred-replay", "DESCRIBE"),
        rule("topic", settings.deferred_topic, "WRITE", "DESCRIBE"),
        rule("topic", f"{app}-", "CREATE", "READ", "WRITE", "DESCRIBE", prefixed=True),
    ]
    publisher = rules.setdefault(agreement.services.publisher.principal, [])
    publisher.append(rule("topic", f"{app}-record-versions-changelog", "READ", "DESCRIBE"))
    publisher += [rule("topic", topic, "DESCRIBE") for topic in cases]
    publisher += [rule("topic", topic, "READ", "WRITE", "DESCRIBE") for topic in publications]
    publisher.append(
        rule("transactional-id", f"{app}-publisher-", "WRITE", "DESCRIBE", prefixed=True)
    )
    publisher.append(rule("topic", audit, "WRITE", "DESCRIBE"))
    for reader in agreement.readers:
        rules.setdefault(reader.principal, []).extend(
            rule("topic", settings.topic(topic), "READ", "DESCRIBE") for topic in reader.topics
        )
    for auditor in agreement.audit.readers:
        rules.setdefault(auditor, []).append(rule("topic", audit, "READ", "DESCRIBE"))
    return rules


#: Kafka's authorizer (StandardAuthorizer, as AclAuthorizer before it) lets a principal
#: DESCRIBE a resource it may READ, WRITE, DELETE or ALTER, with no DESCRIBE rule of its own.
IMPLY_DESCRIBE = frozenset({"READ", "WRITE", "DELETE", "ALTER"})


def may(rules: list[Rule], operation: str, kind: str, name: str) -> bool:
    """Whether `rules` let a principal do `operation` on a resource, as Kafka decides."""
    granted: set[str] = set()
    for each in rules:
        if each.covers(kind, name):
            granted |= each.operations
    if operation == "DESCRIBE" and granted & IMPLY_DESCRIBE:
        return True  # implied, see IMPLY_DESCRIBE
    return operation in granted or "ALL" in granted


@dataclass(frozen=True, order=True)
class Resource:
    """What a probe acts on: an existing topic, a topic to create (named `name` followed
    by the principal's user name), a consumer group or a transactional id."""

    kind: str  # "topic", "new topic", "group", "transactional-id"
    name: str

    def named_for(self, user: str) -> str:
        return self.name + user if self.kind == "new topic" else self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.name}{'<user>' if self.kind == 'new topic' else ''}"


#: What each kind of resource is tried with. A group's "consume" joins the group on the
#: first case topic, reads it and commits the offsets; a transactional id's "transact"
#: initialises a transactional producer with it.
OPERATIONS = {
    "topic": ("produce", "consume", "describe", "create"),
    "new topic": ("create",),
    "group": ("consume", "describe"),
    "transactional-id": ("transact", "describe"),
}
#: The ACL operation each probe of a topic needs.
TOPIC_NEEDS = {"produce": "WRITE", "consume": "READ", "describe": "DESCRIBE", "create": "CREATE"}


def expected(
    s: Secured, rules: dict[str, list[Rule]], principal: str, operation: str, resource: Resource
) -> bool:
    """Whether the documented ACLs let `principal` do `operation` on `resource`."""
    if principal == s.operator_principal:
        return True  # super.users=User:<operator>: everything, whatever the ACLs
    own = rules.get(principal, [])
    name = resource.named_for(scram_user(principal))
    if resource.kind in ("topic", "new topic"):
        # An idempotent producer needs no more than WRITE on the topic (Kafka 2.8+, KIP-679),
        # and a CREATE rule on a topic's name lets a principal create it.
        return may(own, TOPIC_NEEDS[operation], "topic", name)
    if resource.kind == "group":
        if operation == "consume":
            # A group's member reads the topic and commits its offsets: READ on both.
            return may(own, "READ", "group", name) and may(own, "READ", "topic", consumed(s))
        return may(own, "DESCRIBE", "group", name)
    needed = "WRITE" if operation == "transact" else "DESCRIBE"
    return may(own, needed, "transactional-id", name)


def consumed(s: Secured) -> str:
    """The topic a group's probe consumes: the first partner's case topic."""
    return s.operator.topic(s.agreement.partners[0].topic)


def changelog(settings: HubSettings) -> str:
    return f"{settings.worker_app_id}-record-versions-changelog"


def resources(s: Secured) -> list[Resource]:
    settings = s.operator
    app = settings.worker_app_id
    topics = [settings.topic(topic) for topic in s.agreement.case_topics]
    topics += [settings.deferred_topic, settings.trends_topic, changelog(settings)]
    topics.append(settings.topic("partnership.audit.v1"))
    topics.append(f"{app}-__assignor-__leader")  # another of the workers' own topics
    return [
        *(Resource("topic", topic) for topic in topics),
        Resource("new topic", f"{app}-matrix-"),  # under the workers' prefix
        Resource("new topic", settings.topic("matrix-")),  # under nobody's
        Resource("group", app),
        Resource("group", f"{app}-deferred-replay"),
        Resource("group", settings.topic("matrix-group")),
        Resource("transactional-id", f"{app}-publisher-matrix"),
        Resource("transactional-id", settings.topic("matrix-transactions")),
    ]


# --- what the broker does -----------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    allowed: bool
    detail: str  # what happened: "sent", an error's name, ...


def refused(exc: Exception) -> Outcome:
    """A refusal, named by the authorization error it carries when it carries one."""
    found = re.search(r"\w+AuthorizationFailedError", f"{type(exc).__name__} {exc}")
    return Outcome(False, found.group(0) if found else f"{type(exc).__name__}: {exc}")


class Prober:
    """One principal trying things, with one client of each kind reused across resources.

    A producer or consumer that was refused is replaced: a refused produce request leaves
    kafka-python's idempotent producer failing every later send. A group's member and a
    transactional producer are made for their group or id."""

    def __init__(self, settings: HubSettings, user: str, consumed: str) -> None:
        self.user = user
        self.consumed = consumed
        self.options = kafka_options(settings)
        self.admin = KafkaAdminClient(
            client_id=f"matrix-{user}", request_timeout_ms=5000, **self.options
        )
        self._producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None

    def close(self) -> None:
        self._drop_producer()
        self._drop_consumer()
        self.admin.close()

    def probe(self, operation: str, resource: Resource) -> Outcome:
        name = resource.named_for(self.user)
        try:
            if resource.kind == "group":
                return self.join(name) if operation == "consume" else self.group_offsets(name)
            if resource.kind == "transactional-id":
                return self.transact(name) if operation == "transact" else self.transaction(name)
            if operation == "produce":
                return self.produce(name)
            if operation == "consume":
                return self.consume(name)
            if operation == "describe":
                return self.describe(name)
            return self.create(name, validate_only=resource.kind == "topic")
        except KafkaError as exc:
            return refused(exc)

    def produce(self, topic: str) -> Outcome:
        if self._producer is None:
            self._producer = KafkaProducer(
                client_id=f"matrix-{self.user}",
                acks="all",
                enable_idempotence=True,  # as the adapters' and the publisher's producers
                request_timeout_ms=5000,
                max_block_ms=5000,
                **self.options,
            )
        try:
            self._producer.send(topic, key=b"matrix", value=self.user.encode()).get(WITHIN)
        except KafkaError as exc:
            self._drop_producer()
            return refused(exc)
        return Outcome(True, "sent")

    def consume(self, topic: str) -> Outcome:
        """Read the record the operator wrote to partition 0, from the beginning."""
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                client_id=f"matrix-{self.user}",
                group_id=None,
                enable_auto_commit=False,
                request_timeout_ms=5000,
                **self.options,
            )
        consumer = self._consumer
        try:
            if not consumer.partitions_for_topic(topic):
                # The topic exists: the broker answered its metadata request with
                # TOPIC_AUTHORIZATION_FAILED, which kafka-python reports as no partitions.
                return Outcome(False, "metadata refused (no partitions)")
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            deadline = time.monotonic() + WITHIN
            while time.monotonic() < deadline:
                if consumer.poll(timeout_ms=200).get(partition):
                    return Outcome(True, "read")
        except KafkaError as exc:
            self._drop_consumer()
            return refused(exc)
        self._drop_consumer()
        return Outcome(False, f"nothing read within {WITHIN:.0f} s")

    def describe(self, topic: str) -> Outcome:
        (described,) = self.admin.describe_topics([topic])
        code = int(described["error_code"])
        return Outcome(code == 0, "described" if code == 0 else for_code(code).__name__)

    def create(self, topic: str, validate_only: bool) -> Outcome:
        """Create `topic`; for one that exists, only ask whether it may be created: the
        broker checks CREATE before it answers that the topic exists."""
        try:
            self.admin.create_topics([NewTopic(topic, 1, 1)], validate_only=validate_only)
        except TopicAlreadyExistsError:
            return Outcome(True, "may create (it exists)")
        return Outcome(True, "may create" if validate_only else "created")

    def join(self, group: str) -> Outcome:
        member = KafkaConsumer(
            client_id=f"matrix-{self.user}",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            request_timeout_ms=7000,
            **self.options,
        )
        try:
            member.subscribe([self.consumed])
            rewound = False
            deadline = time.monotonic() + JOIN_WITHIN
            while time.monotonic() < deadline:
                records = member.poll(timeout_ms=200)
                if rewound and records:
                    member.commit()
                    return Outcome(True, "joined, read, committed")
                if not rewound and member.assignment():
                    member.seek_to_beginning(*member.assignment())
                    rewound = True
            return Outcome(False, f"not joined and read within {JOIN_WITHIN:.0f} s")
        finally:
            member.close()

    def group_offsets(self, group: str) -> Outcome:
        self.admin.list_group_offsets(group)
        return Outcome(True, "offsets fetched")

    def transact(self, transactional_id: str) -> Outcome:
        producer = KafkaProducer(
            client_id=f"matrix-{self.user}",
            transactional_id=transactional_id,
            request_timeout_ms=5000,
            max_block_ms=5000,
            **self.options,
        )
        try:
            producer.init_transactions()
        finally:
            producer.close(timeout=5)
        return Outcome(True, "initialised")

    def transaction(self, transactional_id: str) -> Outcome:
        try:
            self.admin.describe_transactions([transactional_id])
        except TransactionalIdNotFoundError:
            # Answered after the DESCRIBE check: this principal may look it up.
            return Outcome(True, "described (none yet)")
        return Outcome(True, "described")

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=0)

    def _drop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()


Cell = tuple[str, str, Resource]  # (principal, operation, resource)


def seed(s: Secured) -> None:
    """As the operator: create the workers' own topics (as Faust would) and write one
    record to partition 0 of every topic, for the reads to find."""
    admin = KafkaAdminClient(client_id="matrix-seed", **kafka_options(s.operator))
    try:
        admin.create_topics(
            [
                NewTopic(changelog(s.operator), 1, 1),
                NewTopic(f"{s.operator.worker_app_id}-__assignor-__leader", 1, 1),
            ]
        )
    finally:
        admin.close()
    producer = KafkaProducer(acks="all", **kafka_options(s.operator))
    try:
        for resource in resources(s):
            if resource.kind == "topic":
                producer.send(resource.name, key=b"seed", value=b"seed", partition=0).get(30)
    finally:
        producer.close()


def render(
    s: Secured, cells: Iterable[Cell], observed: dict[Cell, Outcome], wanted: set[Cell]
) -> str:
    """The matrix (+ allowed, . refused, ! where it differs from the documented ACLs),
    then each difference with what happened."""
    users = [scram_user(p) for p in s.principals]
    width = max(len(u) for u in users)
    rows: dict[tuple[Resource, str], dict[str, str]] = {}
    differences = []
    for cell in cells:
        principal, operation, resource = cell
        outcome = observed[cell]
        mark = "+" if outcome.allowed else "."
        if outcome.allowed != (cell in wanted):
            mark += "!"
            want = "allowed" if cell in wanted else "refused"
            differences.append(
                f"  {principal} {operation} {resource}: {outcome.detail} (documented: {want})"
            )
        rows.setdefault((resource, operation), {})[principal] = mark
    label = max(len(f"{r} {o}") for r, o in rows)
    lines = [" " * label + " " + " ".join(u.rjust(width) for u in users)]
    for (resource, operation), marks in rows.items():
        row = " ".join(marks[p].rjust(width) for p in s.principals)
        lines.append(f"{f'{resource} {operation}':<{label}} {row}")
    return "\n".join([*lines, f"{len(differences)} differences:", *differences])


def test_every_principal_may_do_exactly_what_the_documented_acls_allow(secured: Secured) -> None:
    s = secured
    seed(s)
    rules = documented_rules(s.operator, s.agreement)
    cells: list[Cell] = []
    observed: dict[Cell, Outcome] = {}
    for principal in s.principals:
        prober = Prober(s.login(principal), scram_user(principal), consumed(s))
        try:
            for resource in resources(s):
                for operation in OPERATIONS[resource.kind]:
                    cell = (principal, operation, resource)
                    cells.append(cell)
                    observed[cell] = prober.probe(operation, resource)
        finally:
            prober.close()
    wanted = {cell for cell in cells if expected(s, rules, *cell)}
    allowed = {cell for cell in cells if observed[cell].allowed}
    assert allowed == wanted, render(s, cells, observed, wanted)
    # Every refusal is the broker's explicit answer, none a client that gave up waiting.
    vague = [
        f"{c[0]} {c[1]} {c[2]}: {observed[c].detail}" for c in cells if not explicit(observed[c])
    ]
    assert not vague, "\n".join(vague)


def explicit(outcome: Outcome) -> bool:
    return (
        outcome.allowed
        or outcome.detail.endswith("AuthorizationFailedError")
        or (outcome.detail.startswith("metadata refused"))
    )


# --- the hub's own commands, refused ---------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A `hub` command run with `settings`, which must fail with one ``error:`` line
    containing every one of `says`, and without `secret` anywhere in its output."""

    what: str
    args: tuple[str, ...]
    settings: HubSettings
    says: tuple[str, ...]
    secret: str | None = None


def outbox_with(path: Path, topic: str) -> Path:
    """An adapter's outbox holding one event for `topic`."""
    outbox = Outbox(path)
    try:
        outbox.put([OutboxItem(f"event-for-{topic}", topic, b"key", b"value")])
    finally:
        outbox.close()
    return path


def assert_refused_with_reasons(*refusals: Refusal) -> None:
    """Runs the commands side by side (each waits for its client to give up)."""
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "hub.cli", *refusal.args],
            env=settings_env(refusal.settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for refusal in refusals
    ]
    outputs = []
    try:
        for process in running:
            outputs.append(process.communicate(timeout=180))
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.communicate()
    problems = []
    for refusal, process, (out, err) in zip(refusals, running, outputs, strict=True):
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        said = errors[0] if len(errors) == 1 else None
        if (
            process.returncode != 1
            or "Traceback" in err
            or said is None
            or not all(part in said for part in refusal.says)
            or (refusal.secret is not None and refusal.secret in out + err)
        ):
            problems.append(
                f"{refusal.what} (`hub {' '.join(refusal.args)}`): exit {process.returncode},"
                f" wanted one error line with {refusal.says}; stderr:\n{err[-3000:]}"
            )
    assert not problems, "\n\n".join(problems)


def test_a_client_the_broker_does_not_let_in_is_told_why(secured: Secured, tmp_path: Path) -> None:
    s = secured
    other_ca = create_ca(tmp_path / "other-ca")
    assert other_ca != s.broker.tls_dir / CA_CERT
    case_topic = consumed(s)
    commands = {
        # Each command as the principal that runs it.
        ("subscribe",): s.agreement.readers[0].principal,
        ("topics", "apply"): s.operator_principal,
        ("adapter", "drain", "--timeout", "5"): s.agreement.partners[0].principal,
    }
    refusals = []
    for args, principal in commands.items():
        user = scram_user(principal)
        settings = s.login(principal).model_copy(
            update={"outbox": outbox_with(tmp_path / f"{args[0]}.sqlite", case_topic)}
        )
        wrong = new_password()
        refusals += [
            Refusal(
                "no credentials, no TLS",
                args,
                settings.model_copy(
                    update={
                        "security_protocol": "PLAINTEXT",
                        "sasl_username": None,
                        "sasl_password": None,
                        "ssl_cafile": None,
                    }
                ),
                ("speaks TLS", "HUB_SECURITY_PROTOCOL=PLAINTEXT"),
            ),
            Refusal(
                "a wrong password",
                args,
                as_principal(s.broker, user, wrong).model_copy(update={"outbox": settings.outbox}),
                (f"refused the credentials of {principal}", "HUB_SASL_PASSWORD"),
                secret=wrong,
            ),
            Refusal(
                "trusting another CA",
                args,
                settings.model_copy(update={"ssl_cafile": other_ca}),
                ("TLS certificate", "failed verification", f"HUB_SSL_CAFILE={other_ca}"),
                secret=s.passwords[principal],
            ),
        ]
    assert_refused_with_reasons(*refusals)


def test_a_principal_refused_a_topic_is_told_which(secured: Secured, tmp_path: Path) -> None:
    s = secured
    first, second = s.agreement.partners[:2]
    analysts = s.agreement.readers[0].principal
    own, others = (s.operator.topic(p.topic) for p in (first, second))
    adapter = s.login(first.principal)

    # Its own topic, the control: the same adapter, outbox and broker get in.
    sent = subprocess.run(
        [sys.executable, "-m", "hub.cli", "adapter", "drain", "--timeout", "30"],
        env=settings_env(
            adapter.model_copy(update={"outbox": outbox_with(tmp_path / "own.sqlite", own)})
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr[-3000:]
    assert "1 events sent" in sent.stdout

    assert_refused_with_reasons(
        Refusal(
            "a partner writing another partner's topic",
            ("adapter", "drain", "--timeout", "5"),
            adapter.model_copy(update={"outbox": outbox_with(tmp_path / "other.sqlite", others)}),
            (f"{first.principal} may not write {others}", "hub security acls --apply"),
        ),
        Refusal(
            "an analyst reading a case topic",
            ("subscribe", own),
            s.login(analysts),
            (f"{analysts} may not read {own}",),
        ),
        Refusal(
            "a partner applying the hub's topics",
            ("topics", "apply"),
            adapter,
            (f"{first.principal} may not create or configure topic", "as the operator"),
        ),
    )
