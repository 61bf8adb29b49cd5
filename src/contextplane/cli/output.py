"""How the commands print: `--output table` as plain aligned columns two spaces apart (as
Kafka's own tools print theirs, and as `awk` and `column` read them), `--output json` as
one document with sorted keys, for programs.

Plain text rather than rich: no dependency loaded on every start (rich's import is longer
than a command's whole run against a local broker), no terminal-dependent wrapping or box
characters in a pipe, and the same bytes in a terminal and in a file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from contextplane.logsafe import escape


def add_output_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        choices=("table", "json"),
        default="table",
        help="table (aligned columns) or json (one document, for programs)",
    )


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """The header and rows in aligned columns. Every cell is escaped: a name or record
    chosen by a client cannot forge a row with a newline, nor a terminal escape act."""
    lines = [tuple(columns), *(tuple(escape(str(cell)) for cell in row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    for line in table(columns, rows):
        print(line)


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def fail(command: str, message: str) -> int:
    """One line naming the problem on stderr; the exit status of a failure (1)."""
    print(f"contextplane {command}: {escape(message)}", file=sys.stderr)
    return 1


def say(text: str, *, err: bool = False) -> None:
    """One line for a supervisor's reader, which may be gone (`cluster up | head -3`): a
    closed pipe sends that stream to /dev/null instead of ending the supervisor, which
    must keep its children running and stop them in order whether or not it is read."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        to_devnull(stream.fileno())


def to_devnull(fd: int) -> None:
    """Point `fd` at /dev/null: its reader is gone, and what is still written (Python's
    flush at exit, a supervisor's later lines) must go nowhere quietly."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)
