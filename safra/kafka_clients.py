"""The one place Kafka clients get their connection settings: the brokers and Safra's
credentials (SASL/PLAIN, ``SAFRA_KAFKA_USERNAME`` / ``SAFRA_KAFKA_PASSWORD``), for
confluent-kafka (:func:`client_config`) and for Spark's Kafka source (:func:`spark_options`).

Without a password the clients connect in plaintext, without authentication (a cluster that
does not ask for it); the local stack's broker always asks for it.
"""

from __future__ import annotations

from typing import Any

from safra.settings import Settings

MECHANISM = "PLAIN"
LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


def security_protocol(s: Settings) -> str:
    """``SASL_PLAINTEXT`` when Safra has a Kafka password, else ``PLAINTEXT``."""
    return "SASL_PLAINTEXT" if s.kafka_password.get_secret_value() else "PLAINTEXT"


def client_config(s: Settings, **extra: Any) -> dict[str, Any]:
    """confluent-kafka's configuration: brokers and credentials, then ``extra``."""
    config: dict[str, Any] = {
        "bootstrap.servers": s.kafka_bootstrap,
        "security.protocol": security_protocol(s),
    }
    password = s.kafka_password.get_secret_value()
    if password:
        config |= {
            "sasl.mechanism": MECHANISM,
            "sasl.username": s.kafka_username,
            "sasl.password": password,
        }
    return config | extra


def jaas_config(username: str, password: str) -> str:
    """A JAAS line of the PLAIN login module (Java clients and the broker's own identity)."""
    return (
        f'{LOGIN_MODULE} required username="{_escaped(username)}" password="{_escaped(password)}";'
    )


def _escaped(value: str) -> str:
    """``value`` inside a JAAS double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def user_property(username: str, password: str) -> str:
    """The broker side of the PLAIN login module: the one user it accepts."""
    return f'user_{username}="{_escaped(password)}"'


def spark_options(s: Settings) -> dict[str, str]:
    """Spark's Kafka source options: brokers and credentials (``kafka.``-prefixed Java client
    settings). Given to ``readStream.options(...)``, never to the session's configuration:
    those travel on the Spark driver's command line."""
    options = {
        "kafka.bootstrap.servers": s.kafka_bootstrap,
        "kafka.security.protocol": security_protocol(s),
    }
    password = s.kafka_password.get_secret_value()
    if password:
        options |= {
            "kafka.sasl.mechanism": MECHANISM,
            "kafka.sasl.jaas.config": jaas_config(s.kafka_username, password),
        }
    return options
