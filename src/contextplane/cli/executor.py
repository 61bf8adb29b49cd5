"""`contextplane executor`: the tool executor (RFC 0006 §2), policy-gated tool calls from
`copilot.tool-calls` performed at most once per idempotency key and recorded in the
`copilot.ledger` topic of any Kafka cluster; the ledger read served over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from contextplane.cli.service_launch import run_service

DEFAULT_PORT = 8091
# librdkafka's least transaction.timeout.ms; Kafka's default transaction.max.timeout.ms.
TRANSACTION_TIMEOUT_MS_RANGE = (1_000, 900_000)


def add_parser(sub: Any) -> None:
    executor = sub.add_parser(
        "executor", help="perform policy-gated tool calls once each, recorded in a ledger topic"
    )
    executor.add_argument(
        "--bootstrap",
        "--bootstrap-server",
        dest="bootstrap",
        required=True,
        help="host:port of the Kafka cluster (either spelling, as Kafka's tools)",
    )
    executor.add_argument("--tools", required=True, type=Path, help="the tools file (TOML)")
    executor.add_argument(
        "--context-url", help="the context service, for tools whose policy reads an entity"
    )
    executor.add_argument(
        "--transactional-id",
        default="contextplane-executor-0",
        help="stable per executor process: a restart with the same id fences its predecessor",
    )
    executor.add_argument("--group", default="contextplane-executor", help="the consumer group")
    executor.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )
    executor.add_argument(
        "--key-retention-ms",
        type=_retention_ms,
        default=24 * 3600 * 1000,
        help="ledger entries older than this are tombstoned: a request for such a key is a"
        " new call (default 86400000, 24 h; 0 keeps them for ever)",
    )
    executor.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    executor.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (8091)")
    executor.add_argument("--timeout", type=float, default=30.0, help="seconds for Kafka calls")
    executor.add_argument(
        "--transaction-timeout-ms",
        type=int,
        default=60_000,
        metavar="MS",
        help="the producer's transaction.timeout.ms: how long a transaction this executor "
        "left open when it died holds back the ledger's readers (default 60000)",
    )
    executor.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))


def _retention_ms(text: str) -> int:
    value = int(text) if text.isascii() and text.isdigit() else -1
    if not 0 <= value <= 10 * 365 * 24 * 3600 * 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: milliseconds, 0 to ten years")
    return value


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from contextplane.services.actions.executor import StartError
    from contextplane.services.actions.tools import ToolsFileError, load_tools

    low, high = TRANSACTION_TIMEOUT_MS_RANGE
    if not low <= args.transaction_timeout_ms <= high:
        print(
            f"contextplane executor: --transaction-timeout-ms: expected {low} to {high}, "
            f"got {args.transaction_timeout_ms}",
            file=sys.stderr,
        )
        return 2

    return run_service(
        "executor",
        args.log_level,
        args.command_config,
        lambda: load_tools(args.tools),
        lambda tools, security, stop: _serve(args, tools, security, stop),
        (ToolsFileError,),
        (StartError, KafkaException),
    )


async def _serve(
    args: argparse.Namespace, tools: Any, security: dict[str, str], stop: asyncio.Event
) -> int:
    from contextplane.services.actions.executor import Executor, ExecutorConfig
    from contextplane.services.actions.server import run_executor

    config = ExecutorConfig(
        args.bootstrap,
        transactional_id=args.transactional_id,
        group=args.group,
        context_url=args.context_url,
        timeout_s=args.timeout,
        client_config=security,
        key_retention_ms=args.key_retention_ms,
        transaction_timeout_ms=args.transaction_timeout_ms,
    )
    return await run_executor(Executor(tools, config), args.host, args.port, stop)
