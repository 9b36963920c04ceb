"""Kafka client security: the credentials every hub client connects with.

Every setting comes from the environment::

    HUB_SECURITY_PROTOCOL=SASL_SSL        # PLAINTEXT (default), SASL_PLAINTEXT, SASL_SSL, SSL
    HUB_SASL_MECHANISM=SCRAM-SHA-512      # or SCRAM-SHA-256, PLAIN
    HUB_SASL_USERNAME=analysts            # the principal User:analysts
    HUB_SASL_PASSWORD=...
    HUB_SSL_CAFILE=/etc/hub/ca.pem        # the cluster's CA, for SSL and SASL_SSL

An analyst's `hub subscribe` then reads as ``User:analysts``, which the
agreement's ``readers`` section allows onto the aggregate topics only
(``hub.ops.acls`` derives those ACLs; docs/architecture.md, invariant 7).
"""

from __future__ import annotations

from typing import Any

from hub.errors import ConfigError
from hub.settings import HubSettings


def client_security(settings: HubSettings) -> dict[str, Any]:
    """kafka-python client options for the configured protocol and credentials."""
    protocol = settings.security_protocol
    config: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        if not settings.sasl_username or settings.sasl_password is None:
            raise ConfigError(
                f"HUB_SECURITY_PROTOCOL={protocol} needs HUB_SASL_USERNAME and"
                " HUB_SASL_PASSWORD (the principal's credentials)"
            )
        config.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.get_secret_value(),
        )
    if protocol.endswith("SSL") and settings.ssl_cafile is not None:
        config["ssl_cafile"] = str(settings.ssl_cafile)
    return config


def principal(settings: HubSettings) -> str:
    """Who the clients authenticate as, for messages."""
    if settings.security_protocol.startswith("SASL") and settings.sasl_username:
        return f"User:{settings.sasl_username}"
    return "the unauthenticated (ANONYMOUS) principal"
