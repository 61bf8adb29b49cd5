"""`contextplane context`: the context service (RFC 0006 §1), entity views folded from
the topics of any Kafka cluster, served over HTTP with their freshness and read fences."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from contextplane.cli.service_launch import run_service

DEFAULT_PORT = 8090


def add_parser(sub: Any) -> None:
    context = sub.add_parser(
        "context", help="serve entity views folded from Kafka topics, with their freshness"
    )
    context.add_argument(
        "--bootstrap",
        "--bootstrap-server",
        dest="bootstrap",
        required=True,
        help="host:port of the Kafka cluster (either spelling, as Kafka's tools)",
    )
    context.add_argument("--views", required=True, type=Path, help="the views file (TOML)")
    context.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )
    context.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    context.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (8090)")
    context.add_argument(
        "--name",
        default="contextplane-context",
        help="names the changelog topic (NAME.changelog) and the transactional id",
    )
    context.add_argument(
        "--instance",
        help="run as one of several partitioned instances of NAME (an id stable across its"
        " restarts): the group NAME-sources shares the co-partitioned source partitions",
    )
    context.add_argument(
        "--advertised-url",
        help="with --instance: the URL this instance serves at, named to clients another"
        " instance redirects (421); named only when its host is (or resolves to) this"
        " instance's address as the broker sees it",
    )
    context.add_argument(
        "--session-timeout-ms",
        type=_positive,
        default=45_000,
        help="with --instance: how long the group waits for a silent instance (45000)",
    )
    context.add_argument(
        "--data-dir", type=Path, default=Path("context-data"), help="the local store's directory"
    )
    context.add_argument("--timeout", type=float, default=30.0, help="seconds for Kafka calls")
    context.add_argument(
        "--snapshot-every-records",
        type=_positive,
        default=100_000,
        help="source offsets applied between snapshots of the store, as_of's starting points",
    )
    context.add_argument(
        "--snapshots-kept", type=_positive, default=3, help="snapshots kept (the newest)"
    )
    context.add_argument(
        "--as-of-records-max",
        type=_positive,
        default=1_000_000,
        help="offsets one as_of read may scan past its snapshot",
    )
    context.add_argument(
        "--as-of-concurrent-max", type=_positive, default=4, help="as_of reads running at once"
    )
    context.add_argument(
        "--as-of-timeout-ms", type=_positive, default=10_000, help="one as_of read's time bound"
    )
    context.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from contextplane.services.context.applier import StartError
    from contextplane.services.context.views import ViewsFileError, load_views

    return run_service(
        "context",
        args.log_level,
        args.command_config,
        lambda: load_views(args.views),
        lambda views, security, stop: _serve(args, views, security, stop),
        (ViewsFileError,),
        (StartError, KafkaException),
    )


async def _serve(
    args: argparse.Namespace, views: Any, security: dict[str, str], stop: asyncio.Event
) -> int:
    from contextplane.services.context.applier import ApplierConfig
    from contextplane.services.context.as_of import AsOfSettings
    from contextplane.services.context.server import run_context
    from contextplane.services.context.service import ContextService

    config = ApplierConfig(
        args.bootstrap,
        args.name,
        args.data_dir,
        args.timeout,
        client_config=security,
        instance=args.instance,
        advertised_url=args.advertised_url,
        session_timeout_ms=args.session_timeout_ms,
    )
    as_of = AsOfSettings(
        snapshot_every_records=args.snapshot_every_records,
        snapshots_kept=args.snapshots_kept,
        records_max=args.as_of_records_max,
        concurrent_max=args.as_of_concurrent_max,
        timeout_ms=args.as_of_timeout_ms,
    )
    service = ContextService(views, config, as_of=as_of)
    return await run_context(service, args.host, args.port, stop)
