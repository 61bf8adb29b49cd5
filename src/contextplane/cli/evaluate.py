"""`contextplane evaluate`: what works on a Kafka-compatible cluster, as a client sees it.

Conformance probes that need only a client (`cli/probes/`): produce and fetch, each
compression codec, a consumer group, offsets by time, transactions, topic admin, ACLs,
TLS, read receipts and a schema registry, each pass, fail or n-a with its evidence and
time, then a scorecard. Exit status 0 when nothing failed, 1 otherwise, 2 for arguments
it cannot use. Each probe makes its own `__evaluate-...` topics and groups and removes
them, and is bounded by `--timeout`.
"""

from __future__ import annotations

import argparse
from typing import Any

from contextplane.cli.kafka_client import (
    ConfigError,
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
        "--probe",
        action="append",
        choices=tuple(PROBES),
        metavar="NAME",
        help=f"run only this probe (repeatable): {', '.join(PROBES)}",
    )


def run(args: argparse.Namespace) -> int:
    return run_command("evaluate", lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    from contextplane.cli.probes import PROBES, Settings, run_probes
    from contextplane.cli.probes.base import FAIL, NOT_APPLICABLE, PASS

    if not TIMEOUT_MIN_S <= args.timeout <= TIMEOUT_MAX_S:
        raise ConfigError(
            f"--timeout {args.timeout:g}: from {TIMEOUT_MIN_S:g} to {TIMEOUT_MAX_S:g} seconds"
        )
    settings = Settings(config_from_arguments(args), args.timeout, args.schema_registry)
    names = [name for name in PROBES if not args.probe or name in args.probe]
    results = list(run_probes(settings, names))
    counts = {
        result: sum(1 for r in results if r.result == result)
        for result in (PASS, FAIL, NOT_APPLICABLE)
    }
    if args.output == "json":
        print_json(
            {
                "bootstrap_server": args.bootstrap_server,
                "probes": [r.document() for r in results],
                "scorecard": {
                    "passed": counts[PASS],
                    "failed": counts[FAIL],
                    "not_applicable": counts[NOT_APPLICABLE],
                },
            }
        )
    else:
        print_table(
            ("PROBE", "RESULT", "SECONDS", "EVIDENCE"),
            [(r.name, r.result, f"{r.seconds:.2f}", r.evidence) for r in results],
        )
        print(f"\n{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_APPLICABLE]} n-a")
    return 1 if counts[FAIL] else 0
