"""`contextplane config describe|alter broker|topic|group NAME`: the configs of any Kafka
cluster's brokers, topics and groups, as `kafka-configs.sh --entity-type ...` shows and
changes them (DescribeConfigs, IncrementalAlterConfigs); `describe` shows the configs set
dynamically unless `--all` is given, as `kafka-configs.sh` does.

The cluster-wide broker default (`kafka-configs.sh --entity-default`, the broker resource
named "") is not offered: librdkafka refuses a config resource with an empty name."""

from __future__ import annotations

import argparse
from typing import Any

from contextplane.cli.kafka_client import (
    ConfigError,
    add_connection_arguments,
    answer,
    connect_admin,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table

ENTITIES = ("broker", "topic", "group")
# Sources of a config set on the resource itself rather than taken from a file or default.
_SET_HERE = (
    "DYNAMIC_TOPIC_CONFIG",
    "DYNAMIC_BROKER_CONFIG",
    "DYNAMIC_DEFAULT_BROKER_CONFIG",
    "GROUP_CONFIG",
)


def add_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="describe and alter broker, topic and group configs")
    what = config.add_subparsers(dest="config_command", required=True)
    describe = what.add_parser("describe", help="the configs of a broker, topic or group")
    alter = what.add_parser("alter", help="set or delete configs (IncrementalAlterConfigs)")
    for parser in (describe, alter):
        parser.add_argument("entity", choices=ENTITIES)
        parser.add_argument("name", help="broker id, topic or group name")
        add_connection_arguments(parser)
        add_output_argument(parser)
    describe.add_argument(
        "--all", action="store_true", help="every config, with defaults and static ones"
    )
    add_change_arguments(alter)


def add_change_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--delete", action="append", default=[], metavar="NAME", help="back to the default"
    )


def run(args: argparse.Namespace) -> int:
    body = {"describe": _describe, "alter": _alter}[args.config_command]
    return run_command(f"config {args.config_command}", lambda: body(args))


def _resource_name(args: argparse.Namespace) -> str:
    if args.entity == "broker" and not args.name.isdigit():
        raise ConfigError(f"a broker is named by its node id, got {args.name!r}")
    return str(args.name)


def _label(entity: str, name: str) -> str:
    return f"{entity} {name!r}"


def _describe(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import ConfigResource, ResourceType

    name = _resource_name(args)
    admin, _ = connect_admin(args)
    resource = ConfigResource(ResourceType[args.entity.upper()], name)
    entries = answer(admin.describe_configs([resource])[resource], _label(args.entity, name))
    rows = [
        {
            "name": config,
            "value": entry.value,
            "source": source_name(entry.source),
            "read_only": bool(entry.is_read_only),
            "sensitive": bool(entry.is_sensitive),
        }
        for config, entry in sorted(entries.items())
    ]
    if not args.all:
        rows = [row for row in rows if row["source"] in _SET_HERE]
    if args.output == "json":
        print_json({"entity": args.entity, "name": name, "configs": rows})
        return 0
    print_table(
        ("CONFIG", "VALUE", "SOURCE", "READ-ONLY"),
        [
            (
                row["name"],
                "(sensitive)"
                if row["sensitive"]
                else "(null)"
                if row["value"] is None
                else row["value"],
                row["source"],
                str(row["read_only"]).lower(),
            )
            for row in rows
        ],
    )
    return 0


def source_name(source: int) -> str:
    from confluent_kafka.admin import ConfigSource

    try:
        return str(ConfigSource(source).name)
    except ValueError:
        return f"SOURCE_{source}"


def incremental_changes(args: argparse.Namespace) -> tuple[dict[str, str], list[Any]]:
    """`--set NAME=VALUE` and `--delete NAME` as IncrementalAlterConfigs operations; the
    values set, by name. ConfigError (exit 2) when there is nothing to do or a name is both
    set and deleted."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    values = name_values(args.set, "--set")
    if not values and not args.delete:
        raise ConfigError("give at least one --set NAME=VALUE or --delete NAME")
    both = set(values) & set(args.delete)
    if both:
        raise ConfigError(f"{', '.join(sorted(both))}: both --set and --delete")
    changes = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in values.items()
    ] + [
        ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)
        for name in args.delete
    ]
    return values, changes


def print_changes(
    document: dict[str, Any], values: dict[str, str], deleted: list[str], output: str
) -> None:
    if output == "json":
        print_json(document | {"set": values, "deleted": sorted(deleted)})
        return
    print_table(
        ("CONFIG", "ACTION", "VALUE"),
        [(name, "set", value) for name, value in values.items()]
        + [(name, "deleted", "-") for name in deleted],
    )


def name_values(items: list[str], flag: str) -> dict[str, str]:
    """`NAME=VALUE` arguments as a dict; ConfigError (exit 2) for one without `=`."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"{flag} expects NAME=VALUE, got {item!r}")
        values[name] = value
    return values


def _alter(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import ConfigResource, ResourceType

    name = _resource_name(args)
    values, changes = incremental_changes(args)
    admin, _ = connect_admin(args)
    resource = ConfigResource(ResourceType[args.entity.upper()], name, incremental_configs=changes)
    answer(admin.incremental_alter_configs([resource])[resource], _label(args.entity, name))
    print_changes({"entity": args.entity, "name": name}, values, args.delete, args.output)
    return 0
