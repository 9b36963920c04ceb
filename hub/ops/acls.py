"""The ACLs the agreement implies, and SCRAM credentials.

`derived_acls` turns the agreement into ACLs: each partner's principal may
write (and describe) its own agency topic and nothing else; each reader may
read (and describe) the topics listed for it. `hub security acls --apply`
creates them, `hub security set-password` stores a SCRAM credential. The
hub's own services (workers, publisher) run as a super user of the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from hub.agreement.model import Agreement
from hub.errors import BrokerError, ConfigError
from hub.kafka.client import admin_client
from hub.settings import HubSettings


@dataclass(frozen=True, order=True)
class Grant:
    """One allow rule: principal may do operation on topic."""

    principal: str
    operation: str  # READ, WRITE or DESCRIBE
    topic: str

    def acl(self) -> ACL:
        return ACL(
            principal=self.principal,
            host="*",
            operation=ACLOperation[self.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType.TOPIC, self.topic, ACLResourcePatternType.LITERAL
            ),
        )


def derived_acls(agreement: Agreement, settings: HubSettings) -> list[Grant]:
    """Every allow rule the agreement implies, topic names with the hub's namespace."""
    grants: set[Grant] = set()
    for partner in agreement.partners:
        topic = settings.topic(partner.topic)
        grants.update(Grant(partner.principal, op, topic) for op in ("WRITE", "DESCRIBE"))
    for reader in agreement.readers:
        for name in reader.topics:
            topic = settings.topic(name)
            grants.update(Grant(reader.principal, op, topic) for op in ("READ", "DESCRIBE"))
    return sorted(grants)


def apply_acls(settings: HubSettings, grants: list[Grant]) -> int:
    """Create the grants on the cluster (creating an existing one is a no-op)."""
    admin = admin_client(settings.bootstrap_servers, "hub-security")
    try:
        result = admin.create_acls([grant.acl() for grant in grants])
    except KafkaError as exc:
        raise BrokerError(
            f"the cluster refused the ACLs ({exc}); run this as a super user of the"
            " cluster, against a broker with an authorizer"
        ) from exc
    finally:
        admin.close()
    if result["failed"]:
        raise BrokerError(f"the cluster refused {len(result['failed'])} ACLs: {result['failed']}")
    return len(result["succeeded"])


def set_password(settings: HubSettings, user: str, password: str) -> None:
    """Store (or replace) `user`'s SCRAM credential for the configured mechanism."""
    if len(password) < 12:
        raise ConfigError("use a password of at least 12 characters")
    mechanism = settings.sasl_mechanism
    if not mechanism.startswith("SCRAM"):
        raise ConfigError(f"HUB_SASL_MECHANISM={mechanism}: only SCRAM credentials are stored")
    admin = admin_client(settings.bootstrap_servers, "hub-security")
    try:
        errors = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, mechanism, password)]
        )
    except KafkaError as exc:
        errors = {user: str(exc)}
    finally:
        admin.close()
    if errors.get(user):
        raise BrokerError(f"the cluster refused the credential of {user}: {errors[user]}")
