"""`contextplane group reset-offsets GROUP`: `kafka-consumer-groups.sh --reset-offsets` over
confluent-kafka's AdminClient (the committed offsets read through kafka-python:
`group_committed.py`; a coordinator not ready yet asked again), with its scopes
(`--topic`, repeatable, or `--all-topics`: every partition the group has committed offsets
for), its scenarios and their rules:
`--to-offset` and `--shift-by` are moved into the log (its start or end), `--to-datetime`
and `--by-duration` go to the log end where no record is that late, `--shift-by` needs a
committed offset, and only an Empty or Dead (unknown) group is reset. A dry run unless
`--execute`."""

from __future__ import annotations

import argparse
from typing import Any

from contextplane.cli import group_committed
from contextplane.cli.kafka_client import (
    CommandError,
    ConfigError,
    answer,
    config_from_arguments,
    connect_admin,
)
from contextplane.cli.output import print_json, print_table
from contextplane.cli.times import parse_datetime_ms, parse_duration_ms
from contextplane.cli.topic import log_offsets
from contextplane.clock import SystemClock

# The states Kafka's tool resets; any other has (or is getting) members that would
# commit over the reset.
_INACTIVE = ("Empty", "Dead")

Partition = tuple[str, int]

# librdkafka's ConsumerGroupState names, as Kafka writes the states.
_STATES = {
    "UNKNOWN": "Unknown",
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
    "STABLE": "Stable",
    "DEAD": "Dead",
    "EMPTY": "Empty",
}


def state_name(state: Any) -> str:
    return _STATES.get(state.name, state.name) if state is not None else "Unknown"


def add_arguments(reset: argparse.ArgumentParser) -> None:
    reset.add_argument("group")
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC[:P,...]",
        help="a topic, all its partitions or those listed (repeatable, as Kafka's tool)",
    )
    scope.add_argument(
        "--all-topics",
        action="store_true",
        help="every partition the group has committed offsets for",
    )
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="each partition's log start")
    to.add_argument("--to-latest", action="store_true", help="each partition's log end")
    to.add_argument(
        "--to-current", action="store_true", help="the committed offset (log end where none)"
    )
    to.add_argument("--to-offset", type=int, metavar="N", help="N, within each partition's log")
    to.add_argument(
        "--shift-by",
        type=int,
        metavar="N",
        help="the committed offset plus N (negative: back), within the log",
    )
    to.add_argument(
        "--to-datetime",
        metavar="ISO",
        help="the first offset at or after this time (ISO 8601, UTC unless given)",
    )
    to.add_argument(
        "--by-duration",
        metavar="PnDTnHnMnS",
        help="the first offset at or after now minus this duration (e.g. PT1H30M, P1D)",
    )
    run = reset.add_mutually_exclusive_group()
    run.add_argument(
        "--execute", action="store_true", help="commit the offsets (default: show them only)"
    )
    run.add_argument("--dry-run", action="store_true", help="show the offsets only (the default)")


def topic_partitions(spec: str, metadata: Any) -> list[Partition]:
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


def describe(admin: Any, group: str) -> Any:
    """`group`'s description (DescribeGroups or ConsumerGroupDescribe), asked again while
    its coordinator is loading or moving (Kafka just started answers NOT_COORDINATOR)."""
    return group_committed.coordinator_ready(
        lambda: answer(admin.describe_consumer_groups([group])[group], f"group {group!r}")
    )


def committed_offsets(args: argparse.Namespace, group: str) -> dict[Partition, int]:
    """Every offset `group` has committed, read by OffsetFetch through kafka-python
    (`group_committed.py` says why not by confluent-kafka's AdminClient)."""
    fetched = group_committed.connected(
        config_from_arguments(args),
        lambda admin: group_committed.committed(admin, group, None, f"group {group!r} offsets"),
    )
    return {key: found.offset for key, found in fetched.items() if found.offset >= 0}


def _when_ms(args: argparse.Namespace) -> int | None:
    """The time a time-based scenario asks for; its argument checked before connecting."""
    if args.to_datetime is not None:
        return parse_datetime_ms(args.to_datetime, "--to-datetime")
    if args.by_duration is not None:
        # A duration reaching before 1970 asks for the first timestamped record.
        return max(SystemClock().wall_ms() - parse_duration_ms(args.by_duration), 0)
    return None


def run(args: argparse.Namespace) -> int:
    when_ms = _when_ms(args)
    admin, _ = connect_admin(args)
    description = describe(admin, args.group)
    state = state_name(description.state)
    if state not in _INACTIVE:
        raise CommandError(
            f"Assignments can only be reset if the group '{args.group}' is inactive, "
            f"but the current state is {state}."
        )
    committed = committed_offsets(args, args.group)
    if args.all_topics:
        wanted = sorted(committed)
    else:
        names = sorted({spec.partition(":")[0] for spec in args.topic})
        metadata = admin.list_topics(names[0] if len(names) == 1 else None, timeout=10.0)
        wanted = sorted({key for spec in args.topic for key in topic_partitions(spec, metadata)})
    targets = _targets(admin, args, wanted, committed, when_ms)
    if args.execute and wanted:
        group_committed.coordinator_ready(lambda: _commit(admin, args.group, targets))
    _print(args, wanted, targets)
    return 0


def _targets(
    admin: Any,
    args: argparse.Namespace,
    wanted: list[Partition],
    committed: dict[Partition, int],
    when_ms: int | None,
) -> dict[Partition, int]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    partitions = [TopicPartition(t, p) for t, p in wanted]
    starts = log_offsets(admin, partitions, OffsetSpec.earliest())
    ends = log_offsets(admin, partitions, OffsetSpec.latest())

    def within_log(offset: int, key: Partition) -> int:
        # Kafka's checkOffsetsRange: past the end is the end, before the start the start.
        return starts[key] if offset < starts[key] else min(offset, ends[key])

    if args.to_earliest:
        return {key: starts[key] for key in wanted}
    if args.to_latest:
        return {key: ends[key] for key in wanted}
    if args.to_current:
        return {key: committed.get(key, ends[key]) for key in wanted}
    if args.to_offset is not None:
        return {key: within_log(args.to_offset, key) for key in wanted}
    if args.shift_by is not None:
        for topic, partition in wanted:
            if (topic, partition) not in committed:
                # Kafka's tool prints its usage here: the request cannot be met as asked.
                raise ConfigError(
                    f"Cannot shift offset for partition {topic}-{partition} since there is "
                    "no current committed offset"
                )
        return {key: within_log(committed[key] + args.shift_by, key) for key in wanted}
    assert when_ms is not None
    found = log_offsets(admin, partitions, OffsetSpec.for_timestamp(when_ms))
    # No record at or after the time: the log end, as Kafka's tool does.
    return {key: found[key] if found[key] >= 0 else ends[key] for key in wanted}


def _commit(admin: Any, group: str, targets: dict[Partition, int]) -> None:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, p, offset) for (t, p), offset in sorted(targets.items())]
    )
    result = answer(admin.alter_consumer_group_offsets([request])[group], f"group {group!r}")
    for tp in result.topic_partitions:
        if tp.error is not None:
            raise CommandError(
                f"group {group!r} topic {tp.topic!r} partition {tp.partition}: "
                f"{tp.error.name()} ({tp.error.str()})"
            )


def _print(
    args: argparse.Namespace, wanted: list[Partition], targets: dict[Partition, int]
) -> None:
    offsets = [{"topic": t, "partition": p, "offset": targets[(t, p)]} for t, p in wanted]
    if args.output == "json":
        print_json({"group": args.group, "executed": args.execute, "offsets": offsets})
        return
    print_table(
        ("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"),
        [(args.group, o["topic"], o["partition"], o["offset"]) for o in offsets],
    )
    if not args.execute:
        print("\n(dry run: nothing committed; add --execute to commit these offsets)")
