"""Kafka client properties (Kafka's names, as `--command-config` files and
`contextplane.internal.client.config` give them) mapped to librdkafka's: the security
protocol, SASL with a JAAS line (PLAIN, SCRAM, OAUTHBEARER's endpoint) and PEM files."""

from __future__ import annotations

from pathlib import Path

from contextplane.properties_file import parse_properties, read_properties_text
from contextplane.security import jaas


class ClientPropertyError(ValueError):
    """A client property that cannot be used (the message names it)."""


# Kafka client properties and the librdkafka name each becomes.
_SAME = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
        "client.id",
        "sasl.oauthbearer.token.endpoint.url",
    }
)


def librdkafka_config(properties: dict[str, str]) -> dict[str, str]:
    """librdkafka settings for Kafka client security properties (PEM files only: the
    Java key stores are not readable by librdkafka)."""
    config: dict[str, str] = {}
    for name, value in properties.items():
        if name in _SAME:
            if name == "ssl.endpoint.identification.algorithm" and not value:
                value = "none"
            config[name] = value
        elif name == "sasl.jaas.config":
            # As strict as Kafka's own tools: the broker's JAAS parser, and the login
            # module the mechanism needs.
            try:
                entry = jaas.parse(value)
            except jaas.JaasError as exc:
                raise ClientPropertyError(f"sasl.jaas.config: {exc}") from None
            mechanism = properties.get("sasl.mechanism", "GSSAPI")
            module = jaas.MODULES.get(mechanism)
            if module is not None and entry.module != module:
                raise ClientPropertyError(
                    f"sasl.jaas.config: sasl.mechanism={mechanism} needs the login module "
                    f"{module}, not {entry.module}"
                )
            if "username" in entry.options:
                config["sasl.username"] = entry.options["username"]
            if "password" in entry.options:
                config["sasl.password"] = entry.options["password"]
        elif name == "ssl.truststore.location":
            config["ssl.ca.location"] = value
        elif name == "ssl.keystore.location":
            # A PEM key store holds the private key and the certificate chain.
            config["ssl.certificate.location"] = value
            config["ssl.key.location"] = value
        elif name in ("ssl.truststore.type", "ssl.keystore.type"):
            if value.upper() != "PEM":
                raise ClientPropertyError(f"{name}={value}: only PEM files can be used")
        elif name.startswith(("ssl.", "sasl.")):
            raise ClientPropertyError(f"{name} is not supported by this tool")
        # other client properties (timeouts, retries) do not apply to one command
    return config


def read_client_properties(path: str) -> dict[str, str]:
    """librdkafka settings from a Kafka client properties file."""
    try:
        text = read_properties_text(Path(path).expanduser())
    except OSError as exc:
        raise ClientPropertyError(f"{path}: {exc.strerror or exc}") from None
    try:
        properties = parse_properties(text)
    except ValueError as exc:
        raise ClientPropertyError(f"{path}: {exc}") from None
    return librdkafka_config(properties)
