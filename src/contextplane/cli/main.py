"""`contextplane` command line: `contextplane up` runs the embedded broker;
`contextplane users` manages SCRAM users of a data directory (cli/users.py);
`contextplane audit reads` asks a running broker who received which offsets;
`contextplane registry` serves a schema registry kept in a Kafka topic (cli/registry.py);
`contextplane topic|group|config|acl|user|quota|produce|consume` are Kafka clients of any
cluster (cli/client_commands.py);
`contextplane evaluate` probes what a Kafka-compatible cluster supports (cli/evaluate.py);
`contextplane context` serves entity views folded from Kafka topics (cli/context.py);
`contextplane executor` performs policy-gated tool calls through a ledger (cli/executor.py);
`contextplane mcp` serves context, tool calls and traces to MCP agents (cli/mcp.py);
`contextplane trace` follows a copilot decision's links back (cli/trace.py);
`contextplane demo support-copilot` runs the copilot data plane on sample data (cli/demo.py);
`contextplane cluster up` runs a local cluster: PostgreSQL, SeaweedFS, brokers, and `cluster
rebalance/drain/undrain` move partitions by measured load (cli/cluster.py);
`contextplane cost` prices a workload against Kafka on replicated disks (cli/cost.py);
`contextplane completion bash|zsh|tcsh` prints a shell completion script (cli/completion.py)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from types import ModuleType

from contextplane import dataclass_code, tracing
from contextplane.broker import malloc_policy
from contextplane.cluster.registry import DuplicateBrokerRegistration
from contextplane.logsafe import log_to_stderr
from contextplane.metadata.store import MetadataStoreUnreachable
from contextplane.security.jwks import JwksError
from contextplane.security.registry_access import RegistryAccessError
from contextplane.security.tls import TlsConfigError
from contextplane.settings import Settings, SettingsError, load_settings
from contextplane.settings_consumer_groups import deprecations
from contextplane.storage.store_marker import ObjectStoreMismatch

# Time beyond shutdown.timeout.ms for everything but the final upload.
_SHUTDOWN_SLACK_S = 5.0


# The other commands' modules, each with add_parser(sub) (client_commands: add_parsers)
# and run(args): imported only when the command line is not `up`, which needs none of
# them (their parsers and imports were ~0.1 s of every broker start).
_COMMAND_MODULES = (
    "users",
    "audit_reads",
    "registry",
    "client_commands",
    "context",
    "executor",
    "mcp",
    "demo",
    "cost",
    "cluster",
    "completion",
)


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"contextplane.cli.{name}")


def build_parser(up_only: bool = False) -> argparse.ArgumentParser:
    """Every command's arguments (also what `contextplane completion` describes); with
    `up_only`, only `up`'s, which parses an `up` command line the same way."""
    parser = argparse.ArgumentParser(prog="contextplane")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the broker on the embedded default (SQLite + files)")
    up.add_argument("--config", type=Path, help="a properties file with Kafka-style names")
    up.add_argument("--data-dir", help="where metadata, WAL and objects live (default ./data)")
    up.add_argument("--host", help="listener address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="listener port (default 9092)")
    up.add_argument("--object-store", help="file://..., memory://, or s3://bucket?endpoint=...")
    up.add_argument(
        "--metadata",
        help="the metadata store: sqlite:///path (default <data-dir>/metadata.db) or"
        " postgresql://user[:password]@host:port/database",
    )
    up.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any setting, e.g. num.partitions=4",
    )
    up.add_argument(
        "--registry-port",
        type=int,
        help="also serve the schema registry on the listener's host, e.g. 8081 "
        "(README: Schema registry)",
    )
    up.add_argument(
        "--log-level",
        type=_log_level,
        default=os.environ.get("CONTEXTPLANE_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (default: $CONTEXTPLANE_LOG_LEVEL, else INFO)",
    )
    if up_only:
        return parser
    for name in _COMMAND_MODULES:
        module = _command(name)
        if name == "client_commands":
            module.add_parsers(sub)
        else:
            module.add_parser(sub)
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    words = sys.argv[1:] if argv is None else argv
    return build_parser(up_only=words[:1] == ["up"]).parse_args(argv)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return value.upper()


# The commands that export traces when the OTEL_* variables name a collector.
_TRACED_COMMANDS = frozenset({"up", "registry", "context", "executor"})


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.command in _TRACED_COMMANDS:
        try:
            tracing.traces_url()  # an unusable variable is named before anything starts
        except tracing.TracingConfigError as exc:
            print(f"contextplane: {exc}", file=sys.stderr)
            return 2
    if args.command != "up":
        return _run_command(args)
    log_to_stderr(args.log_level.upper())
    overrides: dict[str, str] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"contextplane: --set expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[name] = value
    # A flag is the command line's, as --set is: the two must agree when both are given.
    flags = {
        flag: (name, str(value))
        for flag, name, value in (
            ("--data-dir", "log.dirs", args.data_dir),
            ("--host", "listener.host", args.host),
            ("--port", "listener.port", args.port),
            ("--object-store", "object.store.url", args.object_store),
            ("--metadata", "metadata.url", args.metadata),
        )
        if value is not None
    }
    try:
        settings = load_settings(args.config, overrides=overrides, flags=flags)
    except (SettingsError, OSError) as exc:
        print(f"contextplane: {exc}", file=sys.stderr)
        return 2
    report_ignored(settings)
    malloc_policy.apply()  # before any thread: each keeps the arena it was given
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        status = asyncio.run(_run(settings, args.registry_port))
    except KeyboardInterrupt:
        status = 0
    except (TlsConfigError, JwksError, RegistryAccessError) as exc:  # unusable settings
        print(f"contextplane: {exc}", file=sys.stderr)
        return 2
    except MetadataStoreUnreachable as exc:  # names the URL without its password
        print(f"contextplane: {exc}", file=sys.stderr)
        return 1
    except (DuplicateBrokerRegistration, ObjectStoreMismatch) as exc:  # before any listener
        print(f"contextplane: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"contextplane: {exc}", file=sys.stderr)
        return 1
    return status


def _run_command(args: argparse.Namespace) -> int:
    """Every command but `up` (whose parser built all of their modules)."""
    if args.command == "audit":
        return _command("audit_reads").run(args)
    if args.command in _command("client_commands").COMMANDS:
        return _command("client_commands").run(args)
    if args.command == "completion":
        return _command("completion").run(args.shell, build_parser())
    return _command(args.command).run(args)


def report_ignored(settings: Settings) -> None:
    """Kafka settings given that have no effect here: each named once, at start."""
    for name, reason in settings.ignored.items():
        logging.getLogger("contextplane").warning("setting %s ignored (%s)", name, reason)
    for warning in deprecations(settings):
        logging.getLogger("contextplane").warning("%s", warning)


async def _run(settings: Settings, registry_port: int | None = None) -> int:
    """Run a broker until SIGINT/SIGTERM (exit status 0), or until another incarnation
    takes its node.id (1: a supervisor restarts it as a fresh incarnation); with
    `registry_port`, the schema registry beside it, a client of its first listener."""
    from contextplane.broker.app import Broker
    from contextplane.broker.gc_policy import settle_after_start
    from contextplane.console.beside import bind_http, start_beside

    # A crash in C code (SIGSEGV, SIGBUS, SIGABRT) leaves every thread's traceback in the
    # log instead of a silent exit.
    faulthandler.enable()
    http_socket = bind_http(settings)  # before anything starts: a taken port is found first
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_on(sig: signal.Signals) -> None:
        logging.getLogger("contextplane").info("%s received", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_on, sig)
    try:
        broker = Broker(settings)
        await broker.start()
    except BaseException:
        if http_socket is not None:
            http_socket.close()
        raise
    # Everything start-up loaded is long-lived: out of the collector's scans from here on.
    freezer = settle_after_start()
    print(f"contextplane broker ready on {settings.host}:{broker.bound_port}", flush=True)
    dataclass_code.save()  # what start-up compiled, for the next start (cli/launch.py)
    beside = (
        _command("registry").start_beside(
            settings.host, broker.bound_port, registry_port, broker.pipeline.services
        )
        if registry_port is not None
        else None
    )
    http = start_beside(http_socket, broker.pipeline.services, settings) if http_socket else None
    stopped = asyncio.create_task(stop.wait())
    lost = asyncio.create_task(broker.registration_lost.wait())
    await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    lost.cancel()
    if beside is not None:  # a client of the broker: stopped first
        await beside.stop()
    if http is not None:
        await http.stop()
    logging.getLogger("contextplane").info(
        "shutting down (heap frozen after %d slow full collections)", freezer.freezes
    )
    # Storage close is bounded by shutdown.timeout.ms; the slack covers the rest.
    deadline_s = settings.shutdown_timeout_ms / 1000 + _SHUTDOWN_SLACK_S
    try:
        async with asyncio.timeout(deadline_s):  # wait_for can drop a cancellation (3.11)
            await broker.stop()
    except TimeoutError:
        logging.getLogger("contextplane").warning(
            "shutdown did not finish within %.0f s; exiting (the WAL keeps the data)", deadline_s
        )
    return 1 if broker.registration_lost.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
