"""`contextplane replay`: recorded decisions of `copilot.decisions` run again through the
copilot function without side effects (services/replay/): reads as of the recorded
positions, tool calls answered from the ledger, the new decisions on
`copilot.replay.<run>` (with `--tools`, each call's recorded policy evaluation decided
again under that file's policies), and per decision whether its tool calls or outcome
differ. Exit 0
when nothing differs, 1 when something does (or the cluster cannot be read), 2 for bad
arguments."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from contextplane.cli.kafka_client import (
    CommandError,
    ConfigError,
    Connection,
    add_connection_arguments,
    config_from_arguments,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table

DEFAULT_TIMEOUT_S = 30.0
TIMEOUT_S_MAX = 3600.0
DEFAULT_MAX_DECISIONS = 10_000
MAX_DECISIONS_MAX = 1_000_000
# What a table cell shows of a call's arguments or an outcome, at most.
CELL_CHARS_MAX = 120


def add_parser(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="recorded copilot decisions run again without side effects, and what differs",
    )
    replay.add_argument(
        "--function",
        required=True,
        metavar="MODULE:FUNCTION",
        help="the copilot function, called as function(input, context, tools, decision)",
    )
    replay.add_argument("--from-offset", type=int, metavar="N", help="first decision's offset")
    replay.add_argument(
        "--to-offset", type=int, metavar="M", help="replay up to M, not including it"
    )
    replay.add_argument(
        "--partition", type=int, default=0, help="the partition the offsets are of (default 0)"
    )
    replay.add_argument("--since", metavar="ISO", help="decisions stamped at or after this time")
    replay.add_argument("--until", metavar="ISO", help="decisions stamped before this time")
    replay.add_argument(
        "--run", help="the run's name: its decisions go to copilot.replay.RUN (default: the time)"
    )
    replay.add_argument("--context-url", help="the context service the reads are made at")
    replay.add_argument("--ledger-url", help="the executor whose ledger answers the tool calls")
    replay.add_argument(
        "--tools",
        metavar="FILE",
        help="a tools file whose policies decide each call's recorded policy evaluation"
        " again (nothing is called; a call they decide otherwise differs)",
    )
    replay.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"wait at most S seconds for the cluster or the next record (default"
        f" {DEFAULT_TIMEOUT_S:g})",
    )
    replay.add_argument(
        "--max-decisions",
        type=int,
        default=DEFAULT_MAX_DECISIONS,
        metavar="N",
        help=f"refuse a range of more decisions than N (default {DEFAULT_MAX_DECISIONS:,})",
    )
    add_connection_arguments(replay)
    add_output_argument(replay)


def run(args: argparse.Namespace) -> int:
    return run_command("replay", lambda: _replay(args))


def _time_ms(option: str, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{option}: {text!r} names no time zone (add Z or +HH:MM)")
    ms = int(moment.timestamp() * 1000)
    if ms < 0:  # ListOffsets reads -1 as the latest offset, -2 as the earliest
        raise ConfigError(f"{option}: {text!r} is before 1970-01-01T00:00:00Z")
    return ms


def _check(args: argparse.Namespace) -> tuple[str, Any]:
    """Which range the arguments name, checked: ("offsets", (from, to)) or ("times",
    (since_ms, until_ms)); ConfigError (exit 2) otherwise."""
    offsets = args.from_offset is not None or args.to_offset is not None
    times = args.since is not None or args.until is not None
    if offsets == times:
        raise ConfigError("give --from-offset and --to-offset, or --since and --until")
    if not 0 < args.timeout <= TIMEOUT_S_MAX:
        raise ConfigError(f"--timeout: expected more than 0 and at most {TIMEOUT_S_MAX:g} s")
    if not 0 < args.max_decisions <= MAX_DECISIONS_MAX:
        raise ConfigError(f"--max-decisions: expected 1 to {MAX_DECISIONS_MAX:,}")
    if offsets:
        if args.from_offset is None or args.to_offset is None:
            raise ConfigError("--from-offset and --to-offset go together")
        if args.from_offset < 0 or args.partition < 0:
            raise ConfigError("--from-offset and --partition: expected 0 or more")
        if args.to_offset <= args.from_offset:
            raise ConfigError("--to-offset: expected more than --from-offset")
        if args.to_offset - args.from_offset > args.max_decisions:
            raise ConfigError(
                f"the range holds up to {args.to_offset - args.from_offset:,} decisions,"
                f" more than --max-decisions {args.max_decisions:,}"
            )
        return "offsets", (args.from_offset, args.to_offset)
    if args.since is None or args.until is None:
        raise ConfigError("--since and --until go together")
    since, until = _time_ms("--since", args.since), _time_ms("--until", args.until)
    if until <= since:
        raise ConfigError("--until: expected later than --since")
    return "times", (since, until)


def _replay(args: argparse.Namespace) -> int:
    kind, bounds = _check(args)
    from contextplane.services.replay import recorded as recorded_log
    from contextplane.services.replay import runner

    run_name = args.run or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        topic = runner.replay_topic(run_name)
    except ValueError as exc:
        raise ConfigError(f"--run: {exc}") from None
    try:
        function = runner.load_function(args.function)
    except runner.FunctionError as exc:
        raise ConfigError(f"--function: {exc}") from None
    changed = _changed_tools(args.tools)
    connection = Connection(config_from_arguments(args))
    log = recorded_log.DecisionLog(connection.client_config(), args.timeout)
    try:
        connection.metadata(log.client, args.timeout)
        try:
            if kind == "offsets":
                spans = [log.span_of_offsets(args.partition, *bounds)]
            else:
                spans = log.spans_of_times(*bounds)
        except recorded_log.RangeError as exc:
            raise CommandError(str(exc)) from None
        total = sum(span.size for span in spans)
        if total > args.max_decisions:
            raise ConfigError(
                f"the range holds {total:,} offsets, more than --max-decisions"
                f" {args.max_decisions:,}"
            )
        try:
            records: Iterable[Any] = (rec for span in spans for rec in log.read(span))
            policies = None
            if changed is not None:  # every decision read first: their keys' evaluations
                records = list(records)
                policies = _policies(connection.client_config(), changed, records, args.timeout)
            replayer = runner.Replayer(
                args.bootstrap_server,
                run_name,
                function,
                context_url=args.context_url,
                ledger_url=args.ledger_url,
                # The connection's logger too: librdkafka's lines are for --log-level DEBUG.
                client_config={
                    k: v for k, v in connection.client_config().items() if k != "bootstrap.servers"
                },
                timeout_s=args.timeout,
                policies=policies,
            )
            try:
                diffs = [replayer.replay(rec) for rec in records]
            finally:
                replayer.close()
        except recorded_log.RangeError as exc:
            raise CommandError(str(exc)) from None
    finally:
        log.close()
    differing = sum(1 for d in diffs if d.differs)
    if args.output == "json":
        print_json(
            {
                "run": run_name,
                "topic": topic,
                "ranges": [
                    {"partition": s.partition, "from_offset": s.start, "to_offset": s.end}
                    for s in spans
                ],
                "decisions": len(diffs),
                "differing": differing,
                "results": [d.document() for d in diffs],
            }
        )
    else:
        print_table(
            ("DECISION", "ORIGINAL", "REPLAY", "DIFFERS", "TOOL CALLS", "OUTCOME"),
            [_row(d) for d in diffs],
        )
        print(f"{len(diffs)} decisions replayed to {topic}, {differing} differing")
    return 1 if differing else 0


def _changed_tools(path: str | None) -> Any:
    """The `--tools` file's tools (None without one); ConfigError naming what is wrong."""
    if path is None:
        return None
    from contextplane.services.actions.tools import ToolsFileError, load_tools

    try:
        return load_tools(Path(path))
    except (OSError, ToolsFileError) as exc:
        raise ConfigError(f"--tools: {exc}") from None


def _policies(config: dict[str, Any], tools: Any, records: list[Any], timeout_s: float) -> Any:
    """The changed policies with the first recorded evaluation of each call's key (one
    scan of `copilot.policy-evaluations`); CommandError when the scan stops short."""
    from contextplane.services.actions.ledger import EVALUATIONS_TOPIC
    from contextplane.services.replay.policies import ChangedPolicies, wanted_keys
    from contextplane.services.trace.reader import RECORDS_MAX, Reader

    keys = wanted_keys([r.document for r in records if isinstance(r.document, dict)])
    policies = ChangedPolicies(tools, {key: {} for key in keys})
    if not keys:
        return policies
    reader = Reader(config, timeout_s, RECORDS_MAX)
    try:
        short = reader.scan(EVALUATIONS_TOPIC, policies.keep)
    finally:
        reader.close()
    if short:
        raise CommandError(f"reading {EVALUATIONS_TOPIC}: {short}")
    return policies


def _where(at: dict[str, Any] | None) -> str:
    return "-" if at is None else f"{at['topic']}[{at['partition']}]@{at['offset']}"


def _calls(calls: list[dict[str, Any]]) -> str:
    shown = []
    for call in calls:
        arguments = call.get("arguments")
        text = f"{call.get('key')} {call.get('tool')}"
        if arguments is not None:
            text += " " + json.dumps(arguments, sort_keys=True, separators=(",", ":"))
        shown.append(f"{text} ({call.get('state')})")
    return "; ".join(shown) or "none"


def _cut(text: str) -> str:
    return text if len(text) <= CELL_CHARS_MAX else text[: CELL_CHARS_MAX - 3] + "..."


def _row(d: Any) -> tuple[str, ...]:
    if d.note is not None:
        calls, outcome = "-", d.note
    else:
        calls = (
            f"{_calls(d.original_calls)} -> {_calls(d.replay_calls)}"
            if d.calls_differ
            else f"same ({len(d.original_calls)})"
        )
        outcome = f"{d.original_outcome!r} -> {d.replay_outcome!r}" if d.outcome_differs else "same"
    return (
        d.decision_id,
        _where(d.original),
        _where(d.replay),
        "yes" if d.differs else "no",
        _cut(calls),
        _cut(outcome),
    )
