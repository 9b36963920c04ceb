"""A broker whose only client listener is SASL_SSL (HUB_BROKER_SECURITY=sasl_ssl), and
the settings and kafka-python options of the principals that log in to it."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from hub.agreement.model import Agreement
from hub.kafka.security import client_config
from hub.ops.acls import apply_acls, set_password
from hub.ops.broker import Broker
from hub.ops.tls import CA_CERT
from hub.ops.topics import apply_topics, declared_topics
from hub.settings import HubSettings
from tests.support.agreements import agreement_of
from tests.support.processes import free_port


def new_password() -> str:
    """A password SCRAM takes (at least 12 characters, as `set_password` wants)."""
    return secrets.token_urlsafe(18)


def scram_user(principal: str) -> str:
    """The SCRAM user a principal logs in as (``User:analysts`` -> ``analysts``)."""
    kind, _, name = principal.partition(":")
    assert kind == "User" and name, principal
    return name


def secured_broker(base: HubSettings, state: Path, operator_password: str) -> Broker:
    """A broker (not started) on free ports with its state under `state`, whose only
    client listener is SASL_SSL and whose only super user is the operator."""
    settings = base.model_copy(
        update={
            "broker_data": state,
            "broker_port": free_port(),
            "controller_port": free_port(),
            "broker_sasl_port": None,
            "broker_security": "sasl_ssl",
            "broker_tls_dir": None,
            "broker_operator_password": SecretStr(operator_password),
        }
    )
    return Broker(settings)


def as_principal(
    broker: Broker, user: str, password: str, cafile: Path | None = None
) -> HubSettings:
    """The broker's settings for a client that logs in as ``User:<user>`` over SASL_SSL,
    trusting `cafile` (default: the broker's own CA). The operator's password is not in
    them: a `hub` process started with them does not get it."""
    return broker.settings.model_copy(
        update={
            "bootstrap": broker.address,
            "security_protocol": "SASL_SSL",
            "sasl_username": user,
            "sasl_password": SecretStr(password),
            "ssl_cafile": cafile or broker.tls_dir / CA_CERT,
            "broker_operator_password": None,
        }
    )


def as_operator(broker: Broker) -> HubSettings:
    """The broker's settings for a client that logs in as its operator (the super user)."""
    s = broker.settings
    assert s.broker_operator_password is not None
    return as_principal(broker, s.broker_operator, s.broker_operator_password.get_secret_value())


def kafka_options(settings: HubSettings) -> dict[str, Any]:
    """kafka-python options (bootstrap servers included) of a client with `settings`."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        **client_config(settings).kafka_python(),
    }


def agreement_principals(agreement: Agreement, operator: str) -> list[str]:
    """Every principal the agreement names (partners, services, readers, audit readers,
    approvers), each once, the operator's left out: its password is the broker's own."""
    named = [
        *(partner.principal for partner in agreement.partners),
        agreement.services.workers.principal,
        agreement.services.publisher.principal,
        *(reader.principal for reader in agreement.readers),
        *agreement.audit.readers,
        *agreement.approval.approvers,
    ]
    return [p for p in dict.fromkeys(named) if p != operator]


def set_up_partnership(broker: Broker, extra: Iterable[str] = ()) -> dict[str, str]:
    """As an operator sets a started secured broker up for its agreement: the topics, a
    password for every principal it names and for `extra`, and the ACLs. Principal ->
    password, the operator's included."""
    operator = as_operator(broker)
    agreement = agreement_of(operator)
    apply_topics(operator, declared_topics(operator, agreement))
    operator_principal = f"User:{broker.settings.broker_operator}"
    principals = [*agreement_principals(agreement, operator_principal), *extra]
    passwords = {principal: new_password() for principal in principals}
    for principal, password in passwords.items():
        set_password(operator, scram_user(principal), password)
    apply_acls(operator, agreement)
    assert broker.settings.broker_operator_password is not None
    passwords[operator_principal] = broker.settings.broker_operator_password.get_secret_value()
    return passwords
