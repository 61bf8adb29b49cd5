"""`contextplane group list|describe|reset-offsets|delete`: consumer groups of any Kafka
cluster through confluent-kafka's AdminClient, as `kafka-consumer-groups.sh` and
`rpk group` show and change them: lag per partition, offsets reset (a dry run unless
`--execute`, refused while the group has members)."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from contextplane.cli.kafka_client import (
    CommandError,
    ConfigError,
    add_connection_arguments,
    answer,
    connect_admin,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.topic import log_offsets

# librdkafka's ConsumerGroupState names, as Kafka writes the states.
_STATES = {
    "UNKNOWN": "Unknown",
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
    "STABLE": "Stable",
    "DEAD": "Dead",
    "EMPTY": "Empty",
}


def add_parser(sub: Any) -> None:
    group = sub.add_parser("group", help="list, describe (lag), reset offsets of, delete groups")
    what = group.add_subparsers(dest="group_command", required=True)
    listing = what.add_parser("list", help="the cluster's consumer groups")
    describe = what.add_parser(
        "describe", help="state, members, committed offsets and lag per partition"
    )
    describe.add_argument("group")
    reset = what.add_parser(
        "reset-offsets", help="move a group's committed offsets (a dry run unless --execute)"
    )
    reset.add_argument("group")
    reset.add_argument(
        "--topic",
        required=True,
        metavar="TOPIC[:P,...]",
        help="the topic, all its partitions or those listed (as kafka-consumer-groups.sh)",
    )
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="each partition's log start")
    to.add_argument("--to-latest", action="store_true", help="each partition's log end")
    to.add_argument("--to-offset", type=int, metavar="N", help="N, within each partition's log")
    to.add_argument(
        "--to-datetime",
        metavar="ISO",
        help="the first offset at or after this time (ISO 8601, UTC unless given)",
    )
    reset.add_argument(
        "--execute", action="store_true", help="commit the offsets (default: show them only)"
    )
    delete = what.add_parser("delete", help="delete a group that has no members")
    delete.add_argument("group")
    for parser in (listing, describe, reset, delete):
        add_connection_arguments(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    body = {
        "list": _list,
        "describe": _describe,
        "reset-offsets": _reset_offsets,
        "delete": _delete,
    }[args.group_command]
    return run_command(f"group {args.group_command}", lambda: body(args))


def state_name(state: Any) -> str:
    return _STATES.get(state.name, state.name) if state is not None else "Unknown"


def _list(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    result = answer(admin.list_consumer_groups(), "list groups")
    if result.errors:
        raise CommandError(f"list groups: {result.errors[0]}")
    groups = sorted(
        ({"group": g.group_id, "state": state_name(g.state)} for g in result.valid),
        key=lambda g: g["group"],
    )
    if args.output == "json":
        print_json({"groups": groups})
    else:
        print_table(("GROUP", "STATE"), [(g["group"], g["state"]) for g in groups])
    return 0


def _description(admin: Any, group: str) -> Any:
    return answer(admin.describe_consumer_groups([group])[group], f"group {group!r}")


def _committed(admin: Any, group: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = [ConsumerGroupTopicPartitions(group)]
    result = answer(admin.list_consumer_group_offsets(request)[group], f"group {group!r} offsets")
    return {
        (tp.topic, tp.partition): tp.offset
        for tp in result.topic_partitions
        if tp.error is None and tp.offset >= 0
    }


def _describe(args: argparse.Namespace) -> int:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin, _ = connect_admin(args)
    description = _description(admin, args.group)
    committed = _committed(admin, args.group)
    state = state_name(description.state)
    if state == "Dead" and not committed:
        raise CommandError(f"group {args.group!r} does not exist")
    owner: dict[tuple[str, int], Any] = {}
    for member in description.members:
        assigned = member.assignment.topic_partitions if member.assignment else []
        for tp in assigned:
            owner[(tp.topic, tp.partition)] = member
    keys = sorted(set(committed) | set(owner))
    ends = log_offsets(admin, [TopicPartition(t, p) for t, p in keys], OffsetSpec.latest())
    partitions = []
    for key in keys:
        offset = committed.get(key)
        end = ends[key]
        member = owner.get(key)
        partitions.append(
            {
                "topic": key[0],
                "partition": key[1],
                "committed_offset": offset,
                "log_end_offset": end,
                "lag": None if offset is None else max(end - offset, 0),
                "member_id": member.member_id if member else None,
                "client_id": member.client_id if member else None,
                "host": member.host if member else None,
            }
        )
    members = [
        {
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "host": m.host,
            "assignment": sorted(
                [tp.topic, tp.partition]
                for tp in (m.assignment.topic_partitions if m.assignment else [])
            ),
        }
        for m in sorted(description.members, key=lambda m: m.member_id)
    ]
    coordinator = description.coordinator.id if description.coordinator else None
    if args.output == "json":
        print_json(
            {
                "group": args.group,
                "state": state,
                "coordinator": coordinator,
                "assignor": description.partition_assignor or None,
                "members": members,
                "partitions": partitions,
            }
        )
        return 0
    print_table(
        ("GROUP", "STATE", "COORDINATOR", "ASSIGNOR", "MEMBERS"),
        [
            (
                args.group,
                state,
                "-" if coordinator is None else coordinator,
                description.partition_assignor or "-",
                len(members),
            )
        ],
    )
    print()

    def cell(value: object) -> object:
        return "-" if value is None else value

    print_table(
        (
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ),
        [
            tuple(
                cell(p[name])
                for name in (
                    "topic",
                    "partition",
                    "committed_offset",
                    "log_end_offset",
                    "lag",
                    "member_id",
                    "host",
                    "client_id",
                )
            )
            for p in partitions
        ],
    )
    return 0


def parse_datetime_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time (UTC unless it says)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--to-datetime {text!r}: not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def topic_partitions(spec: str, metadata: Any) -> list[tuple[str, int]]:
    """`TOPIC` (all its partitions) or `TOPIC:0,2` as (topic, partition) pairs."""
    name, _, listed = spec.partition(":")
    topic = metadata.topics.get(name)
    if topic is None or topic.error is not None:
        error = f": {topic.error.name()}" if topic is not None else ""
        raise CommandError(f"topic {name!r} does not exist{error}")
    if not listed:
        return [(name, p) for p in sorted(topic.partitions)]
    try:
        wanted = [int(p) for p in listed.split(",")]
    except ValueError:
        raise ConfigError(f"--topic {spec!r}: partitions are numbers, e.g. {name}:0,1") from None
    missing = [p for p in wanted if p not in topic.partitions]
    if missing:
        raise CommandError(f"topic {name!r} has no partition {missing[0]}")
    return [(name, p) for p in sorted(set(wanted))]


def _reset_offsets(args: argparse.Namespace) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    when_ms = parse_datetime_ms(args.to_datetime) if args.to_datetime else None
    admin, _ = connect_admin(args)
    metadata = admin.list_topics(args.topic.partition(":")[0], timeout=10.0)
    wanted = topic_partitions(args.topic, metadata)
    description = _description(admin, args.group)
    if description.members:
        # Kafka's own refusal: a live member would commit over the reset.
        raise CommandError(
            f"assignments can only be reset if the group {args.group!r} is inactive, but "
            f"the current state is {state_name(description.state)} "
            f"({len(description.members)} members)"
        )
    partitions = [TopicPartition(t, p) for t, p in wanted]
    starts = log_offsets(admin, partitions, OffsetSpec.earliest())
    ends = log_offsets(admin, partitions, OffsetSpec.latest())
    if args.to_earliest:
        targets = {key: starts[key] for key in wanted}
    elif args.to_latest:
        targets = {key: ends[key] for key in wanted}
    elif args.to_offset is not None:
        # As Kafka's tool: an offset outside the log is moved to its nearer end.
        targets = {key: min(max(args.to_offset, starts[key]), ends[key]) for key in wanted}
    else:
        assert when_ms is not None
        found = log_offsets(admin, partitions, OffsetSpec.for_timestamp(when_ms))
        # No record at or after the time: the log end, as Kafka's tool does.
        targets = {key: found[key] if found[key] >= 0 else ends[key] for key in wanted}
    if args.execute:
        request = ConsumerGroupTopicPartitions(
            args.group, [TopicPartition(t, p, targets[(t, p)]) for t, p in wanted]
        )
        result = answer(
            admin.alter_consumer_group_offsets([request])[args.group], f"group {args.group!r}"
        )
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise CommandError(
                    f"group {args.group!r} topic {tp.topic!r} partition {tp.partition}: "
                    f"{tp.error.name()} ({tp.error.str()})"
                )
    offsets = [{"topic": t, "partition": p, "offset": targets[(t, p)]} for t, p in wanted]
    if args.output == "json":
        print_json({"group": args.group, "executed": args.execute, "offsets": offsets})
        return 0
    print_table(
        ("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"),
        [(args.group, o["topic"], o["partition"], o["offset"]) for o in offsets],
    )
    if not args.execute:
        print("\n(dry run: nothing committed; add --execute to commit these offsets)")
    return 0


def _delete(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    answer(admin.delete_consumer_groups([args.group])[args.group], f"group {args.group!r}")
    if args.output == "json":
        print_json({"deleted": [args.group]})
    else:
        print_table(("GROUP", "STATUS"), [(args.group, "OK")])
    return 0
