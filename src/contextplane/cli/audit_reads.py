"""`contextplane audit reads`: who received offset O of topic T, when, through which group.

A Kafka client (confluent-kafka) reads the internal topic `__contextplane_read_receipts`
from the broker, like Kafka's own tools: `--bootstrap-server`, and `--command-config`
with the client's security properties in Kafka's format (mapped to librdkafka's names by
`client_config`). The principal running it needs READ on that topic (and DESCRIBE).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contextplane.clock import SystemClock
from contextplane.logsafe import escape
from contextplane.properties_file import parse_properties
from contextplane.security import jaas

RECEIPTS_TOPIC = "__contextplane_read_receipts"
# A broker that answers at all answers Metadata within this; past it the tool says why
# it could not connect rather than wait for the whole --timeout.
CONNECT_TIMEOUT_S = 10.0
# Offset ranges the table shows per receipt (a receipt has at most 64).
RANGES_SHOWN = 8
COLUMNS = ("TIME", "PRINCIPAL", "CLIENT_ID", "GROUP", "CLIENT_ADDRESS", "PARTITION", "OFFSETS")
_NEEDS_SECURITY = (
    "the listener likely needs security settings: give --command-config with its "
    "security.protocol (and SASL or TLS properties)"
)

# librdkafka's own log lines (`%3|...|FAIL|...`) would follow the table on stderr: they go
# to this logger at debug level instead (shown with logging configured to DEBUG).
_librdkafka_log = logging.getLogger("contextplane.audit.librdkafka")


class _DebugLog:
    """confluent-kafka's `logger`: every librdkafka line, whatever its level, at debug;
    the disconnections are kept to explain a failed connection."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def log(self, level: int, message: str, *args: object) -> None:
        _librdkafka_log.debug(message, *args)
        text = message % args if args else message
        if "Disconnected" in text and len(self.failures) < 100:
            self.failures.append(text)


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


class ConfigError(ValueError):
    """A command-line value or client property this tool cannot use."""


def client_config(properties: dict[str, str]) -> dict[str, str]:
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
                raise ConfigError(f"sasl.jaas.config: {exc}") from None
            mechanism = properties.get("sasl.mechanism", "GSSAPI")
            module = jaas.MODULES.get(mechanism)
            if module is not None and entry.module != module:
                raise ConfigError(
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
                raise ConfigError(f"{name}={value}: only PEM files can be used")
        elif name.startswith(("ssl.", "sasl.")):
            raise ConfigError(f"{name} is not supported by this tool")
        # other client properties (timeouts, retries) do not apply to one read
    return config


def parse_since(text: str) -> int:
    """Milliseconds since the epoch from an ISO 8601 time (UTC unless it says) or ms."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--since {text!r}: not an ISO 8601 time or milliseconds") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def _time_ms(text: str) -> int:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def read_receipts(
    config: dict[str, Any], since_ms: int | None, timeout_s: float
) -> Iterator[dict[str, Any]]:
    """Every receipt in the topic (from `since_ms`, if given) up to its end when asked."""
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    refused: list[Any] = []
    transport: list[Any] = []

    def on_error(error: Any) -> None:
        # librdkafka retries a failed login until the timeout and then reports only a
        # transport failure: keep the authentication error to name it instead.
        if error.code() == KafkaError._AUTHENTICATION:
            refused.append(error)
        elif error.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            transport.append(error)

    log = _DebugLog()
    consumer = Consumer(
        config
        | {
            "group.id": f"contextplane-audit-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "error_cb": on_error,
            "logger": log,
        }
    )
    try:
        clock = SystemClock()
        connect_s = min(timeout_s, CONNECT_TIMEOUT_S)
        deadline_ms = clock.monotonic_ms() + connect_s * 1000
        while True:
            try:
                metadata = consumer.list_topics(RECEIPTS_TOPIC, timeout=1.0)
                break
            except KafkaException:
                consumer.poll(0)  # serves error_cb
                if refused:
                    raise ConfigError(f"authentication failed: {refused[0].str()}") from None
                unsecured = _unsecured_to_secured(config, log.failures)
                if unsecured is not None:
                    raise ConfigError(unsecured) from None
                if clock.monotonic_ms() >= deadline_ms:
                    raise ConfigError(_no_connection(config, transport, connect_s)) from None
        topic = metadata.topics.get(RECEIPTS_TOPIC)
        if topic is None or topic.error is not None:
            raise ConfigError(f"cannot read {RECEIPTS_TOPIC}: {topic.error if topic else 'absent'}")
        partitions = [TopicPartition(RECEIPTS_TOPIC, p) for p in sorted(topic.partitions)]
        if since_ms is not None:
            wanted = [TopicPartition(RECEIPTS_TOPIC, p.partition, since_ms) for p in partitions]
            partitions = consumer.offsets_for_times(wanted, timeout=timeout_s)
        else:
            for p in partitions:
                p.offset = OFFSET_BEGINNING
        ends: dict[int, int] = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(p, timeout=timeout_s)
            ends[p.partition] = high
        live = [p for p in partitions if ends[p.partition] > 0 and p.offset != -1]
        consumer.assign(live)
        pending = {p.partition for p in live}
        while pending:
            message = consumer.poll(timeout_s)
            if message is None:
                raise ConfigError(f"no answer from the broker within {timeout_s:.0f} s")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise KafkaException(error)
            partition, offset, value = message.partition(), message.offset(), message.value()
            if partition is None or offset is None or value is None:
                continue
            if offset >= ends[partition] - 1:
                pending.discard(partition)
            event = json.loads(value)
            yield event["data"] | {"time": event["time"], "id": event["id"]}
    finally:
        consumer.close()


def _plaintext(config: dict[str, Any]) -> bool:
    return str(config.get("security.protocol", "PLAINTEXT")).upper() == "PLAINTEXT"


def _unsecured_to_secured(config: dict[str, Any], failures: list[str]) -> str | None:
    """The message for a plaintext client whose connection the broker closed during the
    first request, ApiVersions (what a TLS listener does with plaintext Kafka), else None."""
    if not _plaintext(config):
        return None
    for text in failures:
        # librdkafka: "Disconnected: connection closed by peer: ... in state
        # APIVERSION_QUERY", or "... might be caused by incorrect security.protocol ..."
        if "APIVERSION_QUERY" in text or "security.protocol" in text:
            return (
                f"{config['bootstrap.servers']} closed the connection during the handshake: "
                f"{_NEEDS_SECURITY}"
            )
    return None


def _no_connection(config: dict[str, Any], transport: list[Any], waited_s: float) -> str:
    seen = f": {transport[0].str()}" if transport else ""
    refused = any("Connection refused" in error.str() for error in transport)
    hint = f"; {_NEEDS_SECURITY}" if _plaintext(config) and not refused else ""
    return f"no answer from {config['bootstrap.servers']} within {waited_s:.0f} s{seen}{hint}"


def matches(receipt: dict[str, Any], args: argparse.Namespace, since_ms: int | None) -> bool:
    if receipt.get("topic") != args.topic:
        return False
    if args.partition is not None and receipt.get("partition") != args.partition:
        return False
    if args.offset is not None and not received(receipt, args.offset):
        return False
    if args.principal is not None and receipt.get("principal") != args.principal:
        return False
    return since_ms is None or _time_ms(receipt["last_fetch_time"]) >= since_ms


def received(receipt: dict[str, Any], offset: int) -> bool:
    """Does the receipt name `offset`? (For a coarse one: may it have been received.)"""
    ranges = receipt.get("ranges") or [[receipt["first_offset"], receipt["last_offset"]]]
    return any(first <= offset <= last for first, last in ranges)


def offsets_cell(receipt: dict[str, Any]) -> str:
    """`0-9,100-120`: the ranges received (the first RANGES_SHOWN, then how many more;
    `--output json` has them all), `(coarse)` after a receipt whose ranges were merged
    past the broker's bound, which may name offsets in the merged gaps not received."""
    ranges = receipt.get("ranges") or [[receipt["first_offset"], receipt["last_offset"]]]
    text = ",".join(f"{first}-{last}" for first, last in ranges[:RANGES_SHOWN])
    if len(ranges) > RANGES_SHOWN:
        text += f",...(+{len(ranges) - RANGES_SHOWN})"
    return text + ("(coarse)" if receipt.get("coarse") else "")


def add_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="read the security audit from a running broker")
    what = audit.add_subparsers(dest="audit_command", required=True)
    reads = what.add_parser("reads", help="who received which offsets (read receipts)")
    reads.add_argument("--bootstrap-server", required=True, help="host:port of the broker")
    reads.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )
    reads.add_argument("--topic", required=True)
    reads.add_argument("--partition", type=int)
    reads.add_argument("--offset", type=int, help="only receipts that include this offset")
    reads.add_argument("--principal", help="e.g. User:alice")
    reads.add_argument("--since", help="ISO 8601 time (UTC unless given) or epoch ms")
    reads.add_argument("--output", choices=("table", "json"), default="table")
    reads.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for answers")


def run(args: argparse.Namespace) -> int:
    try:
        properties = (
            parse_properties(args.command_config.read_text()) if args.command_config else {}
        )
        config = client_config(properties) | {"bootstrap.servers": args.bootstrap_server}
        since_ms = parse_since(args.since) if args.since else None
        found = [
            r for r in read_receipts(config, since_ms, args.timeout) if matches(r, args, since_ms)
        ]
    except (ConfigError, OSError) as exc:
        print(f"contextplane audit reads: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a Kafka error, reported as the tools do
        print(f"contextplane audit reads: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        for receipt in found:
            print(json.dumps(receipt, sort_keys=True))
        return 0
    for line in table([row(r) for r in found]):
        print(line)
    return 0


def row(receipt: dict[str, Any]) -> tuple[str, ...]:
    """A receipt's cells. Client ids and group ids are the audited client's choice:
    escaped, a tab or a newline in one cannot forge a row, nor a terminal escape act."""
    cells = (
        receipt["last_fetch_time"],
        receipt["principal"],
        receipt["client_id"],
        receipt["group"] or "-",
        receipt["client_address"],
        receipt["partition"],
        offsets_cell(receipt),
    )
    return tuple(escape(cell) for cell in cells)


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """The header and rows in aligned columns, two spaces apart (as Kafka's tools print
    theirs); `--output json` is the format for programs."""
    lines = [COLUMNS, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
