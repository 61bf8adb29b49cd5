"""`contextplane audit events`: the security audit of a running broker — authorization
decisions, administrative changes, authentications — read from `__contextplane_audit`
(CloudEvents records, `security/audit_events.py`) and filtered like a SIEM query.

The principal running it needs READ and DESCRIBE on that topic, as for `audit reads`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Iterable
from typing import Any

from contextplane.cli import output
from contextplane.cli.audit_reads import parse_since, read_events
from contextplane.cli.kafka_client import (
    BrokerUnreachable,
    ConfigError,
    add_connection_arguments,
    config_from_arguments,
)

AUDIT_TOPIC = "__contextplane_audit"
TYPE_PREFIX = "io.contextplane.audit."
TYPES = ("authorization", "change", "authentication", "suppressed")
DECISIONS = ("ALLOWED", "DENIED", "FAILED")
# Rows a table holds (the last ones matched); JSON output streams every event.
TABLE_ROWS_MAX = 100_000
COLUMNS = ("TIME", "TYPE", "PRINCIPAL", "ACTION", "RESOURCE", "DECISION", "RESULT", "CLIENT")


def add_parser(what: Any) -> None:
    events = what.add_parser(
        "events", help="authorization decisions, changes and authentications (the audit topic)"
    )
    add_connection_arguments(events)
    events.add_argument("--type", choices=TYPES, action="append", help="repeat for several")
    events.add_argument("--principal", help="e.g. User:alice")
    events.add_argument("--decision", choices=DECISIONS, type=str.upper)
    events.add_argument(
        "--resource", help="a resource name (orders) or type:name (topic:orders, group:billing)"
    )
    events.add_argument("--since", help="ISO 8601 time (UTC unless given) or epoch ms")
    events.add_argument("--limit", type=int, help="only the last N matching events")
    events.add_argument("--output", choices=("table", "json"), default="table")
    events.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for answers")


def matches(event: dict[str, Any], args: argparse.Namespace, since_ms: int | None) -> bool:
    data = event.get("data") or {}
    kind = str(event.get("type", "")).removeprefix(TYPE_PREFIX)
    if args.type and kind not in args.type:
        return False
    if args.principal is not None and data.get("principal") != args.principal:
        return False
    if args.decision is not None and data.get("decision") != args.decision:
        return False
    if args.resource is not None and args.resource not in _resources(event):
        return False
    return since_ms is None or event.get("time", "") >= _rfc3339(since_ms)


def _resources(event: dict[str, Any]) -> set[str]:
    """What `--resource` may name: the subject (`topic:orders`), the resource name, and
    every name a denial record lists."""
    data = event.get("data") or {}
    names = {str(event.get("subject", ""))}
    if data.get("resource_name") is not None:
        names.add(str(data["resource_name"]))
    names.update(str(n) for n in data.get("resource_names") or [])
    return names


def _rfc3339(wall_ms: int) -> str:
    from contextplane.security.audit_events import rfc3339

    return rfc3339(wall_ms)


def row(event: dict[str, Any]) -> tuple[object, ...]:
    """An event's cells (every client-given string is escaped by the table)."""
    data = event.get("data") or {}
    action = data.get("api") or data.get("operation") or "-"
    if data.get("mechanism"):
        # A login (operation AUTHENTICATE) or a SCRAM credential change (api and change).
        verb = data.get("operation") or " ".join(
            str(part) for part in (data.get("api"), data.get("change")) if part
        )
        action = f"{verb or 'AUTHENTICATE'} {data['mechanism']}"
    elif data.get("operation") and data.get("api") and data["operation"] != data["api"]:
        action = f"{data['api']} {data['operation']}"
    resource = event.get("subject", "-")
    if data.get("resource_count", 1) > 1:
        resource = f"{resource} (+{data['resource_count'] - 1})"
    return (
        event.get("time", "-"),
        str(event.get("type", "")).removeprefix(TYPE_PREFIX),
        data.get("principal") or "-",
        action,
        resource,
        data.get("decision", "-"),
        data.get("result", "-"),
        data.get("client_address", "-"),
    )


def collect(
    events: Iterable[dict[str, Any]], args: argparse.Namespace, since_ms: int | None
) -> tuple[deque[Any], int]:
    """The last matching events kept for the output, and how many matched. JSON without
    --limit is printed as it comes (nothing kept); a table keeps rows, not events: 100,000
    decoded denials naming 20 resources each held 430 MiB, their rows 60 MiB."""
    kept = args.limit if args.limit is not None else TABLE_ROWS_MAX
    last: deque[Any] = deque(maxlen=0 if _streaming(args) else kept)
    matched = 0
    for event in events:
        if not matches(event, args, since_ms):
            continue
        matched += 1
        if _streaming(args):
            print(json.dumps(event, sort_keys=True))
        else:
            last.append(event if args.output == "json" else row(event))
    return last, matched


def _streaming(args: argparse.Namespace) -> bool:
    return bool(args.output == "json" and args.limit is None)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        print("contextplane audit events: --limit must be at least 1", file=sys.stderr)
        return 2
    # A table is aligned over all its rows, so it holds them: at most TABLE_ROWS_MAX (the
    # last ones); JSON lines stream unless --limit asks for the last N.
    try:
        config = config_from_arguments(args)
        since_ms = parse_since(args.since) if args.since else None
        last, matched = collect(
            read_events(config, AUDIT_TOPIC, since_ms, args.timeout), args, since_ms
        )
    except (ConfigError, BrokerUnreachable, OSError) as exc:
        print(f"contextplane audit events: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a Kafka error, reported as the tools do
        print(f"contextplane audit events: {exc}", file=sys.stderr)
        return 1
    if _streaming(args):
        return 0
    if args.output == "json":
        for event in last:
            print(json.dumps(event, sort_keys=True))
        return 0
    for line in output.table(COLUMNS, last):
        print(line)
    if matched > len(last) and args.limit is None:
        print(
            f"contextplane audit events: showing the last {len(last)} of {matched} events"
            " (--limit N, or --output json for all)",
            file=sys.stderr,
        )
    return 0
