"""`contextplane mask add|list|delete`: the masking policies of a cluster, records of the
compacted topic `__contextplane_masking` (key the policy's name, JSON value; a tombstone
deletes). A Kafka client like `acl`: writing needs WRITE on that topic, listing READ.

`add` creates the topic the first time (compacted, one partition) and replaces a policy
of the same name; `delete` refuses a name no policy has. A topic just created is known to
each broker of a cluster only once that broker has read the metadata store (within a
heartbeat), and a broker that does not know the topic has no policies: so the first `add`
writes its policy only once every broker answers Metadata with the topic.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from contextplane.cli.kafka_client import (
    CommandError,
    ConfigError,
    Connection,
    add_connection_arguments,
    answer,
    config_from_arguments,
    kafka_error_text,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.protocol_admin import connect, send
from contextplane.clock import SystemClock
from contextplane.security.masking_policy import (
    KEYS_MASKED,
    MASKING_TOPIC,
    MaskingPolicy,
    check_name,
    encode_policy,
    make_policy,
    parse_policy,
)

TIMEOUT_S = 30.0
_COLUMNS = ("NAME", "PRINCIPAL", "TOPIC", "TAGS", "ACTION", "KEYS")


def add_parser(sub: Any) -> None:
    mask = sub.add_parser("mask", help="add, list and delete masking policies")
    what = mask.add_subparsers(dest="mask_command", required=True)
    add = what.add_parser("add", help="add or replace a masking policy")
    listed = what.add_parser("list", help="the masking policies in force")
    delete = what.add_parser("delete", help="delete a masking policy")
    for parser in (add, delete):
        parser.add_argument("name", help="the policy's name")
    add.add_argument("--principal", required=True, help="User:copilot, or * for everyone")
    add.add_argument("--topic", required=True, help="a topic, or a prefix followed by *")
    add.add_argument("--tag", action="append", required=True, help="a field tag (repeatable)")
    add.add_argument(
        "--action", default="redact", help="redact (default), null, hash or keep-last-N"
    )
    add.add_argument(
        "--keys",
        default=KEYS_MASKED,
        help="masked (default: keys with a registered schema masked as values are), "
        "clear (keys as stored) or fail-closed (keys without one sent null, as values)",
    )
    for parser in (add, listed, delete):
        add_connection_arguments(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    body = {"add": _add, "list": _list, "delete": _delete}[args.mask_command]
    return run_command(f"mask {args.mask_command}", lambda: body(args))


def _add(args: argparse.Namespace) -> int:
    try:
        policy = make_policy(
            args.name, args.principal, args.topic, args.tag, args.action, args.keys
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    connection = Connection(config_from_arguments(args))
    if _ensure_topic(connection):
        _known_everywhere(args)
    _write(connection, policy.name, encode_policy(policy))
    _show([policy], args.output)
    return 0


def _list(args: argparse.Namespace) -> int:
    policies = _read(Connection(config_from_arguments(args)))
    _show(sorted(policies.values(), key=lambda p: p.name), args.output)
    return 0


def _delete(args: argparse.Namespace) -> int:
    try:
        name = check_name(args.name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    connection = Connection(config_from_arguments(args))
    policy = _read(connection).get(name)
    if policy is None:
        raise CommandError(f"no masking policy named {name!r}")
    _write(connection, name, None)
    _show([policy], args.output)
    return 0


def _ensure_topic(connection: Connection) -> bool:
    """Create the policy topic unless it exists; True if it was just created (here or
    by another writer meanwhile)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    # An AdminClient's Metadata request for a topic would auto-create it (not compacted)
    # on a cluster with auto.create.topics.enable.
    admin = AdminClient(connection.client_config() | {"allow.auto.create.topics": False})
    metadata = connection.metadata(admin, TIMEOUT_S, MASKING_TOPIC)
    found = metadata.topics.get(MASKING_TOPIC)
    if found is not None and found.error is None:
        return False
    new = NewTopic(MASKING_TOPIC, 1, -1, config={"cleanup.policy": "compact"})
    try:
        answer(admin.create_topics([new])[MASKING_TOPIC], f"topic {MASKING_TOPIC!r}")
    except CommandError:
        # Created meanwhile by another writer: fine. Anything else is the answer.
        again = connection.metadata(admin, TIMEOUT_S, MASKING_TOPIC).topics.get(MASKING_TOPIC)
        if again is None or again.error is not None:
            raise
    return True


def _known_everywhere(args: argparse.Namespace) -> None:
    """Wait, at most TIMEOUT_S, until every broker of the cluster answers Metadata with
    the policy topic (asking each broker itself)."""
    from kafka.protocol.metadata import MetadataRequest

    request = MetadataRequest(
        topics=[MetadataRequest.MetadataRequestTopic(name=MASKING_TOPIC)],
        allow_auto_topic_creation=False,
    )
    clock = SystemClock()
    deadline = clock.monotonic_ms() + int(TIMEOUT_S * 1000)
    admin = connect(args)
    try:
        waiting = {broker.node_id for broker in send(admin, request, "metadata").brokers}
        while waiting:
            waiting = {node for node in waiting if not _knows(admin, request, node)}
            if waiting and clock.monotonic_ms() > deadline:
                nodes = ", ".join(str(node) for node in sorted(waiting))
                raise CommandError(f"topic {MASKING_TOPIC!r}: not yet known to broker {nodes}")
            if waiting:
                time.sleep(0.1)
    finally:
        admin.close()


def _knows(admin: Any, request: Any, node: int) -> bool:
    async def ask() -> Any:
        return await admin._manager.send(request, node_id=node)

    try:
        response = admin._manager.run(ask)
    except Exception:  # noqa: BLE001 - kafka-python's errors: that broker is asked again
        return False
    return any(t.name == MASKING_TOPIC and t.error_code == 0 for t in response.topics)


def _write(connection: Connection, name: str, value: bytes | None) -> None:
    from confluent_kafka import Producer

    producer = Producer(connection.client_config() | {"acks": "all"})
    refused: list[Any] = []
    producer.produce(
        MASKING_TOPIC,
        key=name.encode(),
        value=value,
        partition=0,
        on_delivery=lambda error, _message: refused.append(error) if error else None,
    )
    if producer.flush(TIMEOUT_S):
        raise CommandError(f"policy {name!r}: not acknowledged within {TIMEOUT_S:.0f} s")
    if refused:
        raise CommandError(f"topic {MASKING_TOPIC!r}: {kafka_error_text(refused[0])}")


def _read(connection: Connection) -> dict[str, MaskingPolicy]:
    """The policies in force: the topic read from its start to its end and folded."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        connection.client_config()
        | {
            "group.id": "contextplane-mask",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    policies: dict[str, MaskingPolicy] = {}
    try:
        metadata = connection.metadata(consumer, TIMEOUT_S, MASKING_TOPIC)
        found = metadata.topics.get(MASKING_TOPIC)
        if found is None or found.error is not None:
            if found is not None and found.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise CommandError(f"topic {MASKING_TOPIC!r}: {kafka_error_text(found.error)}")
            return policies  # no policy was ever added
        partition = TopicPartition(MASKING_TOPIC, 0, OFFSET_BEGINNING)
        _, high = consumer.get_watermark_offsets(partition, timeout=TIMEOUT_S)
        if high <= 0:
            return policies
        consumer.assign([partition])
        while True:
            message = consumer.poll(TIMEOUT_S)
            if message is None:
                raise CommandError(f"topic {MASKING_TOPIC!r}: no answer within {TIMEOUT_S:.0f} s")
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return policies
                raise CommandError(f"topic {MASKING_TOPIC!r}: {kafka_error_text(error)}")
            name = (message.key() or b"").decode(errors="replace")
            if message.value() is None:
                policies.pop(name, None)
                continue
            try:
                policies[name] = parse_policy(name, message.value())
            except ValueError:
                continue  # as the broker: a record that is no policy is skipped
    finally:
        consumer.close()


def _show(policies: list[MaskingPolicy], output: str) -> None:
    if output == "json":
        print_json({"policies": [{"name": p.name} | p.to_json() for p in policies]})
    else:
        print_table(
            _COLUMNS,
            [
                (p.name, p.principal, p.topic, ",".join(sorted(p.tags)), str(p.action), p.keys)
                for p in policies
            ],
        )
