"""`contextplane quota describe|alter`: client quotas (KIP-546) of any Kafka cluster, as
`kafka-configs.sh --user/--client/--ip ... --describe|--alter` shows and changes them
(DescribeClientQuotas, AlterClientQuotas, spoken through cli/protocol_admin.py).

An entity is a user, a client id, both (a user's clients), or an IP, each named or the
type's default. `describe` with entity options lists the entities made of exactly those
(Kafka's tool asks with a strict filter: `--user alice` is not `--user alice --client
c1`); without any it lists every quota. `alter` checks what Kafka's tool checks before
sending (`--add KEY=VALUE,...` with decimal values, a deleted key that is set); the
broker checks the rest (keys, ranges, entity types) and its error is shown.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from contextplane.cli.kafka_client import CommandError, ConfigError, run_command
from contextplane.cli.kafka_client import add_connection_arguments as add_connection
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.cli.protocol_admin import connect, response_error, send

USER, CLIENT_ID, IP = "user", "client-id", "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)
DEFAULT = "<default>"
# Kafka's ConfigCommand: config keys are these characters; values parse as a double
# (decimal notation here: no hexadecimal, NaN or Infinity).
_KEY = re.compile(r"[$a-zA-Z0-9._-]*")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# DescribeClientQuotas match types.
_MATCH_EXACT, _MATCH_DEFAULT = 0, 1

# A quota entity: (type, name) pairs in ENTITY_TYPES order; name None is the default.
Entity = tuple[tuple[str, str | None], ...]


def add_parser(sub: Any) -> None:
    quota = sub.add_parser("quota", help="describe and alter client quotas (users, clients, IPs)")
    what = quota.add_subparsers(dest="quota_command", required=True)
    describe = what.add_parser("describe", help="the quotas of an entity (all without one)")
    alter = what.add_parser("alter", help="set or delete an entity's quotas")
    for parser in (describe, alter):
        for flag, kind, every in (
            ("user", "user principal name", "users"),
            ("client", "client id", "client ids"),
            ("ip", "IP address", "IP addresses"),
        ):
            entity = parser.add_mutually_exclusive_group()
            entity.add_argument(f"--{flag}", metavar="NAME", help=f"the {kind}")
            entity.add_argument(
                f"--{flag}-default", action="store_true", help=f"the default for all {every}"
            )
        add_connection(parser)
        add_output_argument(parser)
    alter.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="KEY=VALUE,...",
        help="quotas to set, e.g. producer_byte_rate=1048576,request_percentage=50",
    )
    alter.add_argument(
        "--delete", action="append", default=[], metavar="KEY,...", help="quotas to remove"
    )
    alter.add_argument(
        "--validate-only", action="store_true", help="have the broker check, change nothing"
    )


def run(args: argparse.Namespace) -> int:
    body = {"describe": _describe, "alter": _alter}[args.quota_command]
    return run_command(f"quota {args.quota_command}", lambda: body(args))


def entity_of(args: argparse.Namespace) -> Entity:
    """The entity the options name (empty when none); ConfigError for one Kafka refuses
    to combine or an empty name."""
    pairs: list[tuple[str, str | None]] = []
    for flag, entity_type in (("user", USER), ("client", CLIENT_ID), ("ip", IP)):
        name = getattr(args, flag)
        if name is not None:
            if not name:
                raise ConfigError(f"--{flag} needs a name (--{flag}-default for the default)")
            pairs.append((entity_type, name))
        elif getattr(args, f"{flag}_default"):
            pairs.append((entity_type, None))
    if any(t == IP for t, _ in pairs) and len(pairs) > 1:
        raise ConfigError("--ip cannot be combined with --user or --client (Kafka's rule)")
    return tuple(pairs)


def entity_text(entity: Entity) -> str:
    """`user=alice, client-id=<default>`, as Kafka writes an entity."""
    return ", ".join(f"{t}={DEFAULT if n is None else n}" for t, n in entity)


def parse_additions(items: list[str]) -> dict[str, float]:
    """`--add KEY=VALUE,...` (repeatable) as Kafka's tool parses `--add-config`: pairs
    split on commas, spaces around `=` and values ignored, the last of a key kept."""
    values: dict[str, float] = {}
    for item in items:
        for pair in item.split(","):
            parts = re.split(r"\s*=\s*", pair)
            if len(parts) != 2 or not parts[0].strip():
                raise ConfigError(f"--add expects KEY=VALUE[,KEY=VALUE...], got {item!r}")
            key, text = parts[0].strip(), parts[1].strip()
            if not _KEY.fullmatch(key):
                raise ConfigError(f"Invalid character found for config key: {key}")
            if not _DECIMAL.fullmatch(text):
                raise ConfigError(f"Cannot parse quota configuration value for {key}: {text}")
            values[key] = float(text)
    return values


def parse_deletions(items: list[str]) -> list[str]:
    keys = [key.strip() for item in items for key in item.split(",")]
    if any(not key for key in keys):
        raise ConfigError(f"--delete expects KEY[,KEY...], got {','.join(items)!r}")
    return list(dict.fromkeys(keys))


def shown(value: float) -> int | float:
    """A quota value as written: whole numbers without a fraction (Kafka keeps doubles)."""
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


def _entity_order(entity: Entity) -> tuple[tuple[int, str], ...]:
    names = dict(entity)
    return tuple(
        (0, "")
        if entity_type not in names
        else (1, "")
        if names[entity_type] is None
        else (2, str(names[entity_type]))
        for entity_type in ENTITY_TYPES
    )


def _normalised(pairs: Any) -> Entity:
    names = {pair.entity_type: pair.entity_name for pair in pairs}
    return tuple((t, names[t]) for t in ENTITY_TYPES if t in names) + tuple(
        (t, n) for t, n in sorted(names.items()) if t not in ENTITY_TYPES
    )


def describe_quotas(admin: Any, entity: Entity) -> list[tuple[Entity, dict[str, float]]]:
    """Every entity made of exactly `entity`'s types and names (all quotas when empty),
    with its values, in a stable order."""
    from kafka.protocol.admin import DescribeClientQuotasRequest

    component = DescribeClientQuotasRequest.ComponentData
    request = DescribeClientQuotasRequest(
        components=[
            component(entity_type=t, match_type=_MATCH_EXACT, match=n)
            if n is not None
            else component(entity_type=t, match_type=_MATCH_DEFAULT, match=None)
            for t, n in entity
        ],
        # kafka-configs.sh's ClientQuotaFilter.containsOnly; no component: every entity.
        strict=bool(entity),
    )
    what = f"quotas of {entity_text(entity)}" if entity else "quotas"
    response = send(admin, request, what)
    response_error(response.error_code, response.error_message, what)
    found = [
        (_normalised(entry.entity), {value.key: value.value for value in entry.values})
        for entry in response.entries or []
    ]
    return sorted(found, key=lambda item: _entity_order(item[0]))


def _entity_document(entity: Entity) -> dict[str, str | None]:
    return dict(entity)


def _cell(entity: Entity, entity_type: str) -> str:
    names = dict(entity)
    if entity_type not in names:
        return "-"
    name = names[entity_type]
    return DEFAULT if name is None else name


def _describe(args: argparse.Namespace) -> int:
    entity = entity_of(args)
    admin = connect(args)
    try:
        found = describe_quotas(admin, entity)
    finally:
        admin.close()
    if args.output == "json":
        print_json(
            {
                "quotas": [
                    {
                        "entity": _entity_document(e),
                        "values": {key: shown(value) for key, value in values.items()},
                    }
                    for e, values in found
                ]
            }
        )
        return 0
    print_table(
        ("USER", "CLIENT-ID", "IP", "QUOTA", "VALUE"),
        [
            (_cell(e, USER), _cell(e, CLIENT_ID), _cell(e, IP), key, shown(value))
            for e, values in found
            for key, value in sorted(values.items())
        ],
    )
    return 0


def _alter(args: argparse.Namespace) -> int:
    entity = entity_of(args)
    if not entity:
        raise ConfigError("name an entity: --user, --client or --ip (or their --*-default)")
    additions = parse_additions(args.add)
    deletions = parse_deletions(args.delete)
    if not additions and not deletions:
        raise ConfigError("give at least one --add KEY=VALUE or --delete KEY")
    both = set(additions) & set(deletions)
    if both:
        raise ConfigError(f"{', '.join(sorted(both))}: both --add and --delete")
    label = entity_text(entity)
    admin = connect(args)
    try:
        if deletions:
            # Kafka's tool refuses to delete a quota that is not set, naming it.
            current = dict(describe_quotas(admin, entity)).get(entity, {})
            absent = [key for key in deletions if key not in current]
            if absent:
                raise CommandError(f"{label}: Invalid config(s): {','.join(absent)}")
        _send_alteration(admin, entity, additions, deletions, args.validate_only)
    finally:
        admin.close()
    values = {key: shown(value) for key, value in additions.items()}
    if args.output == "json":
        print_json(
            {
                "entity": _entity_document(entity),
                "set": values,
                "deleted": sorted(deletions),
                "validate_only": args.validate_only,
            }
        )
        return 0
    print_table(
        ("QUOTA", "ACTION", "VALUE"),
        [(key, "set", value) for key, value in values.items()]
        + [(key, "deleted", "-") for key in deletions],
    )
    if args.validate_only:
        print("\nNothing changed: the broker accepts this alteration (--validate-only).")
    return 0


def _send_alteration(
    admin: Any,
    entity: Entity,
    additions: dict[str, float],
    deletions: list[str],
    validate_only: bool,
) -> None:
    from kafka.protocol.admin import AlterClientQuotasRequest

    entry = AlterClientQuotasRequest.EntryData
    request = AlterClientQuotasRequest(
        entries=[
            entry(
                entity=[entry.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                ops=[entry.OpData(key=k, value=v, remove=False) for k, v in additions.items()]
                + [entry.OpData(key=k, value=0.0, remove=True) for k in deletions],
            )
        ],
        validate_only=validate_only,
    )
    label = entity_text(entity)
    response = send(admin, request, label)
    for answered in response.entries:
        response_error(answered.error_code, answered.error_message, label)
