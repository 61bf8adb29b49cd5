"""`contextplane trace DECISION_ID`: a decision recorded on `copilot.decisions` and every
link it recorded, followed back (services/trace/reader.py): each context read's changelog
record, its source record and the read receipts of that record, each tool call's ledger
entry and policy evaluations, each write-back. A tree, as
aligned columns (each level indented two spaces) or one JSON document. Exit 0 when the
decision is found (missing links included, each with why), 1 when it is not, or when the
record under its id is not a decision (the tree is printed, its root naming why)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from contextplane.cli.audit_reads import parse_since
from contextplane.cli.kafka_client import (
    CommandError,
    ConfigError,
    Connection,
    add_connection_arguments,
    config_from_arguments,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table
from contextplane.logsafe import escape

DEFAULT_TIMEOUT_S = 30.0
TIMEOUT_S_MAX = 3600.0


def add_parser(sub: Any) -> None:
    trace = sub.add_parser(
        "trace", help="a copilot decision and what it read, called and wrote, followed back"
    )
    trace.add_argument("decision_id", help="the decision's id (its record key, ce_id)")
    trace.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"give up scanning after S seconds in all (default {DEFAULT_TIMEOUT_S:g})",
    )
    trace.add_argument(
        "--max-records",
        type=int,
        default=None,
        metavar="N",
        help="records read per topic scanned, at most (default 1,000,000)",
    )
    trace.add_argument(
        "--since",
        metavar="TIME",
        help="the decision was made at or after TIME (ISO 8601, UTC unless it says, or epoch"
        " ms): read from there (ListOffsets by time), not from the topic's start; an id the"
        " SDK made (a UUIDv7) carries its own time",
    )
    trace.add_argument(
        "--until",
        metavar="TIME",
        help="the decision as recorded at or before TIME (same forms as --since): a decision"
        " recorded more than once (the MCP server records one event per call) as it stood"
        " then; records stamped later are not read",
    )
    add_connection_arguments(trace)
    add_output_argument(trace)


def run(args: argparse.Namespace) -> int:
    return run_command("trace", lambda: _trace(args))


def _trace(args: argparse.Namespace) -> int:
    from contextplane.services.trace import reader as trace_reader
    from contextplane.services.trace.event import DECISIONS_TOPIC

    try:  # bytes a shell passed that are not UTF-8 arrive as lone surrogates
        args.decision_id.encode()
    except UnicodeEncodeError:
        raise ConfigError(
            f"decision id {escape(args.decision_id)}: not UTF-8 (no record key holds it)"
        ) from None
    if not 0 < args.timeout <= TIMEOUT_S_MAX:
        raise ConfigError(f"--timeout: expected more than 0 and at most {TIMEOUT_S_MAX:g} s")
    records_max = args.max_records if args.max_records is not None else trace_reader.RECORDS_MAX
    if records_max <= 0:
        raise ConfigError("--max-records: expected a positive number")
    since_ms = _time_ms("--since", args.since)
    until_ms = _time_ms("--until", args.until)
    if since_ms is not None and until_ms is not None and until_ms < since_ms:
        raise ConfigError("--until: expected at or after --since")
    connection = Connection(config_from_arguments(args))
    reader = trace_reader.Reader(connection.client_config(), args.timeout, records_max)
    try:
        # The probe that names an unreachable cluster lists every topic: the reader's one
        # metadata lookup of the trace.
        reader.know(connection.metadata(reader.client, args.timeout))
        tree, why = trace_reader.find_and_trace(reader, args.decision_id, since_ms, until_ms)
    finally:
        reader.close()
    if tree is None:
        raise CommandError(f"decision {args.decision_id!r} not found in {DECISIONS_TOPIC}{why}")
    if args.output == "json":
        print_json(tree.document())
    else:
        print_tree(tree)
    return 0 if tree.missing is None else 1


def _time_ms(option: str, text: str | None) -> int | None:
    """An --since / --until argument in epoch ms, checked (None when not given)."""
    if text is None:
        return None
    ms = parse_since(text, option)
    if not 0 <= ms < 2**63 - 1:
        raise ConfigError(f"{option} {text!r}: outside the timestamps a record can have")
    return ms


def print_tree(tree: Any) -> None:
    """A trace's tree (services/trace/link.py's Link) as aligned columns, one link a line."""
    print_table(("LINK", "STATUS", "WHERE", "DETAIL"), list(_rows(tree, 0)))


def _rows(link: Any, depth: int) -> Any:
    status = "found" if link.missing is None else "missing"
    detail = link.missing if link.missing is not None else _detail(link.detail)
    yield ("  " * depth + link.label, status, link.where or "-", detail)
    for child in link.children:
        yield from _rows(child, depth + 1)


def _detail(detail: dict[str, Any]) -> str:
    """`name=value` pairs, values that are not text as JSON (`stale=false`)."""
    return " ".join(
        f"{name}={value if isinstance(value, str) else json.dumps(value)}"
        for name, value in detail.items()
        if value is not None
    )
