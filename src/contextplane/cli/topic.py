"""`contextplane topic create|list|describe|alter-config|delete`: topics of any Kafka
cluster through confluent-kafka's AdminClient, as `kafka-topics.sh`, `kafka-configs.sh`
and `rpk topic` manage them."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from contextplane.cli.config import (
    add_change_arguments,
    incremental_changes,
    name_values,
    print_changes,
)
from contextplane.cli.kafka_client import (
    ADMIN_TIMEOUT_S,
    CommandError,
    add_connection_arguments,
    answer,
    connect_admin,
    run_command,
)
from contextplane.cli.list_offsets import list_offsets
from contextplane.cli.output import add_output_argument, fail, print_json, print_table

# How long `topic describe` waits for a partition's offsets: a leader that does not
# answer (killed, its lease not lapsed yet) leaves them unknown, not the command failed.
OFFSETS_TIMEOUT_S = 5.0


def add_parser(sub: Any) -> None:
    topic = sub.add_parser("topic", help="create, list, describe, alter and delete topics")
    what = topic.add_subparsers(dest="topic_command", required=True)

    create = what.add_parser("create", help="create a topic")
    create.add_argument("name")
    create.add_argument(
        "-p", "--partitions", type=int, default=-1, help="default: the broker's num.partitions"
    )
    create.add_argument(
        "-r",
        "--replication-factor",
        type=int,
        default=-1,
        help="default: the broker's default.replication.factor",
    )
    create.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a topic config, e.g. retention.ms=86400000 (repeatable)",
    )

    listing = what.add_parser("list", help="the cluster's topics (internal ones with -i)")
    listing.add_argument(
        "-i",
        "--internal",
        action="store_true",
        help="also the topics the cluster calls internal (__consumer_offsets, "
        "__transaction_state, ...), as rpk's -i",
    )

    describe = what.add_parser(
        "describe", help="partitions, leaders, offsets and the configs set on a topic"
    )
    describe.add_argument("name")

    alter = what.add_parser(
        "alter-config", help="set or delete topic configs (IncrementalAlterConfigs)"
    )
    alter.add_argument("name")
    add_change_arguments(alter)

    delete = what.add_parser("delete", help="delete topics")
    delete.add_argument("names", nargs="+", metavar="name")

    for parser in (create, what.choices["list"], describe, alter, delete):
        add_connection_arguments(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    command = f"topic {args.topic_command}"
    body = {
        "create": _create,
        "list": _list,
        "describe": _describe,
        "alter-config": _alter_config,
        "delete": _delete,
    }[args.topic_command]
    return run_command(command, lambda: body(args))


def _create(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import NewTopic

    configs = name_values(args.config, "--config")
    admin, _ = connect_admin(args)
    new = NewTopic(
        args.name,
        num_partitions=args.partitions,
        replication_factor=args.replication_factor,
        config=configs,
    )
    answer(admin.create_topics([new])[args.name], f"topic {args.name!r}")
    # The counts the broker chose when the flags left them to its defaults.
    topic = admin.list_topics(args.name, timeout=10.0).topics.get(args.name)
    partitions = len(topic.partitions) if topic is not None else args.partitions
    replicas = (
        len(topic.partitions[0].replicas)
        if topic is not None and topic.partitions
        else args.replication_factor
    )
    document = {
        "topic": args.name,
        "partitions": partitions,
        "replication_factor": replicas,
        "configs": configs,
    }
    if args.output == "json":
        print_json(document)
    else:
        print_table(
            ("TOPIC", "PARTITIONS", "REPLICAS", "STATUS"), [(args.name, partitions, replicas, "OK")]
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    admin, metadata = connect_admin(args)
    # Named but not readable by this principal: not listed.
    names = sorted(name for name, topic in metadata.topics.items() if topic.error is None)
    internal = _internal(admin, names)
    topics = []
    for name in names:
        if name in internal and not args.internal:
            continue
        partitions = metadata.topics[name].partitions
        replicas = len(next(iter(partitions.values())).replicas) if partitions else 0
        topics.append(
            {
                "name": name,
                "partitions": len(partitions),
                "replication_factor": replicas,
                "internal": name in internal,
            }
        )
    if args.output == "json":
        print_json({"topics": topics})
    else:
        print_table(
            ("NAME", "PARTITIONS", "REPLICAS"),
            [(t["name"], t["partitions"], t["replication_factor"]) for t in topics],
        )
    return 0


def _internal(admin: Any, names: list[str]) -> set[str]:
    """The topics among `names` the cluster marks internal (Metadata's is_internal, which
    librdkafka's listing does not carry: DescribeTopics does)."""
    from confluent_kafka import KafkaException, TopicCollection

    if not names:
        return set()
    found = set()
    for name, future in admin.describe_topics(TopicCollection(names)).items():
        try:
            if future.result(30).is_internal:
                found.add(name)
        except KafkaException:
            continue  # deleted since the listing: listed as it was
    return found


def _describe(args: argparse.Namespace) -> int:
    from confluent_kafka import TopicCollection, TopicPartition
    from confluent_kafka.admin import ConfigResource, ConfigSource, OffsetSpec, ResourceType

    admin, _ = connect_admin(args)
    what = f"topic {args.name!r}"
    description = answer(admin.describe_topics(TopicCollection([args.name]))[args.name], what)
    partitions = sorted(description.partitions, key=lambda p: p.id)
    # A partition without a leader (its broker gone), or whose leader does not answer
    # (killed, its lease not lapsed yet), is shown without its offsets.
    asked = [TopicPartition(args.name, p.id) for p in partitions]
    kinds = [OffsetSpec.earliest(), OffsetSpec.latest()]
    offsets = list_offsets(admin, asked, kinds, OFFSETS_TIMEOUT_S)
    starts = {partition: offset for (_, partition), offset in offsets.found[0].items()}
    ends = {partition: offset for (_, partition), offset in offsets.found[1].items()}
    unknown = sorted(partition for _, partition in offsets.missing)
    if unknown:
        listed = ", ".join(map(str, unknown))
        print(
            f"contextplane topic describe: partition(s) {listed} of {args.name!r} offline or"
            " not answering: their offsets are unknown",
            file=sys.stderr,
        )
    resource = ConfigResource(ResourceType.TOPIC, args.name)
    entries = answer(admin.describe_configs([resource])[resource], f"{what} configs")
    # As kafka-topics.sh --describe: the configs set on the topic itself.
    configs = {
        name: entry.value
        for name, entry in sorted(entries.items())
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }
    rows = [
        {
            "partition": p.id,
            "leader": p.leader.id if p.leader is not None else None,
            "replicas": [node.id for node in p.replicas],
            "isr": [node.id for node in p.isr],
            "log_start_offset": starts.get(p.id),
            "high_watermark": ends.get(p.id),
        }
        for p in partitions
    ]
    document = {
        "name": description.name,
        # Kafka's form of a Uuid (URL-safe base64), as kafka-topics.sh prints it;
        # librdkafka's str() is standard base64.
        "id": str(description.topic_id).replace("+", "-").replace("/", "_"),
        "internal": description.is_internal,
        "partitions": rows,
        "configs": configs,
    }
    if args.output == "json":
        print_json(document)
        return 0
    print_table(
        ("NAME", "ID", "PARTITIONS", "REPLICAS", "INTERNAL"),
        [
            (
                description.name,
                document["id"],
                len(rows),
                len(rows[0]["replicas"]) if rows else 0,
                str(description.is_internal).lower(),
            )
        ],
    )
    print()
    print_table(
        ("CONFIG", "VALUE"),
        [(name, "(sensitive)" if v is None else v) for name, v in configs.items()],
    )
    print()
    print_table(
        ("PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START-OFFSET", "HIGH-WATERMARK"),
        [
            (
                r["partition"],
                "-" if r["leader"] is None else r["leader"],
                ",".join(map(str, r["replicas"])),
                ",".join(map(str, r["isr"])),
                "-" if r["log_start_offset"] is None else r["log_start_offset"],
                "-" if r["high_watermark"] is None else r["high_watermark"],
            )
            for r in rows
        ],
    )
    return 0


def log_offsets(admin: Any, partitions: list[Any], spec: Any) -> dict[tuple[str, int] | int, int]:
    """The offset `spec` names (earliest, latest, for a timestamp) for each partition, by
    partition number, and by (topic, partition) as well; CommandError naming the
    partitions without one (an error, no leader, a leader not answering)."""
    offsets = list_offsets(admin, partitions, [spec], ADMIN_TIMEOUT_S)
    if offsets.missing:
        (topic, partition), why = min(offsets.missing.items())
        more = len(offsets.missing) - 1
        others = f" (and {more} other partition(s))" if more else ""
        raise CommandError(f"topic {topic!r} partition {partition} offsets: {why}{others}")
    found: dict[tuple[str, int] | int, int] = {}
    for (topic, partition), offset in offsets.found[0].items():
        found[partition] = offset
        found[(topic, partition)] = offset
    return found


def _alter_config(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import ConfigResource, ResourceType

    values, changes = incremental_changes(args)
    admin, _ = connect_admin(args)
    resource = ConfigResource(ResourceType.TOPIC, args.name, incremental_configs=changes)
    answer(admin.incremental_alter_configs([resource])[resource], f"topic {args.name!r}")
    print_changes({"topic": args.name}, values, args.delete, args.output)
    return 0


def _delete(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    futures = admin.delete_topics(args.names, operation_timeout=ADMIN_TIMEOUT_S)
    failed: dict[str, str] = {}
    for name in args.names:
        try:
            answer(futures[name], "")
        except CommandError as exc:
            failed[name] = str(exc).removeprefix(": ")
    deleted = [name for name in args.names if name not in failed]
    if args.output == "json":
        print_json({"deleted": deleted, "failed": failed})
    else:
        print_table(("TOPIC", "STATUS"), [(name, failed.get(name, "OK")) for name in args.names])
    for name, error in failed.items():
        fail("topic delete", f"topic {name!r}: {error}")
    return 1 if failed else 0
