"""`contextplane acl list|create|delete`: the ACLs of any Kafka cluster, as
`kafka-acls.sh` and `rpk acl` manage them (DescribeAcls, CreateAcls, DeleteAcls).

Names as Kafka's tools take them: principals `User:alice`, operations `Read`,
`DescribeConfigs` (any case; `describe-configs` too), pattern types `literal`, `prefixed`
and, to filter, `match` and `any`. `delete` shows what its filter matches and deletes it
only with `--execute`, as `group reset-offsets` does: a filter too wide is seen first.
"""

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
from contextplane.security.subject_acls import acl_name, subject_of

# The resource flags and confluent-kafka's ResourceType for each ("cluster" is BROKER,
# the resource named kafka-cluster).
_RESOURCES = {"topic": "TOPIC", "group": "GROUP", "transactional_id": "TRANSACTIONAL_ID"}
CLUSTER_NAME = "kafka-cluster"
_COLUMNS = (
    "PRINCIPAL",
    "HOST",
    "OPERATION",
    "PERMISSION",
    "RESOURCE-TYPE",
    "RESOURCE-NAME",
    "PATTERN-TYPE",
)


def add_parser(sub: Any) -> None:
    acl = sub.add_parser("acl", help="list, create and delete ACLs")
    what = acl.add_subparsers(dest="acl_command", required=True)
    listed = what.add_parser("list", help="the ACLs a filter matches (all without one)")
    create = what.add_parser("create", help="allow or deny principals operations on a resource")
    delete = what.add_parser("delete", help="delete the ACLs a filter matches (--execute)")
    for parser in (listed, create, delete):
        resource = parser.add_mutually_exclusive_group(required=parser is create)
        resource.add_argument("--topic", metavar="NAME")
        resource.add_argument("--group", metavar="NAME")
        resource.add_argument("--transactional-id", metavar="ID")
        resource.add_argument("--cluster", action="store_true", help="the cluster resource")
        resource.add_argument(
            "--subject",
            metavar="NAME",
            help="a schema registry subject (kept as the topic ACL :subject:NAME)",
        )
        parser.add_argument(
            "--pattern-type",
            choices=("literal", "prefixed")
            if parser is create
            else ("any", "match", "literal", "prefixed"),
            default="literal" if parser is create else "any",
            help="how the resource name matches (create: literal by default; filters: any)",
        )
        parser.add_argument(
            "--host", default="*" if parser is create else None, help="client host (default *)"
        )
        add_connection_arguments(parser)
        add_output_argument(parser)
    for parser in (listed, delete):
        parser.add_argument("--principal", help="e.g. User:alice")
        parser.add_argument("--operation", help="e.g. Read")
        parser.add_argument("--permission", choices=("allow", "deny"))
    create.add_argument("--allow-principal", action="append", default=[], metavar="PRINCIPAL")
    create.add_argument("--deny-principal", action="append", default=[], metavar="PRINCIPAL")
    create.add_argument(
        "--operation", action="append", required=True, help="e.g. Read (repeatable)"
    )
    delete.add_argument("--execute", action="store_true", help="delete (else only show)")


def run(args: argparse.Namespace) -> int:
    body = {"list": _list, "create": _create, "delete": _delete}[args.acl_command]
    return run_command(f"acl {args.acl_command}", lambda: body(args))


def operation(text: str) -> Any:
    """Kafka's operation names (`DescribeConfigs`, `describe-configs`, `DESCRIBE_CONFIGS`)
    as confluent-kafka's AclOperation."""
    from confluent_kafka.admin import AclOperation

    wanted = text.replace("-", "").replace("_", "").lower()
    for member in AclOperation:
        if member.name.replace("_", "").lower() == wanted and member.name != "UNKNOWN":
            return member
    names = ", ".join(
        "".join(part.capitalize() for part in m.name.split("_"))
        for m in AclOperation
        if m.name not in ("UNKNOWN", "ANY")
    )
    raise ConfigError(f"unknown operation {text!r}: one of {names}")


def principal(text: str) -> str:
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise ConfigError(f"a principal is TYPE:NAME, e.g. User:alice, got {text!r}")
    return text


def _resource(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The resource type and name the flags give; (ANY, None) when none is given."""
    from confluent_kafka.admin import ResourceType

    if args.cluster:
        return ResourceType.BROKER, CLUSTER_NAME
    if args.subject is not None:
        if not args.subject:
            raise ConfigError("--subject needs a name")
        return ResourceType.TOPIC, acl_name(args.subject)
    for flag, kind in _RESOURCES.items():
        name = getattr(args, flag)
        if name is not None:
            if not name:
                raise ConfigError(f"--{flag.replace('_', '-')} needs a name")
            return ResourceType[kind], name
    return ResourceType.ANY, None


def _filter(args: argparse.Namespace) -> Any:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
    )

    kind, name = _resource(args)
    # None matches any name, principal or host (confluent-kafka's stubs say str only).
    any_principal: Any = None
    return AclBindingFilter(
        kind,
        name if name is not None else any_principal,
        ResourcePatternType[args.pattern_type.upper()],
        principal(args.principal) if args.principal else any_principal,
        args.host,
        operation(args.operation) if args.operation else AclOperation.ANY,
        AclPermissionType[args.permission.upper()] if args.permission else AclPermissionType.ANY,
    )


def _described(binding: Any) -> dict[str, str]:
    kind = "CLUSTER" if binding.restype.name == "BROKER" else binding.restype.name
    name = binding.name
    subject = subject_of(name) if kind == "TOPIC" else None
    if subject is not None:
        kind, name = "SUBJECT", subject
    return {
        "principal": binding.principal,
        "host": binding.host,
        "operation": binding.operation.name,
        "permission": binding.permission_type.name,
        "resource_type": kind,
        "resource_name": name,
        "pattern_type": binding.resource_pattern_type.name,
    }


def _show(bindings: list[dict[str, str]], output: str, extra: dict[str, Any] | None = None) -> None:
    bindings = sorted(bindings, key=lambda b: tuple(b.values()))
    if output == "json":
        print_json({"acls": bindings} | (extra or {}))
    else:
        print_table(_COLUMNS, [tuple(b.values()) for b in bindings])


def _list(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    found = answer(admin.describe_acls(_filter(args)), "ACLs")
    if not found:
        _check_authorizer(args)
    _show([_described(b) for b in found], args.output)
    return 0


def _check_authorizer(args: argparse.Namespace) -> None:
    """CommandError when the cluster has no authorizer. confluent-kafka answers a
    DescribeAcls refused SECURITY_DISABLED as an empty list, so an empty answer is asked
    again through kafka-python, which shows the response's error code."""
    from kafka.protocol.admin import DescribeAclsRequest

    from contextplane.cli.protocol_admin import connect, response_error, send

    admin = connect(args)
    try:
        match_any = 1  # ANY for resource type, pattern type, operation and permission
        request = DescribeAclsRequest(
            resource_type_filter=match_any,
            resource_name_filter=None,
            pattern_type_filter=match_any,
            principal_filter=None,
            host_filter=None,
            operation=match_any,
            permission_type=match_any,
        )
        response = send(admin, request, "ACLs")
        response_error(response.error_code, response.error_message, "ACLs")
    finally:
        admin.close()


def _create(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AclBinding, AclPermissionType, ResourcePatternType

    if not args.allow_principal and not args.deny_principal:
        raise ConfigError("give at least one --allow-principal or --deny-principal")
    kind, name = _resource(args)
    assert name is not None  # create requires a resource flag
    operations = [operation(text) for text in args.operation]
    if any(op.name == "ANY" for op in operations):
        raise ConfigError("Any is a filter, not an operation an ACL grants")
    pattern = ResourcePatternType[args.pattern_type.upper()]
    bindings = [
        AclBinding(kind, name, pattern, principal(who), args.host, op, permission)
        for permission, who_list in (
            (AclPermissionType.ALLOW, args.allow_principal),
            (AclPermissionType.DENY, args.deny_principal),
        )
        for who in who_list
        for op in operations
    ]
    admin, _ = connect_admin(args)
    futures = admin.create_acls(bindings)
    for binding in bindings:
        answer(futures[binding], f"ACL {binding.principal} on {name!r}")
    _show([_described(b) for b in bindings], args.output)
    return 0


def _delete(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    wanted = _filter(args)
    if not args.execute:
        found = answer(admin.describe_acls(wanted), "ACLs")
        if not found:
            _check_authorizer(args)
        _show([_described(b) for b in found], args.output, {"deleted": False})
        if args.output != "json":
            print("\nNothing deleted: add --execute to delete these ACLs.")
        return 0
    deleted = answer(admin.delete_acls([wanted])[wanted], "ACLs")
    _show([_described(b) for b in deleted], args.output, {"deleted": True})
    return 0
