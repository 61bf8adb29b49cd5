"""The MCP server: the three tools (tools.py) with their argument schemas and
descriptions, served over stdio (one agent, the default) or streamable HTTP on
127.0.0.1 (`--http PORT`, path `/mcp`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from contextplane.services.bound_socket import bind
from contextplane.services.http_server import REQUEST_HEAD_S, serve
from contextplane.services.mcp.tools import CopilotTools

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PATH = "/mcp"
# An HTTP request body, at most: a tool call's arguments are bounded at 60 KiB.
HTTP_BODY_BYTES_MAX = 256 * 1024
HTTP_SESSIONS_MAX = 100

INSTRUCTIONS = """\
contextplane's copilot data plane. get_context reads an entity of a view with its
freshness (read your own writes with min_offsets, a point in time with as_of);
call_tool performs a policy-gated tool call once per idempotency key; trace_decision
follows a decision back to its sources. Pass the same decision_id to the reads and calls
of one decision: each is recorded on it, and trace_decision shows them."""

DecisionId = Annotated[
    str | None,
    Field(description="record this read or call on the decision of this id (see trace_decision)"),
]


def build(tools: CopilotTools) -> MCPServer:
    server = MCPServer("contextplane", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(
        description="An entity's state in a context view, with where it last changed "
        "(changed_by: topic, partition, offset) and its freshness (lag, age, stale)."
    )
    def get_context(
        view: Annotated[str, Field(description="the view's name")],
        entity: Annotated[str, Field(description="the entity's id")],
        min_offsets: Annotated[
            dict[str, dict[str, int]] | None,
            Field(
                description="read fence {topic: {partition: offset}}: answer once the record "
                "at each offset is applied (e.g. one the agent produced)"
            ),
        ] = None,
        as_of: Annotated[
            dict[str, Any] | None,
            Field(
                description="point in time: {topic: {partition: offset}} (the state once the "
                'records below each offset were applied) or {"timestamp_ms": T}'
            ),
        ] = None,
        timeout_ms: Annotated[
            int | None, Field(description="how long a fence may wait (1 to 30000 ms; 5000)")
        ] = None,
        decision_id: DecisionId = None,
    ) -> dict[str, Any]:
        return _answer(
            "get_context",
            lambda: tools.get_context(view, entity, min_offsets, as_of, timeout_ms, decision_id),
        )

    @server.tool(
        description="Perform a tool through the executor: its policy is evaluated and the "
        "call made at most once per idempotency key (the same key again answers the recorded "
        "outcome). A call its policy denies, or that did not end done, is an error."
    )
    def call_tool(
        tool: Annotated[str, Field(description="the tool's name in the executor's tools file")],
        arguments: Annotated[dict[str, Any], Field(description="the tool's arguments (JSON)")],
        idempotency_key: Annotated[
            str, Field(description="one key per intended effect: a retry reuses it")
        ],
        decision_id: DecisionId = None,
        wait_s: Annotated[
            float | None, Field(description="how long to wait for the outcome (s; 30)")
        ] = None,
    ) -> dict[str, Any]:
        return _answer(
            "call_tool",
            lambda: tools.call_tool(tool, arguments, idempotency_key, decision_id, wait_s),
        )

    @server.tool(
        description="A decision followed back: its context reads to their source records, its "
        "tool calls to their requests, ledger entries and policy evaluations, its write-backs "
        "(the tree `contextplane trace --output json` prints)."
    )
    def trace_decision(
        decision_id: Annotated[str, Field(description="the decision's id")],
        timeout_s: Annotated[
            float | None, Field(description="how long the scan may take (s; 30)")
        ] = None,
    ) -> dict[str, Any]:
        return _answer("trace_decision", lambda: tools.trace_decision(decision_id, timeout_s))

    return server


def _answer(tool: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The tool's answer; a failure nothing named (a bug) still reaches the agent as its
    type and message, the traceback only in the server's log."""
    try:
        return body()
    except ToolError:
        raise
    except Exception as exc:
        log.exception("%s failed", tool)
        raise ToolError(f"{tool}: {type(exc).__name__}: {exc}") from None


def run_stdio(server: MCPServer) -> None:
    server.run("stdio")


def run_http(server: MCPServer, port: int, request_head_s: float = REQUEST_HEAD_S) -> None:
    """Until SIGINT or SIGTERM, on the services' HTTP server (http_server.py): a request
    head that trickles is dropped after its deadline and connections are bounded, which
    the SDK's own uvicorn set-up does not do (a client sending half a head held its
    connection for good)."""
    asyncio.run(_serve_http(server, port, request_head_s))


async def _serve_http(server: MCPServer, port: int, request_head_s: float) -> None:
    app = server.streamable_http_app(
        streamable_http_path=PATH,
        max_request_body_size=HTTP_BODY_BYTES_MAX,
        max_sessions=HTTP_SESSIONS_MAX,
        host=HOST,
    )
    sock = bind(HOST, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with server.session_manager.run():  # the app's lifespan, which serve skips
            await serve(app, sock, stop, request_head_s=request_head_s)
    finally:
        sock.close()
