"""A broker whose only client listener is SASL_SSL (HUB_BROKER_SECURITY=sasl_ssl), and
the settings and kafka-python options of the principals that log in to it."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from hub.kafka.security import client_config
from hub.ops.broker import Broker
from hub.ops.tls import CA_CERT
from hub.settings import HubSettings
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
