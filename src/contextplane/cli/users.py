"""`contextplane users add|remove|list`: SCRAM credentials in a data directory's metadata
store, before the broker runs (to create the first super user; later changes go through
AlterUserScramCredentials, e.g. Kafka's kafka-configs, which a running broker applies at
once: a running broker reads this store only when it starts, so `add` and `remove`
refuse while one holds the data directory's lock).

The password is read from the terminal (asked twice) or, with --password-stdin, from
the first line of standard input; never from the command line, where other users of
the machine could read it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from contextplane.cli.passwords import read_password
from contextplane.metadata.store import open_metadata_store
from contextplane.security import scram
from contextplane.settings import SettingsError, load_settings
from contextplane.storage.data_dir_lock import in_use

_MECHANISMS = tuple(scram.MECHANISMS)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="SCRAM users of a data directory (broker stopped)")
    actions = users.add_subparsers(dest="action", required=True)
    for name, text in (
        ("add", "add a user or change its password"),
        ("remove", "remove a user's credentials"),
        ("list", "list users and their mechanisms"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", type=Path, help="the broker's properties file")
        action.add_argument("--data-dir", help="the broker's data directory (default ./data)")
        if name == "list":
            continue
        action.add_argument("name", help="the user name (the principal is User:<name>)")
        action.add_argument(
            "--mechanism",
            action="append",
            choices=_MECHANISMS,
            help="SCRAM-SHA-256 and/or SCRAM-SHA-512 (default: both)",
        )
        if name == "add":
            action.add_argument(
                "--iterations",
                type=int,
                default=scram.DEFAULT_ITERATIONS,
                help=f"PBKDF2 iterations, {scram.SHA_256.min_iterations}-"
                f"{scram.SHA_256.max_iterations} (default {scram.DEFAULT_ITERATIONS})",
            )
            action.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from the first line of standard input",
            )


def _shown(name: str) -> str:
    """A user name as one line of output: control characters escaped (names set through
    AlterUserScramCredentials may hold any character)."""
    return name if name.isprintable() else repr(name)


def run(args: argparse.Namespace) -> int:
    flags = {"--data-dir": ("log.dirs", args.data_dir)} if args.data_dir else {}
    try:
        settings = load_settings(args.config, flags=flags)
    except (SettingsError, OSError) as exc:
        print(f"contextplane: {exc}", file=sys.stderr)
        return 2
    mechanisms = [scram.MECHANISMS[m] for m in (getattr(args, "mechanism", None) or _MECHANISMS)]
    if args.action == "add":
        low, high = scram.SHA_256.min_iterations, scram.SHA_256.max_iterations
        if not low <= args.iterations <= high:
            print(f"contextplane: --iterations must be {low} to {high}", file=sys.stderr)
            return 2
        if not args.name:
            print("contextplane: the user name must not be empty", file=sys.stderr)
            return 2
        if not args.name.isprintable():
            print(
                f"contextplane: the user name {_shown(args.name)} has a control character",
                file=sys.stderr,
            )
            return 2
        try:
            password = read_password(args.password_stdin)
        except (ValueError, EOFError) as exc:
            print(f"contextplane: {str(exc) or 'no password given'}", file=sys.stderr)
            return 2
        if not password:
            print("contextplane: the password must not be empty", file=sys.stderr)
            return 2
    is_new = not settings.data_dir.exists()
    if is_new and args.action != "add":
        # A mistyped --data-dir must not look like a store without users.
        print(f"contextplane: no data directory at {settings.data_dir}", file=sys.stderr)
        return 2
    url = settings.resolved_metadata_url
    store_path = url.removeprefix("sqlite:///")
    if args.action != "add" and url.startswith("sqlite:///") and not Path(store_path).exists():
        print(
            f"contextplane: {settings.data_dir} is not a data directory (no {store_path})",
            file=sys.stderr,
        )
        return 2
    if args.action != "list" and in_use(settings.data_dir):
        # The broker reads users at start only: a change here would look done and not be.
        print(
            f"contextplane: a broker is running on {settings.data_dir}; it reads users only "
            "when it starts. Change users of a running broker through it: "
            "AlterUserScramCredentials, e.g. kafka-configs --alter --entity-type users",
            file=sys.stderr,
        )
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_metadata_store(settings.resolved_metadata_url, settings=settings)

    async def change() -> int:
        await store.open()
        try:
            if args.action == "list":
                by_user: dict[str, list[str]] = {}
                for record in await store.scram_credentials():
                    by_user.setdefault(record.user, []).append(
                        f"{record.mechanism} (iterations {record.iterations})"
                    )
                for user, found in by_user.items():
                    print(f"User:{_shown(user)}  {', '.join(found)}")
                return 0
            if args.action == "add":
                records = [
                    scram.credential_from_password(m, args.name, password, args.iterations)
                    for m in mechanisms
                ]
                await store.alter_scram_credentials(records, [])
                where = f"a new data directory {settings.data_dir}" if is_new else settings.data_dir
                print(f"User:{args.name}: {', '.join(m.name for m in mechanisms)} set in {where}")
                return 0
            present = {(r.user, r.mechanism) for r in await store.scram_credentials()}
            removed = [(args.name, m.name) for m in mechanisms if (args.name, m.name) in present]
            if not removed:
                print(f"contextplane: User:{args.name} has no such credentials", file=sys.stderr)
                return 1
            await store.alter_scram_credentials([], removed)
            print(f"User:{args.name}: {', '.join(m for _, m in removed)} removed")
            return 0
        finally:
            await store.close()

    return asyncio.run(change())
