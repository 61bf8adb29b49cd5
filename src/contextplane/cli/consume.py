"""`contextplane consume TOPIC`: records to stdout, as `kcat -C` and
`kafka-console-consumer.sh` print them. Without `-g` it reads every partition, or those
`-p` names, by assignment (no group is joined, nothing is committed), from the end, the
start, `-o N` or the first record at or after `--from-timestamp`; with `-g GROUP` it joins
the group and commits what it printed (with `-o` or `--from-timestamp` it is assigned
every partition instead, and commits under the group). `-o` is kcat's: `beginning`,
`end`, `stored` (the group's committed offsets: needs `-g`), `N`, `-N` (the last N
offsets of each partition) or `s@MS`. `--format` takes kcat's tokens;
`--format json` (or `--output json`) prints one JSON document per record per line: a
consumer streams, so each record is its own document (JSON Lines). Piped, a record's bytes
are written as they are, as kcat writes them; on a terminal, the characters that would
drive it (escape sequences, carriage returns, bidirectional overrides) are shown as
backslash escapes: a producer's record cannot rewrite the screen, retitle the window or
set the clipboard of whoever reads the topic."""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
import uuid
from dataclasses import dataclass
from typing import Any

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
from contextplane.cli.output import add_output_argument
from contextplane.cli.times import parse_timestamp_ms
from contextplane.clock import SystemClock
from contextplane.logsafe import escape_controls

# kcat's format tokens.
_TOKENS = "tpokvThKS"
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}
CONNECT_TIMEOUT_S = 30.0
# The longest a group's join may take before `--timeout` counts (Kafka's default
# session.timeout.ms: a join slower than that has lost its member anyway).
JOIN_TIMEOUT_S = 45.0


def add_parser(sub: Any) -> None:
    consume = sub.add_parser("consume", help="print a topic's records")
    consume.add_argument("topic")
    consume.add_argument("-g", "--group", help="join this group and commit what is printed")
    start = consume.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="from each partition's start (with -g: where the group has no offset)",
    )
    start.add_argument(
        "-o",
        "--offset",
        type=start_offset,
        metavar="OFFSET",
        help="as kcat's -o: beginning, end, stored (the group's committed offsets, with -g), "
        "N (offset N of every partition read), -N (the last N offsets of each) or s@MS "
        "(as --from-timestamp)",
    )
    start.add_argument(
        "--from-timestamp",
        metavar="MS|ISO",
        help="from each partition's first record at or after this time: epoch milliseconds "
        "or ISO 8601, UTC unless given (kcat's -o s@MS); its log end where none is that late",
    )
    consume.add_argument(
        "-p",
        "--partition",
        type=partition_number,
        action="append",
        metavar="N",
        help="read only partition N (repeatable; not with -g, as kafka-console-consumer.sh)",
    )
    consume.add_argument(
        "-n", "--max-messages", type=int, metavar="MAX", help="stop after MAX records"
    )
    consume.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop after S seconds without a record (default: run until interrupted)",
    )
    consume.add_argument(
        "-f",
        "--format",
        default="%v",
        help="kcat's tokens (%%t topic, %%p partition, %%o offset, %%k key, %%v value, "
        "%%T timestamp ms, %%h headers, %%K/%%S key/value size), or json; one line per record",
    )
    add_connection_arguments(consume)
    add_output_argument(consume)


def partition_number(text: str) -> int:
    """argparse's type for `-p`: a partition is a number from 0 (exit status 2 otherwise)."""
    if not text.isdigit() or len(text) > 10:
        raise argparse.ArgumentTypeError(f"not a partition number: {text!r}")
    return int(text)


@dataclass(frozen=True)
class Start:
    """Where `-o` starts each partition: `kind` is beginning, end, stored, offset (at
    `value`), tail (`value` offsets before the log end) or time (`value` epoch ms)."""

    kind: str
    value: int = 0


_START_WORDS = ("beginning", "end", "stored")
_OFFSET_DIGITS_MAX = 19  # an int64's: longer text is not parsed at all
_OFFSET_MAX = 2**63 - 1


def start_offset(text: str) -> Start:
    """argparse's type for `-o`, kcat's forms (exit status 2 for any other)."""
    if text in _START_WORDS:
        return Start(text)
    digits = text.removeprefix("-")
    if digits.isdigit() and len(digits) <= _OFFSET_DIGITS_MAX and int(digits) <= _OFFSET_MAX:
        if text.startswith("-"):
            if int(digits) == 0:
                raise argparse.ArgumentTypeError("-0 is not a count of offsets from the end")
            return Start("tail", int(digits))
        return Start("offset", int(digits))
    if text.startswith("s@"):
        try:
            return Start("time", parse_timestamp_ms(text[2:], "-o s@"))
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    raise argparse.ArgumentTypeError(
        f"{text!r}: expected beginning, end, stored, N, -N (the last N offsets) or s@MS"
    )


def _normalise_start(args: argparse.Namespace) -> None:
    """`-o stored` and `-o s@MS` as the options that say the same: a group's committed
    offsets (the default with `-g`) and `--from-timestamp`."""
    start: Start | None = args.offset
    if start is None or start.kind not in ("stored", "time"):
        return
    args.offset = None
    if start.kind == "stored" and args.group is None:
        raise ConfigError("-o stored reads the group's committed offsets: it needs -g GROUP")
    if start.kind == "time":
        args.from_timestamp = str(start.value)


def run(args: argparse.Namespace) -> int:
    if args.output == "json":
        args.format = "json"
    return run_command("consume", lambda: _consume(args))


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode(errors="backslashreplace")


def for_terminal(line: bytes) -> bytes:
    """A formatted record as a terminal may show it: its lines and tabs kept, every other
    character that is not printable (or byte that is not UTF-8) as a backslash escape."""
    text = line.decode(errors="backslashreplace")
    return "\n".join(
        "\t".join(escape_controls(cell) for cell in row.split("\t")) for row in text.split("\n")
    ).encode()


def format_record(template: str, message: Any) -> bytes:
    """The record written by a kcat format: the key and value bytes as they are, the
    rest as text; `\\n`, `\\t` and `\\\\` are escapes."""
    out = bytearray()
    i = 0
    while i < len(template):
        char = template[i]
        following = template[i + 1] if i + 1 < len(template) else ""
        if char == "%" and following in _TOKENS:
            out += _token(following, message)
            i += 2
        elif char == "\\" and following in _ESCAPES:
            out += _ESCAPES[following].encode()
            i += 2
        else:
            out += char.encode()
            i += 1
    return bytes(out)


def _token(token: str, message: Any) -> bytes:
    key, value = message.key(), message.value()
    if token == "k":
        return key or b""
    if token == "v":
        return value or b""
    text: object
    if token == "t":
        text = message.topic()
    elif token == "p":
        text = message.partition()
    elif token == "o":
        text = message.offset()
    elif token == "T":
        text = message.timestamp()[1]
    elif token == "K":
        text = -1 if key is None else len(key)
    elif token == "S":
        text = -1 if value is None else len(value)
    else:  # "h"
        text = ",".join(f"{name}={_text(v)}" for name, v in message.headers() or [])
    return str(text).encode()


def _bytes_field(value: bytes | None) -> Any:
    """Text when the bytes are UTF-8, else {"base64": ...}: JSON cannot carry raw bytes."""
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def record_document(message: Any) -> dict[str, Any]:
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp": message.timestamp()[1],
        "key": _bytes_field(message.key()),
        "value": _bytes_field(message.value()),
        "headers": [[name, _bytes_field(v)] for name, v in message.headers() or []],
    }


def _consume(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer

    _normalise_start(args)
    if args.partition and args.group is not None:
        # kafka-console-consumer.sh's rule: a group's member is assigned its partitions.
        raise ConfigError("-p/--partition and -g/--group cannot be given together")
    when_ms = (
        parse_timestamp_ms(args.from_timestamp, "--from-timestamp")
        if args.from_timestamp is not None
        else None
    )
    connection = Connection(config_from_arguments(args))
    consumer = Consumer(
        connection.client_config()
        | {
            "group.id": args.group or f"contextplane-consume-{uuid.uuid4().hex}",
            "enable.auto.commit": args.group is not None,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        }
    )
    printed = Printed()
    try:
        topic = connection.topic(consumer, CONNECT_TIMEOUT_S, args.topic)
        clock = IdleClock(args.timeout)
        if args.group is not None and args.offset is None and when_ms is None:
            consumer.subscribe([args.topic], on_assign=lambda *_: clock.assigned())
        else:
            clock.assigned()
            positions = start_positions(consumer, args, topic, when_ms)
            _warn_offline(consumer, args.topic, topic, [tp.partition for tp in positions])
            consumer.assign(positions)
        ctrl_c_default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if ctrl_c_default:
            # Ctrl-C while records print stops the loop between records, not inside one:
            # with unbuffered output (PYTHONUNBUFFERED) an exception raised between a
            # record's write and its count would report one fewer than was printed.
            signal.signal(signal.SIGINT, printed.stop)
        try:
            _print_records(consumer, args, clock, printed)
        finally:
            if ctrl_c_default:
                signal.signal(signal.SIGINT, signal.default_int_handler)
    except KeyboardInterrupt:
        sys.stdout.flush()  # Ctrl-C ends consumption; the summary counts what was printed
    finally:
        consumer.close()  # with -g: commits what was printed
    print(f"Processed a total of {printed.count} messages", file=sys.stderr)
    return 0


def _warn_offline(consumer: Any, name: str, topic: Any, partitions: list[int]) -> None:
    """One stderr line naming the partitions read that no broker serves now (no leader: a
    broker gone with records only in its local WAL; a leader killed or stopped while its
    lease lasts): nothing comes from them until a live broker takes them, which would
    otherwise look like an empty partition."""
    try:
        brokers = consumer.list_topics(name, timeout=CONNECT_TIMEOUT_S).brokers
    except Exception:  # noqa: BLE001 - the probe is a hint; without it, leaders only
        brokers = None
    unserved = leaderless(topic, partitions, brokers)
    if unserved:
        them = "them" if unserved.startswith("partitions") or ";" in unserved else "it"
        print(
            f"topic {name!r}: {unserved}: nothing is read from {them} until a live broker"
            f" takes {them}",
            file=sys.stderr,
        )


def start_positions(
    consumer: Any, args: argparse.Namespace, topic: Any, when_ms: int | None
) -> list[Any]:
    """Where each partition read starts: `-o`, the offset of `--from-timestamp` (ListOffsets
    by time; the log end where no record is that late, as kcat), the start or the end."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

    chosen = sorted(set(args.partition)) if args.partition else sorted(topic.partitions)
    missing = [p for p in chosen if p not in topic.partitions]
    if missing:
        raise CommandError(
            f"topic {args.topic!r} has no partition {missing[0]} (it has {len(topic.partitions)})"
        )
    if when_ms is None:
        start: Start = args.offset or Start("beginning" if args.from_beginning else "end")
        if start.kind == "tail":
            return [
                TopicPartition(args.topic, p, _tail_offset(consumer, args.topic, p, start.value))
                for p in chosen
            ]
        fixed = {"beginning": OFFSET_BEGINNING, "end": OFFSET_END}.get(start.kind, start.value)
        return [TopicPartition(args.topic, p, fixed) for p in chosen]
    asked = [TopicPartition(args.topic, p, when_ms) for p in chosen]
    found = consumer.offsets_for_times(asked, timeout=CONNECT_TIMEOUT_S)
    for tp in found:
        if tp.error is not None:
            raise CommandError(
                f"topic {args.topic!r} partition {tp.partition}: {kafka_error_text(tp.error)}"
            )
    return [
        TopicPartition(args.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
        for tp in found
    ]


def _tail_offset(consumer: Any, topic: str, partition: int, count: int) -> int:
    """kcat's `-o -N`: N offsets before the partition's log end, not before its start
    (offsets, not records: a transaction marker or a compacted record counts)."""
    from confluent_kafka import TopicPartition

    low, high = consumer.get_watermark_offsets(
        TopicPartition(topic, partition), timeout=CONNECT_TIMEOUT_S
    )
    return int(max(low, high - count))


class Printed:
    """How many records were written, kept outside the loop so that Ctrl-C mid-stream
    still reports them."""

    def __init__(self) -> None:
        self.count = 0
        self.stopped = False

    def stop(self, *_: object) -> None:
        self.stopped = True


class IdleClock:
    """`--timeout`: seconds without a record once partitions are assigned (a group's
    join, however long its rebalance takes, is not idleness); until then, the join may
    take up to JOIN_TIMEOUT_S more."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self.clock = SystemClock()
        self.since_ms = self.clock.monotonic_ms()
        self.allowance_ms = JOIN_TIMEOUT_S * 1000

    def assigned(self) -> None:
        self.since_ms = self.clock.monotonic_ms()
        self.allowance_ms = 0

    def record(self) -> None:
        self.since_ms = self.clock.monotonic_ms()

    def expired(self) -> bool:
        if self.timeout_s is None:
            return False
        idle_ms = self.clock.monotonic_ms() - self.since_ms
        return idle_ms >= self.timeout_s * 1000 + self.allowance_ms


def _print_records(
    consumer: Any, args: argparse.Namespace, clock: IdleClock, printed: Printed
) -> None:
    out = sys.stdout.buffer
    shown = for_terminal if sys.stdout.isatty() else bytes
    while not printed.stopped and (args.max_messages is None or printed.count < args.max_messages):
        message = consumer.poll(0.2)
        if message is None:
            out.flush()
            if clock.expired():
                break
            continue
        error = message.error()
        if error is not None:
            if error.fatal() or not error.retriable():
                raise CommandError(f"topic {args.topic!r}: {kafka_error_text(error)}")
            continue
        clock.record()
        if args.format == "json":
            out.write(json.dumps(record_document(message), sort_keys=True).encode())
        else:
            out.write(shown(format_record(args.format, message)))
        out.write(b"\n")
        printed.count += 1
    out.flush()
