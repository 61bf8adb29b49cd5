"""Kafka requests that confluent-kafka's AdminClient does not offer (DescribeClientQuotas,
AlterClientQuotas), sent through kafka-python's KafkaAdminClient: its request classes
come from Kafka's JSON message definitions, and it negotiates versions, TLS and SASL
(PLAIN, SCRAM) itself. A request goes to the least-loaded broker, as the admin client's
own calls without a coordinator or controller do.

`--command-config` is read as the other client commands read it (`client_config`, whose
librdkafka names are mapped here to kafka-python's); a connection that does not come up
within CONNECT_TIMEOUT_S is named in one line with the last failure kafka-python logged.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

from contextplane.cli.kafka_client import (
    ADMIN_TIMEOUT_S,
    CONNECT_TIMEOUT_S,
    NEEDS_SECURITY,
    BrokerUnreachable,
    CommandError,
    ConfigError,
    config_from_arguments,
)

# librdkafka settings (as client_config writes them) and kafka-python's name for each.
_KAFKA_PYTHON_NAMES = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "client.id": "client_id",
}
# kafka-python logs in with these given a user name and password; OAUTHBEARER needs a
# token provider object and GSSAPI a Kerberos library, which no properties file gives.
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_MAX_FAILURES_KEPT = 100


class ConnectionLog(logging.Handler):
    """kafka-python's log lines, kept off stderr (its logger no longer propagates), with
    the connection failures kept to say why the cluster did not answer."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        # "Bootstrap failed:" is the timeout itself, not a reason.
        if (
            "failed:" in text
            and not text.startswith("Bootstrap failed")
            and len(self.failures) < _MAX_FAILURES_KEPT
        ):
            reason = text.rsplit("failed:", 1)[1].strip()
            self.failures.append(re.sub(r" \(backoff [^)]*\)$", "", reason))


def kafka_python_config(librdkafka: dict[str, str]) -> dict[str, Any]:
    """kafka-python's settings for the librdkafka settings `client_config` made from
    `--command-config`; ConfigError for what kafka-python cannot do from a file."""
    config: dict[str, Any] = {}
    for name, value in librdkafka.items():
        if name == "bootstrap.servers":
            config["bootstrap_servers"] = value.split(",")
        elif name == "ssl.endpoint.identification.algorithm":
            config["ssl_check_hostname"] = value.lower() == "https"
        elif name == "sasl.oauthbearer.token.endpoint.url":
            raise ConfigError(f"{name} is not supported by this command")
        elif name in _KAFKA_PYTHON_NAMES:
            config[_KAFKA_PYTHON_NAMES[name]] = value
    protocol = str(config.get("security_protocol", "PLAINTEXT")).upper()
    config["security_protocol"] = protocol
    if protocol.startswith("SASL"):
        mechanism = str(config.setdefault("sasl_mechanism", "GSSAPI")).upper()
        if mechanism not in _SASL_MECHANISMS:
            raise ConfigError(
                f"sasl.mechanism={mechanism} is not supported by this command: "
                f"one of {', '.join(_SASL_MECHANISMS)}"
            )
    return config


def connect(args: argparse.Namespace) -> Any:
    """A kafka-python KafkaAdminClient of the cluster `args` names (bootstrapped: the
    cluster answered); BrokerUnreachable naming why not within CONNECT_TIMEOUT_S."""
    return connect_with(config_from_arguments(args))


def connect_with(librdkafka: dict[str, str], request_timeout_s: float = ADMIN_TIMEOUT_S) -> Any:
    """`connect` for librdkafka settings (bootstrap included), as `client_config` makes them."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    config = kafka_python_config(librdkafka)
    log = ConnectionLog()
    kafka_logger = logging.getLogger("kafka")
    kafka_logger.addHandler(log)
    kafka_logger.propagate = False
    try:
        return KafkaAdminClient(
            **config,
            bootstrap_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
            request_timeout_ms=int(request_timeout_s * 1000),
        )
    except KafkaError as exc:
        raise BrokerUnreachable(_no_connection(config, log, exc)) from None
    except (OSError, ValueError) as exc:  # unreadable certificate or key files
        raise ConfigError(f"--command-config: {exc}") from None


def _no_connection(config: dict[str, Any], log: ConnectionLog, exc: Exception) -> str:
    servers = ",".join(config["bootstrap_servers"])
    failures = log.failures
    if failures and all("ECONNREFUSED" in failure for failure in failures):
        return f"cannot connect to {servers}: connection refused (is a broker running there?)"
    authentication = [f for f in failures if "AuthenticationFailed" in f]
    if authentication:
        # kafka-python's text repeats the class name: `[Error 58] SaslAuthentica...: ...`.
        reason = re.sub(r"^(\[Error \d+\] )?(\w+Error: )*", "", authentication[-1])
        return f"authentication failed: SASL_AUTHENTICATION_FAILED ({reason})"
    seen = f": {failures[-1]}" if failures else f": {exc}"
    plaintext = config["security_protocol"] == "PLAINTEXT"
    hint = f"; {NEEDS_SECURITY}" if plaintext else ""
    return f"no answer from {servers} within {CONNECT_TIMEOUT_S:.0f} s{seen}{hint}"


def send(admin: Any, request: Any, what: str) -> Any:
    """`request`'s response from the least-loaded broker; CommandError naming `what` if
    it could not be sent or was not answered within ADMIN_TIMEOUT_S."""
    from kafka.errors import KafkaError

    async def exchange() -> Any:
        # The manager picks the least-loaded node when none is given; its connection
        # fails the future after request_timeout_ms.
        return await admin._manager.send(request)

    try:
        return admin._manager.run(exchange)
    except KafkaError as exc:
        raise CommandError(f"{what}: {error_text(type(exc), str(exc))}") from None


def error_text(error: Any, message: str | None) -> str:
    """Kafka's error name and the broker's message (else the error's description), as
    `kafka_client.kafka_error_text` writes librdkafka's: `INVALID_REQUEST (...)`."""
    name = getattr(error, "message", None) or error.__name__
    return f"{name} ({message or getattr(error, 'description', '') or name})"


def response_error(code: int, message: str | None, what: str) -> None:
    """CommandError naming `what` and Kafka's error when `code` is not NONE."""
    import kafka.errors as errors

    if code:
        raise CommandError(f"{what}: {error_text(errors.for_code(code), message)}")
