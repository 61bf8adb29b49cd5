"""`contextplane user list|set|delete`: SCRAM users of a running Kafka cluster, as
`kafka-configs.sh --entity-type users` and `rpk acl user` manage them
(DescribeUserScramCredentials, AlterUserScramCredentials). A running contextplane broker
applies a change at once. `contextplane users` (plural) is the offline form that writes a
stopped broker's data directory, for the first super user."""

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
from contextplane.cli.passwords import read_password

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# Kafka's bounds on PBKDF2 iterations (ScramMechanism's minIterations and maxIterations).
MIN_ITERATIONS, MAX_ITERATIONS, DEFAULT_ITERATIONS = 4096, 16384, 8192


def add_parser(sub: Any) -> None:
    user = sub.add_parser("user", help="SCRAM users of a running cluster")
    what = user.add_subparsers(dest="user_command", required=True)
    listed = what.add_parser("list", help="users and their mechanisms (all, or those named)")
    listed.add_argument("names", nargs="*", metavar="name")
    change = what.add_parser("set", help="create a user or change its password")
    delete = what.add_parser("delete", help="delete a user's credentials")
    for parser in (change, delete):
        parser.add_argument("name", help="the user name (the principal is User:<name>)")
        parser.add_argument(
            "--mechanism",
            action="append",
            choices=MECHANISMS,
            help="SCRAM-SHA-256 and/or SCRAM-SHA-512 (default: both)",
        )
    change.add_argument(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"PBKDF2 iterations, {MIN_ITERATIONS}-{MAX_ITERATIONS} (default {DEFAULT_ITERATIONS})",
    )
    change.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    for parser in (listed, change, delete):
        add_connection_arguments(parser)
        add_output_argument(parser)


def run(args: argparse.Namespace) -> int:
    body = {"list": _list, "set": _set, "delete": _delete}[args.user_command]
    return run_command(f"user {args.user_command}", lambda: body(args))


def _mechanism(name: str) -> Any:
    from confluent_kafka.admin import ScramMechanism

    return ScramMechanism[name.replace("-", "_")]


def _list(args: argparse.Namespace) -> int:
    admin, _ = connect_admin(args)
    if args.names:
        futures = admin.describe_user_scram_credentials(args.names)
        found = {name: answer(futures[name], f"user {name!r}") for name in args.names}
    else:
        found = answer(admin.describe_user_scram_credentials(), "users")
    users = [
        {
            "user": name,
            "credentials": [
                {"mechanism": info.mechanism.name.replace("_", "-"), "iterations": info.iterations}
                for info in description.scram_credential_infos
            ],
        }
        for name, description in sorted(found.items())
    ]
    if args.output == "json":
        print_json({"users": users})
    else:
        print_table(
            ("USER", "MECHANISM", "ITERATIONS"),
            [(u["user"], c["mechanism"], c["iterations"]) for u in users for c in u["credentials"]],
        )
    return 0


def _set(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import ScramCredentialInfo, UserScramCredentialUpsertion

    if not args.name:
        raise ConfigError("the user name must not be empty")
    if not MIN_ITERATIONS <= args.iterations <= MAX_ITERATIONS:
        raise ConfigError(f"--iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}")
    try:
        password = read_password(args.password_stdin)
    except EOFError:
        raise ConfigError("no password given") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not password:
        raise ConfigError("the password must not be empty")
    mechanisms = args.mechanism or list(MECHANISMS)
    changes = [
        UserScramCredentialUpsertion(
            args.name, ScramCredentialInfo(_mechanism(m), args.iterations), password.encode()
        )
        for m in mechanisms
    ]
    return _alter(args, changes, mechanisms, "set")


def _delete(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import UserScramCredentialDeletion

    mechanisms = args.mechanism or list(MECHANISMS)
    if not args.mechanism:
        # Deleting a mechanism the user does not have is an error in Kafka: delete only
        # those it has when none is named.
        admin, _ = connect_admin(args)
        future = admin.describe_user_scram_credentials([args.name])[args.name]
        description = answer(future, f"user {args.name!r}")
        mechanisms = [
            info.mechanism.name.replace("_", "-") for info in description.scram_credential_infos
        ]
    changes = [UserScramCredentialDeletion(args.name, _mechanism(m)) for m in mechanisms]
    return _alter(args, changes, mechanisms, "deleted")


def _alter(args: argparse.Namespace, changes: list[Any], mechanisms: list[str], done: str) -> int:
    admin, _ = connect_admin(args)
    # One request per mechanism: Kafka's controller (ScramControlManager) refuses a request
    # that names a user twice, even for two mechanisms, with DUPLICATE_RESOURCE.
    for change in changes:
        answer(admin.alter_user_scram_credentials([change])[args.name], f"user {args.name!r}")
    if args.output == "json":
        print_json({"user": args.name, done: sorted(mechanisms)})
    else:
        print_table(("USER", "MECHANISM", "ACTION"), [(args.name, m, done) for m in mechanisms])
    return 0
