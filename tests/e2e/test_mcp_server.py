"""`contextplane mcp` driven by the MCP SDK's own client, over stdio and streamable HTTP,
against a real broker (in process), the context service and the executor as processes,
and a tool endpoint that counts what reaches it: the tools listed; `get_context` answers
the produced state behind a read fence; `call_tool` twice with one key has one effect;
a call its policy denies, a fence never reached and bad arguments come back as tool
errors naming the problem; the reads and calls naming a decision are recorded on it, and
`trace_decision` gives what `contextplane trace --output json` prints."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from contextplane.cli.main import main
from tests.support.actions import CountingEndpoint, ExecutorProcess
from tests.support.broker import free_port
from tests.support.context import TOPICS, VIEWS, ContextProcess
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

TIMEOUT_S = 60

TOOLS = """
[tools.refund]
endpoint = "{url}"
idempotent = true
policy = '''
permit(principal, action, resource == Tool::"refund")
when {{ context.entity has profile && context.entity.profile.tier == "gold"
        && context.arguments.amount <= 100 }};
'''
[tools.refund.context]
view = "account"
entity = "account_id"
"""


@dataclass
class Plane:
    broker: InProcessBroker
    context_url: str
    executor_url: str
    endpoint: CountingEndpoint
    producer: Producer
    tmp: Path

    def produce(self, topic: str, key: str, value: dict[str, Any]) -> tuple[int, int]:
        landed: list[tuple[int, int]] = []

        def delivered(error: Any, message: Any) -> None:
            assert error is None, error
            landed.append((message.partition(), message.offset()))

        self.producer.produce(
            topic, key=key.encode(), value=json.dumps(value).encode(), on_delivery=delivered
        )
        self.producer.flush(TIMEOUT_S)
        return landed[0]

    def mcp_args(self) -> list[str]:
        return [
            "-m",
            "contextplane.cli.main",
            "mcp",
            "--bootstrap",
            self.broker.bootstrap,
            "--context-url",
            self.context_url,
            "--executor-url",
            self.executor_url,
        ]


@pytest.fixture(scope="module", name="plane")
def plane_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    tmp = tmp_path_factory.mktemp("mcp")
    broker = InProcessBroker(tmp / "broker").start()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(t, n, 1) for t, n in TOPICS.items()]).values():
        future.result(TIMEOUT_S)
    views = tmp / "views.toml"
    views.write_text(VIEWS)
    context = ContextProcess(broker.bootstrap, views, tmp / "context", tmp / "context.log")
    context.start()
    endpoint = CountingEndpoint(honours_key=True)
    tools_file = tmp / "tools.toml"
    tools_file.write_text(TOOLS.format(url=endpoint.url))
    executor = ExecutorProcess(
        broker.bootstrap, tools_file, tmp, tmp / "executor.log", transactional_id="executor-mcp"
    )
    executor.extra_args = ["--context-url", context.url]
    executor.start()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    try:
        yield Plane(broker, context.url, executor.url, endpoint, producer, tmp)
    finally:
        executor.stop()
        context.stop()
        endpoint.close()
        broker.stop()


@asynccontextmanager
async def stdio_session(plane: Plane) -> AsyncIterator[ClientSession]:
    """`contextplane mcp` started by the SDK's stdio client, as an agent framework does."""
    params = StdioServerParameters(command=sys.executable, args=plane.mcp_args())
    with open(plane.tmp / "mcp-stdio.log", "a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT_S * 2):
            await body()

    asyncio.run(bounded())


async def answer(session: ClientSession, tool: str, arguments: dict[str, Any]) -> Any:
    """A tool call that succeeded: its structured answer."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    """A tool call that failed: the error's text, which never holds a traceback."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


def test_context_calls_and_the_decision_trace_over_stdio(
    plane: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    account_at = plane.produce("crm.accounts", "a1", {"name": "a1", "tier": "gold"})
    fence = {"crm.accounts": {str(account_at[0]): account_at[1]}}
    arguments = {"account_id": "a1", "amount": 40}

    async def body() -> None:
        async with stdio_session(plane) as session:
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == {"get_context", "call_tool", "trace_decision"}

            read = await answer(
                session,
                "get_context",
                {"view": "account", "entity": "a1", "min_offsets": fence, "decision_id": "d-mcp"},
            )
            assert read["found"] and read["state"]["profile"] == {"name": "a1", "tier": "gold"}
            assert read["changed_by"]["topic"] == "crm.accounts"
            assert (read["changed_by"]["partition"], read["changed_by"]["offset"]) == account_at
            positions = {
                (p["topic"], p["partition"]): p["position"] for p in read["freshness"]["partitions"]
            }
            assert positions[("crm.accounts", account_at[0])] == account_at[1] + 1
            # As of just before that record: the account did not exist yet.
            before = {"crm.accounts": {str(account_at[0]): account_at[1]}}
            then = await answer(
                session, "get_context", {"view": "account", "entity": "a1", "as_of": before}
            )
            assert not then["found"] and then["as_of"]["crm.accounts"] == before["crm.accounts"]

            call = {
                "tool": "refund",
                "arguments": arguments,
                "idempotency_key": "mcp-refund-a1",
                "decision_id": "d-mcp",
            }
            first = await answer(session, "call_tool", call)
            again = await answer(session, "call_tool", call)
            assert first["state"] == again["state"] == "done"
            assert first["result"] == again["result"]
            assert first["entry"]["decision_id"] == "d-mcp"

            traced = await answer(session, "trace_decision", {"decision_id": "d-mcp"})

        # One effect and one request for the key, however often the agent called.
        assert plane.endpoint.effects["mcp-refund-a1"] == 1
        assert plane.endpoint.requests["mcp-refund-a1"] == 1
        # The decision holds the read and both calls, followed back as the CLI does.
        kinds = [child["kind"] for child in traced["children"]]
        assert kinds == ["read", "tool-call", "tool-call"]
        [source] = [c for c in traced["children"][0]["children"] if c["kind"] == "source-record"]
        assert source["status"] == "found"
        assert source["where"] == f"crm.accounts[{account_at[0]}]@{account_at[1]}"
        for tool_call in traced["children"][1:]:
            assert tool_call["detail"] == {"key": "mcp-refund-a1", "state": "done"}
        assert (
            main(
                ["trace", "d-mcp", "--bootstrap-server", plane.broker.bootstrap, "--output", "json"]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out) == traced

    run(body)


def test_refusals_and_bad_arguments_are_named_tool_errors(plane: Plane) -> None:
    silver_at = plane.produce("crm.accounts", "a2", {"name": "a2", "tier": "silver"})
    fence = {"crm.accounts": {str(silver_at[0]): silver_at[1]}}

    async def body() -> None:
        async with stdio_session(plane) as session:
            # Read the silver tier first, so the executor's policy sees it too.
            await answer(
                session, "get_context", {"view": "account", "entity": "a2", "min_offsets": fence}
            )
            denied = {
                "tool": "refund",
                "arguments": {"account_id": "a2", "amount": 40},
                "idempotency_key": "mcp-refund-a2",
                "decision_id": "d-denied",
            }
            text = await error(session, "call_tool", denied)
            assert "mcp-refund-a2" in text and "denied by its policy" in text
            text = await error(session, "call_tool", denied)  # the recorded refusal again
            assert "denied by its policy" in text
            # The refused calls are the decision's too.
            traced = await answer(session, "trace_decision", {"decision_id": "d-denied"})
            states = [c["detail"]["state"] for c in traced["children"]]
            assert states == ["denied", "denied"]

            never = {"crm.accounts": {str(silver_at[0]): 1_000_000}}
            text = await error(
                session,
                "get_context",
                {"view": "account", "entity": "a2", "min_offsets": never, "timeout_ms": 300},
            )
            assert "fence-timeout" in text and "crm.accounts" in text
            text = await error(session, "get_context", {"view": "nope", "entity": "a2"})
            assert "nope" in text

            cases = [
                ("get_context", {"view": "account", "entity": ""}, "entity: expected 1 to"),
                ("get_context", {"entity": "a2"}, "view"),
                (
                    "get_context",
                    {"view": "account", "entity": "a2", "timeout_ms": 60_000},
                    "timeout_ms",
                ),
                (
                    "get_context",
                    {"view": "account", "entity": "a2", "min_offsets": {"t": {"x": 1}}},
                    "min_offsets.t.x: expected an integer",
                ),
                (
                    "get_context",
                    {"view": "account", "entity": "a2", "as_of": {"timestamp_ms": -1}},
                    "as_of.timestamp_ms",
                ),
                (
                    "call_tool",
                    {"tool": "refund", "arguments": {}, "idempotency_key": "k" * 300},
                    "idempotency_key: expected 1 to 256 bytes",
                ),
                (
                    "call_tool",
                    {"tool": "refund", "arguments": {"x": "y" * 70_000}, "idempotency_key": "big"},
                    "arguments: ",
                ),
                (
                    "call_tool",
                    {"tool": "refund", "arguments": {}, "idempotency_key": "w", "wait_s": 0.0},
                    "wait_s",
                ),
                ("trace_decision", {"decision_id": "x" * 2000}, "decision_id"),
                ("trace_decision", {"decision_id": "no-such-decision"}, "not found"),
            ]
            for tool, arguments, named in cases:
                text = await error(session, tool, arguments)
                assert named in text, (tool, arguments, text)

        # Nothing refused reached the endpoint.
        assert plane.endpoint.requests["mcp-refund-a2"] == 0
        assert plane.endpoint.requests["big"] == plane.endpoint.requests["w"] == 0

    run(body)


def test_streamable_http_on_the_loopback_interface(plane: Plane) -> None:
    port = free_port()
    log_path = plane.tmp / "mcp-http.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, *plane.mcp_args(), "--http", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def listening() -> bool:
            assert process.poll() is None, log_path.read_text()
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        wait_until(listening, TIMEOUT_S, "contextplane mcp --http listens")
        at = plane.produce("crm.accounts", "a3", {"name": "a3", "tier": "gold"})

        async def body() -> None:
            url = f"http://127.0.0.1:{port}/mcp"
            async with (
                streamable_http_client(url) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                listed = await session.list_tools()
                assert len(listed.tools) == 3
                got = await answer(
                    session,
                    "get_context",
                    {
                        "view": "account",
                        "entity": "a3",
                        "min_offsets": {"crm.accounts": {str(at[0]): at[1]}},
                    },
                )
                assert got["state"]["profile"]["tier"] == "gold"
                text = await error(session, "get_context", {"view": "", "entity": "a3"})
                assert "view: expected 1 to" in text

        run(body)
    finally:
        process.terminate()
        process.wait(TIMEOUT_S)
