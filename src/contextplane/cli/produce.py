"""`contextplane produce TOPIC`: one record per line of stdin, as `kcat -P` and
`kafka-console-producer.sh` write them: a key before `--key-separator`, headers from
`-H NAME=VALUE`, a chosen `--partition` and `--acks`. It reports what was written (per
partition: records, first and last offset) and exits 1 naming Kafka's error if the
cluster refused a record (reading stops there; records already sent are reported)."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from contextplane.cli.kafka_client import (
    CommandError,
    ConfigError,
    Connection,
    add_connection_arguments,
    config_from_arguments,
    kafka_error_text,
    leaderless,
    run_command,
)
from contextplane.cli.output import add_output_argument, fail, print_json, print_table
from contextplane.cli.progress import Bar

# A line longer than this is refused before it is sent (librdkafka's own default
# message.max.bytes: the client would refuse it too); it bounds what one line holds.
MAX_LINE_BYTES = 1_000_000
# How long the records in flight may take to be acknowledged once stdin ends.
FLUSH_TIMEOUT_S = 30.0


def add_parser(sub: Any) -> None:
    produce = sub.add_parser("produce", help="write stdin to a topic, one record per line")
    produce.add_argument("topic")
    produce.add_argument(
        "-K",
        "--key-separator",
        metavar="SEP",
        help="each line is KEY SEP VALUE (lines without SEP have no key)",
    )
    produce.add_argument(
        "-H", "--header", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    produce.add_argument("-p", "--partition", type=int, help="default: the partitioner's")
    produce.add_argument("--acks", choices=("0", "1", "all", "-1"), default="all")
    add_connection_arguments(produce)
    add_output_argument(produce)


def run(args: argparse.Namespace) -> int:
    return run_command("produce", lambda: _produce(args, sys.stdin.buffer))


@dataclass
class PartitionWritten:
    records: int = 0
    first_offset: int = -1
    last_offset: int = -1


@dataclass
class Delivery:
    """What the delivery reports said: offsets per partition, the first refusal."""

    written: dict[int, PartitionWritten] = field(default_factory=dict)
    refusal: str | None = None
    refused: int = 0

    def report(self, error: Any, message: Any) -> None:
        if error is not None:
            self.refused += 1
            if self.refusal is None:
                self.refusal = kafka_error_text(error)
            return
        partition = self.written.setdefault(message.partition(), PartitionWritten())
        offset = message.offset()
        partition.records += 1
        if offset is None or offset < 0:  # acks=0: the broker answers nothing, no offset
            return
        if partition.first_offset < 0 or 0 <= offset < partition.first_offset:
            partition.first_offset = offset
        partition.last_offset = max(partition.last_offset, offset)


def headers(items: list[str]) -> list[tuple[str, bytes]]:
    found = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"-H expects NAME=VALUE, got {item!r}")
        found.append((name, value.encode()))
    return found


def _produce(args: argparse.Namespace, lines: BinaryIO) -> int:
    from confluent_kafka import Producer

    record_headers = headers(args.header)
    separator = args.key_separator.encode() if args.key_separator else None
    if separator == b"":
        raise ConfigError("--key-separator must not be empty")
    connection = Connection(config_from_arguments(args))
    producer = Producer(
        connection.client_config()
        | {
            "acks": args.acks,
            # Kafka's producer default with acks=all: no duplicates from its retries.
            "enable.idempotence": args.acks in ("all", "-1"),
            "linger.ms": 5,
            # A keyed record goes where Kafka's Java producer and console producer put
            # it (murmur2), not librdkafka's default CRC32: consumers that rely on key
            # partitioning (the context service's instances) find it there.
            "partitioner": "murmur2_random",
        }
    )
    topic = connection.topic(producer, FLUSH_TIMEOUT_S, args.topic)
    if args.partition is not None and args.partition not in topic.partitions:
        raise CommandError(f"topic {args.topic!r} has no partition {args.partition}")
    delivery = Delivery()
    sent = 0
    read = 0
    size = _file_size(lines)
    bar = Bar(args.output, f"produce {args.topic}", in_bytes=True)
    try:
        while delivery.refusal is None:
            line = lines.readline(MAX_LINE_BYTES + 2)
            if not line:
                break
            read += len(line)
            sent += _line(producer, delivery, args, line, sent, separator, record_headers)
            bar.update(read, size, f"{sent} records sent")
        bar.update(read, size, f"{sent} records sent", force=True)
        unacknowledged = producer.flush(FLUSH_TIMEOUT_S)
    finally:
        bar.close()
    _print_report(args, delivery, sent)
    if delivery.refusal is not None:
        return fail("produce", f"topic {args.topic!r}: {delivery.refusal}")
    if unacknowledged:
        return fail(
            "produce",
            f"topic {args.topic!r}: {unacknowledged} records not acknowledged within "
            f"{FLUSH_TIMEOUT_S:.0f} s{_leaderless(producer, args)}",
        )
    return 0


def _leaderless(producer: Any, args: argparse.Namespace) -> str:
    """Why records may have waited: the partitions written that have no leader now (a
    broker gone with records only in its local WAL), as a clause; "" when none."""
    try:
        metadata = producer.list_topics(args.topic, timeout=5)
        topic = metadata.topics[args.topic]
    except Exception:  # noqa: BLE001 - the reason is a hint; the failure is reported anyway
        return ""
    written = [args.partition] if args.partition is not None else sorted(topic.partitions)
    unserved = leaderless(topic, written, metadata.brokers)
    return f" ({unserved})" if unserved else ""


def _line(
    producer: Any,
    delivery: Delivery,
    args: argparse.Namespace,
    line: bytes,
    sent: int,
    separator: bytes | None,
    record_headers: list[tuple[str, bytes]],
) -> int:
    """Send one line read as a record; 1 if it was sent, 0 if it is refused as too long."""
    # As Kafka's console producer reads lines: without "\n" or "\r\n".
    line = line.removesuffix(b"\n").removesuffix(b"\r") if line.endswith(b"\n") else line
    if len(line) > MAX_LINE_BYTES:
        delivery.refusal = f"line {sent + 1} is longer than {MAX_LINE_BYTES} bytes"
        return 0
    key = None
    if separator is not None and separator in line:
        key, line = line.split(separator, 1)
    _send(producer, delivery, args, key, line, record_headers)
    return 1


def _file_size(lines: BinaryIO) -> int | None:
    """The bytes left to read when stdin is a regular file (the bar's total), else None."""
    try:
        status = os.fstat(lines.fileno())
        position = lines.tell()
    except (OSError, ValueError, AttributeError):
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    return max(status.st_size - position, 0)


def _send(
    producer: Any,
    delivery: Delivery,
    args: argparse.Namespace,
    key: bytes | None,
    value: bytes,
    record_headers: list[tuple[str, bytes]],
) -> None:
    options: dict[str, Any] = {"on_delivery": delivery.report}
    if args.partition is not None:
        options["partition"] = args.partition
    if record_headers:
        options["headers"] = record_headers
    while True:
        try:
            producer.produce(args.topic, value=value, key=key, **options)
            break
        except BufferError:  # the client's queue is full: wait for deliveries
            producer.poll(0.1)
    producer.poll(0)


def _print_report(args: argparse.Namespace, delivery: Delivery, sent: int) -> None:
    partitions: list[dict[str, int | None]] = [
        {
            "partition": number,
            "records": written.records,
            # None (JSON null, "-" in the table) where acks=0 told no offset.
            "first_offset": written.first_offset if written.first_offset >= 0 else None,
            "last_offset": written.last_offset if written.last_offset >= 0 else None,
        }
        for number, written in sorted(delivery.written.items())
    ]
    written_total = sum(written.records for written in delivery.written.values())
    if args.output == "json":
        print_json(
            {
                "topic": args.topic,
                "records": written_total,
                "refused": delivery.refused,
                "partitions": partitions,
            }
        )
        return
    print_table(
        ("TOPIC", "PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"),
        [
            (
                args.topic,
                p["partition"],
                p["records"],
                _known(p["first_offset"]),
                _known(p["last_offset"]),
            )
            for p in partitions
        ],
    )
    print(f"\n{written_total} of {sent} records written")


def _known(offset: int | None) -> object:
    return "-" if offset is None else offset
