"""`contextplane group list|describe|reset-offsets|delete`: consumer groups of any Kafka
cluster through confluent-kafka's AdminClient (committed offsets read through kafka-python:
`group_committed.py`), as `kafka-consumer-groups.sh` and `rpk group` show and change them:
lag per partition, offsets reset (a dry run unless `--execute`, refused while the group
has members)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from contextplane.cli import group_reset
from contextplane.cli.group_reset import state_name
from contextplane.cli.kafka_client import (
    CommandError,
    add_connection_arguments,
    answer,
    connect_admin,
    run_command,
)
from contextplane.cli.list_offsets import CONNECT_PROBE_S, listening
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.topic import log_offsets


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
    group_reset.add_arguments(reset)
    delete = what.add_parser("delete", help="delete a group that has no members")
    delete.add_argument("group")
    for parser in (listing, describe, reset, delete):
        add_connection_arguments(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    body = {
        "list": _list,
        "describe": _describe,
        "reset-offsets": group_reset.run,
        "delete": _delete,
    }[args.group_command]
    return run_command(f"group {args.group_command}", lambda: body(args))


def _list(args: argparse.Namespace) -> int:
    admin, metadata = connect_admin(args)
    brokers = dict(metadata.brokers)
    reachable = listening(brokers, CONNECT_PROBE_S)
    if len(reachable) < len(brokers):
        groups = _listed_by(args, sorted(reachable), sorted(set(brokers) - reachable))
    else:
        result = answer(admin.list_consumer_groups(), "list groups")
        if result.errors:
            raise CommandError(f"list groups: {result.errors[0]}")
        groups = [{"group": g.group_id, "state": state_name(g.state)} for g in result.valid]
    groups.sort(key=lambda g: g["group"])
    if args.output == "json":
        print_json({"groups": groups})
    else:
        print_table(("GROUP", "STATE"), [(g["group"], g["state"]) for g in groups])
    return 0


def _listed_by(args: argparse.Namespace, nodes: list[int], away: list[int]) -> list[dict[str, str]]:
    """The consumer groups of the brokers that take connections (ListGroups to each,
    through kafka-python): librdkafka asks every listed broker and, for one refusing
    connections (killed, its lease not lapsed yet), reconnects without back-off until
    its 30 s timeout. The others' groups, whose coordinator is moving, are not listed."""
    from contextplane.cli import protocol_admin

    listed = ", ".join(map(str, away))
    they = "the groups they coordinate are" if len(away) > 1 else "the groups it coordinates are"
    print(
        f"broker{'s' if len(away) > 1 else ''} {listed} not reachable: {they} not listed",
        file=sys.stderr,
    )
    admin = protocol_admin.connect(args)
    try:
        found = admin.list_groups(broker_ids=nodes, types_filter=["classic", "consumer"])
    except Exception as exc:  # noqa: BLE001 - kafka-python's errors, named
        raise CommandError(f"list groups: {exc}") from None
    finally:
        admin.close()
    return [
        {"group": str(g["group_id"]), "state": str(g.get("group_state") or "Unknown")}
        for g in found
    ]


def _describe(args: argparse.Namespace) -> int:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin, _ = connect_admin(args)
    description = group_reset.describe(admin, args.group)
    committed = group_reset.committed_offsets(args, args.group)
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


def _delete(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    answer(admin.delete_consumer_groups([args.group])[args.group], f"group {args.group!r}")
    if args.output == "json":
        print_json({"deleted": [args.group]})
    else:
        print_table(("GROUP", "STATUS"), [(args.group, "OK")])
    return 0
