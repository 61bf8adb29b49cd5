"""`contextplane evaluate`: what works on a Kafka-compatible cluster, as a client sees it.

Conformance probes that need only a client (`cli/probes/`): produce and fetch, each
compression codec, a consumer group, offsets by time, a replay, group offsets written for
a rollback, transactions, topic admin, what Kafka Connect needs, ACLs, TLS, read receipts,
and with their options a schema registry, a Connect worker's connectors and a restart;
each pass, fail or n-a with its evidence and time, then the readiness scorecard
(`probes/scorecard.py`). Exit status 0 when nothing failed, 1 otherwise (or when the
cluster does not answer at all: one line), 2 for arguments it cannot use. Each probe
makes its own `__evaluate-...` topics and groups and removes them, and is bounded by
`--timeout`.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from contextplane.cli.kafka_client import (
    ConfigError,
    Connection,
    add_connection_arguments,
    config_from_arguments,
    run_command,
)
from contextplane.cli.output import add_output_argument, print_json, print_table

# A probe's bound may be set from a second to an hour.
TIMEOUT_MIN_S, TIMEOUT_MAX_S = 1.0, 3600.0


def add_parser(sub: Any) -> None:
    from contextplane.cli.probes import PROBES

    evaluate = sub.add_parser(
        "evaluate", help="run conformance probes against a cluster and print a scorecard"
    )
    add_connection_arguments(evaluate)
    add_output_argument(evaluate)
    evaluate.add_argument(
        "--timeout", type=float, default=30.0, help="seconds each probe may take (default 30)"
    )
    evaluate.add_argument(
        "--schema-registry", metavar="URL", help="also probe this schema registry"
    )
    evaluate.add_argument(
        "--connect", metavar="URL", help="also probe this Kafka Connect worker's connectors"
    )
    evaluate.add_argument(
        "--restart-command",
        metavar="CMD",
        help="a command that restarts the cluster (run without a shell, bounded by "
        "--timeout): records and offsets must survive it",
    )
    evaluate.add_argument(
        "--probe",
        action="append",
        choices=tuple(PROBES),
        metavar="NAME",
        help=f"run only this probe (repeatable): {', '.join(PROBES)}",
    )


def run(args: argparse.Namespace) -> int:
    return run_command("evaluate", lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    from contextplane.cli.probes import PROBES, run_probes
    from contextplane.cli.probes.base import FAIL, NOT_APPLICABLE, PASS
    from contextplane.cli.probes.scorecard import score

    settings = _settings(args)
    _reachable(settings.config, args.timeout)
    names = [name for name in PROBES if not args.probe or name in args.probe]
    results = list(run_probes(settings, names))
    counts = {
        result: sum(1 for r in results if r.result == result)
        for result in (PASS, FAIL, NOT_APPLICABLE)
    }
    categories = score(results)
    if args.output == "json":
        print_json(
            {
                "bootstrap_server": args.bootstrap_server,
                "probes": [r.document() for r in results],
                "scorecard": {
                    "passed": counts[PASS],
                    "failed": counts[FAIL],
                    "not_applicable": counts[NOT_APPLICABLE],
                    "categories": [category.document() for category in categories],
                },
            }
        )
    else:
        print_table(
            ("PROBE", "RESULT", "SECONDS", "EVIDENCE"),
            [(r.name, r.result, f"{r.seconds:.2f}", r.evidence) for r in results],
        )
        print(f"\n{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_APPLICABLE]} n-a\n")
        print_table(
            ("CATEGORY", "READINESS", "EVIDENCE"),
            [(c.name, c.status, c.evidence()) for c in categories],
        )
    return 1 if counts[FAIL] else 0


def _settings(args: argparse.Namespace) -> Any:
    from contextplane.cli.probes import Settings

    if not TIMEOUT_MIN_S <= args.timeout <= TIMEOUT_MAX_S:
        raise ConfigError(
            f"--timeout {args.timeout:g}: from {TIMEOUT_MIN_S:g} to {TIMEOUT_MAX_S:g} seconds"
        )
    restart: tuple[str, ...] = ()
    if args.restart_command is not None:
        try:
            restart = tuple(shlex.split(args.restart_command))
        except ValueError as exc:
            raise ConfigError(f"--restart-command: {exc}") from None
        if not restart:
            raise ConfigError("--restart-command: an empty command")
    if args.connect is not None and not args.connect.startswith(("http://", "https://")):
        raise ConfigError(f"--connect {args.connect}: an http:// or https:// URL")
    return Settings(
        config_from_arguments(args),
        args.timeout,
        args.schema_registry,
        connect_url=args.connect,
        restart_command=restart,
    )


def _reachable(config: dict[str, str], timeout_s: float) -> None:
    """BrokerUnreachable (one line, exit 1) when the cluster does not answer: every probe
    would fail for the same reason."""
    from confluent_kafka.admin import AdminClient

    connection = Connection(config)
    connection.metadata(AdminClient(connection.client_config()), timeout_s)
