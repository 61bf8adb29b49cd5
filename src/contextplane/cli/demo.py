"""`contextplane demo support-copilot`: the copilot data plane end to end on sample data
(services/demo/): a broker (embedded unless `--bootstrap-server` names one), the
context service and the executor, a rule-based copilot deciding support tickets, one
decision traced, every decision replayed with zero tool calls, and (embedded broker only)
a held refund approved by its approver and traced to the approval. Exit 0 when every
step did what it should, 1 naming the step that did not, 2 for bad arguments."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from contextplane.cli.kafka_client import ConfigError, security_config
from contextplane.cli.output import add_output_argument, fail, print_json

SCENARIOS = ("support-copilot",)
DEFAULT_TIMEOUT_S = 120.0
TIMEOUT_S_MAX = 3600.0


def add_parser(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="run a scenario of the copilot data plane end to end on sample data"
    )
    demo.add_argument("scenario", choices=SCENARIOS, help="the scenario (support-copilot)")
    demo.add_argument(
        "--bootstrap-server",
        "--bootstrap",
        dest="bootstrap_server",
        help="a Kafka cluster to run against (default: an embedded broker on a free port)",
    )
    demo.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"the whole run's bound in seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    add_output_argument(demo)


class _OutOfTime(Exception):
    """The --timeout passed (raised on the main thread by SIGALRM)."""


def run(args: argparse.Namespace) -> int:
    if not 0 < args.timeout <= TIMEOUT_S_MAX:
        print(
            f"contextplane demo: --timeout: expected more than 0 and at most {TIMEOUT_S_MAX:g} s",
            file=sys.stderr,
        )
        return 2
    try:
        security = security_config(args.command_config)
    except (ConfigError, OSError) as exc:
        print(f"contextplane demo: --command-config: {exc}", file=sys.stderr)
        return 2
    from contextplane.cli.kafka_client import Connection
    from contextplane.cli.trace import print_tree
    from contextplane.services.demo.run import Demo, Settings

    connection = Connection({"bootstrap.servers": args.bootstrap_server or "", **security})
    client_config = {
        k: v for k, v in connection.client_config().items() if k != "bootstrap.servers"
    }
    as_json = args.output == "json"

    def note(line: str) -> None:
        print(f"contextplane demo: {line}", file=sys.stderr, flush=True)

    def say(line: str) -> None:  # with --output json, stdout holds the document alone
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    demo = Demo(
        Settings(
            args.bootstrap_server,
            client_config,
            args.command_config,
            args.timeout,
            connection.metadata,
        ),
        say,
        note,
        (lambda tree: None) if as_json else print_tree,
    )
    previous = signal.signal(signal.SIGALRM, _out_of_time)
    # The steps watch the deadline; the alarm (a little later) stops one stuck in a call.
    signal.setitimer(signal.ITIMER_REAL, args.timeout + 5)
    try:
        summary = demo.run()
    except KeyboardInterrupt:
        return fail("demo", f"{demo.step}: interrupted")
    except _OutOfTime:
        return fail("demo", f"{demo.step}: the demo's {args.timeout:g} s ran out")
    except Exception as exc:  # any step's failure, named by the step it happened in
        return fail("demo", f"{demo.step}: {exc or type(exc).__name__}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        demo.close()
    if as_json:
        print_json(summary)
    else:
        print("demo done: every step as expected")
    return 0


def _out_of_time(signum: int, frame: Any) -> None:
    raise _OutOfTime()
