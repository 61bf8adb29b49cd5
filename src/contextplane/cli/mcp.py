"""`contextplane mcp`: the copilot data plane's MCP server for agent frameworks
(services/mcp/): `get_context`, `call_tool` and `trace_decision`, over stdio (the
default: the agent starts it) or streamable HTTP on 127.0.0.1 (`--http PORT`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from contextplane.cli.kafka_client import ConfigError, security_config
from contextplane.logsafe import log_to_stderr

PORT_MAX = 65535
# The broker's http.request.head.timeout.ms, with its default and bound.
REQUEST_HEAD_MS_DEFAULT = 30_000
REQUEST_HEAD_MS_MAX = 3_600_000


def add_parser(sub: Any) -> None:
    mcp = sub.add_parser(
        "mcp", help="serve context reads, tool calls and decision traces to MCP agents"
    )
    mcp.add_argument(
        "--bootstrap",
        "--bootstrap-server",
        dest="bootstrap",
        required=True,
        help="host:port of the Kafka cluster (tool calls, decisions, traces)",
    )
    mcp.add_argument("--context-url", help="the context service (get_context)")
    mcp.add_argument("--executor-url", help="the tool executor's ledger read (call_tool)")
    mcp.add_argument(
        "--command-config", type=Path, help="client security properties (Kafka's names)"
    )
    mcp.add_argument(
        "--source",
        default="contextplane.mcp",
        help="the decisions' CloudEvents source (default contextplane.mcp)",
    )
    mcp.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        help="serve streamable HTTP on 127.0.0.1:PORT at /mcp instead of stdio",
    )
    mcp.add_argument(
        "--request-head-timeout-ms",
        type=int,
        default=REQUEST_HEAD_MS_DEFAULT,
        metavar="MS",
        help="with --http: how long a connection has to send a request's line and headers "
        f"before it is dropped (default {REQUEST_HEAD_MS_DEFAULT})",
    )
    mcp.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING"))


def run(args: argparse.Namespace) -> int:
    # stdout is the protocol's over stdio: every log line goes to stderr.
    log_to_stderr(args.log_level)
    if args.http is not None and not 0 < args.http <= PORT_MAX:
        return _fail(f"--http: expected a port from 1 to {PORT_MAX}, got {args.http}", 2)
    if not 0 < args.request_head_timeout_ms <= REQUEST_HEAD_MS_MAX:
        return _fail(
            f"--request-head-timeout-ms: expected 1 to {REQUEST_HEAD_MS_MAX}, "
            f"got {args.request_head_timeout_ms}",
            2,
        )
    try:
        security = security_config(args.command_config)
    except (ConfigError, OSError) as exc:
        return _fail(f"--command-config: {exc}", 2)
    from contextplane.services.mcp import server
    from contextplane.services.mcp.tools import CopilotTools, Services

    tools = CopilotTools(
        Services(
            args.bootstrap,
            context_url=args.context_url,
            executor_url=args.executor_url,
            client_config=security,
            source=args.source,
        )
    )
    try:
        app = server.build(tools)
        if args.http is None:
            server.run_stdio(app)
        else:
            server.run_http(app, args.http, args.request_head_timeout_ms / 1000)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:  # the port taken
        return _fail(str(exc), 1)
    finally:
        tools.close()
    return 0


def _fail(message: str, status: int) -> int:
    print(f"contextplane mcp: {message}", file=sys.stderr)
    return status
