"""The commands that are Kafka clients of a running cluster: `topic`, `group`, `config`,
`acl`, `user`, `quota`, `mask`, `produce`, `consume`, `evaluate`, `trace`, `replay`, `mirror`,
`partitions`.
`cli/launch.py` parses and runs them without importing the broker (which `cli/main.py`
does for `up`): less than half the CPU time to start."""

from __future__ import annotations

import argparse
from typing import Any

from contextplane.cli import (
    acl,
    config,
    consume,
    evaluate,
    group,
    mask,
    mirror,
    partitions,
    produce,
    quota,
    replay,
    topic,
    trace,
    user,
)

COMMANDS = {
    "topic": topic,
    "group": group,
    "config": config,
    "acl": acl,
    "user": user,
    "quota": quota,
    "mask": mask,
    "produce": produce,
    "consume": consume,
    "evaluate": evaluate,
    "trace": trace,
    "replay": replay,
    "mirror": mirror,
    "partitions": partitions,
}


def add_parsers(sub: Any) -> None:
    for command in COMMANDS.values():
        command.add_parser(sub)


def run(args: argparse.Namespace) -> int:
    return int(COMMANDS[args.command].run(args))


def parser() -> argparse.ArgumentParser:
    """The client commands' parser alone (`cli/main.py` adds them to the full one)."""
    parser = argparse.ArgumentParser(prog="contextplane")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))
