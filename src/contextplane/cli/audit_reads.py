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
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from contextplane.cli import output
from contextplane.cli.kafka_client import (
    BrokerUnreachable,
    ConfigError,
    Connection,
    add_connection_arguments,
    client_config,
    config_from_arguments,
)

__all__ = ["COLUMNS", "ConfigError", "client_config", "parse_since", "table"]

RECEIPTS_TOPIC = "__contextplane_read_receipts"
# Offset ranges the table shows per receipt (a receipt has at most 64).
RANGES_SHOWN = 8
COLUMNS = ("TIME", "PRINCIPAL", "CLIENT_ID", "GROUP", "CLIENT_ADDRESS", "PARTITION", "OFFSETS")


def parse_since(text: str, option: str = "--since") -> int:
    """Milliseconds since the epoch from an ISO 8601 time (UTC unless it says) or ms;
    `option` names the argument in the error."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: not an ISO 8601 time or milliseconds") from exc
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
    for event in read_events(config, RECEIPTS_TOPIC, since_ms, timeout_s):
        yield event["data"] | {"time": event["time"], "id": event["id"]}


def read_events(
    config: dict[str, Any], topic_name: str, since_ms: int | None, timeout_s: float
) -> Iterator[dict[str, Any]]:
    """Every CloudEvents record of one of the broker's internal topics (from records
    stamped `since_ms` on, if given) up to the topic's end when asked."""
    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    connection = Connection(config)
    consumer = Consumer(
        connection.client_config()
        | {
            "group.id": f"contextplane-audit-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = connection.metadata(consumer, timeout_s, topic_name)
        topic = metadata.topics.get(topic_name)
        if topic is None or topic.error is not None:
            raise ConfigError(f"cannot read {topic_name}: {topic.error if topic else 'absent'}")
        partitions = [TopicPartition(topic_name, p) for p in sorted(topic.partitions)]
        if since_ms is not None:
            wanted = [TopicPartition(topic_name, p.partition, since_ms) for p in partitions]
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
            yield json.loads(value)
    finally:
        consumer.close()


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
    from contextplane.cli import audit_events  # the `audit events` subcommand

    audit_events.add_parser(what)
    reads = what.add_parser("reads", help="who received which offsets (read receipts)")
    add_connection_arguments(reads)
    reads.add_argument("--topic", required=True)
    reads.add_argument("--partition", type=int)
    reads.add_argument("--offset", type=int, help="only receipts that include this offset")
    reads.add_argument("--principal", help="e.g. User:alice")
    reads.add_argument("--since", help="ISO 8601 time (UTC unless given) or epoch ms")
    reads.add_argument("--output", choices=("table", "json"), default="table")
    reads.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for answers")


def run(args: argparse.Namespace) -> int:
    if args.audit_command == "events":
        from contextplane.cli import audit_events

        return audit_events.run(args)
    try:
        config = config_from_arguments(args)
        since_ms = parse_since(args.since) if args.since else None
        found = [
            r for r in read_receipts(config, since_ms, args.timeout) if matches(r, args, since_ms)
        ]
    except (ConfigError, BrokerUnreachable, OSError) as exc:
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


def row(receipt: dict[str, Any]) -> tuple[object, ...]:
    """A receipt's cells (client ids and group ids are the audited client's choice: the
    table escapes them)."""
    return (
        receipt["last_fetch_time"],
        receipt["principal"],
        receipt["client_id"],
        receipt["group"] or "-",
        receipt["client_address"],
        receipt["partition"],
        offsets_cell(receipt),
    )


def table(rows: list[tuple[object, ...]]) -> list[str]:
    """The header and rows in aligned columns (`output.table`)."""
    return output.table(COLUMNS, rows)
