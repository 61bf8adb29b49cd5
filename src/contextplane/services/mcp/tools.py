"""The three MCP tools' bodies, synchronous (the SDK runs each call in a worker thread):
each checks its arguments (arguments.py), asks the service through the SDK's own client,
and answers JSON, or raises `ToolError` naming the problem. Reads and calls of a call
naming a decision are recorded on it (agent_decisions.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from mcp.server.mcpserver.exceptions import ToolError

from contextplane.services.actions import ledger
from contextplane.services.actions.client import ActionsClient, ActionsClientError
from contextplane.services.context.client import ContextClient, ContextClientError, EntityContext
from contextplane.services.mcp import arguments
from contextplane.services.mcp.agent_decisions import AgentDecisions
from contextplane.services.trace import reader as trace_reader
from contextplane.services.trace.event import DECISIONS_TOPIC, DecisionTooLargeError
from contextplane.services.trace.reader import TraceError
from contextplane.services.trace.recorder import DecisionError, Decisions

DEFAULT_CALL_WAIT_S = 30.0
DEFAULT_TRACE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Services:
    """Where the services are; a tool whose service is not given says so when called."""

    bootstrap: str
    context_url: str | None = None
    executor_url: str | None = None
    client_config: dict[str, str] = field(default_factory=dict)
    source: str = "contextplane.mcp"


class CopilotTools:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._context = (
            None if services.context_url is None else ContextClient(services.context_url)
        )
        self._actions: ActionsClient | None = None
        self._actions_lock = threading.Lock()
        self._decisions = AgentDecisions(
            lambda: Decisions(
                services.bootstrap, source=services.source, client_config=services.client_config
            )
        )

    def get_context(
        self,
        view: str,
        entity: str,
        min_offsets: dict[str, Any] | None = None,
        as_of: dict[str, Any] | None = None,
        timeout_ms: int | None = None,
        decision_id: str | None = None,
    ) -> dict[str, Any]:
        if self._context is None:
            raise ToolError("get_context: no context service (start with --context-url URL)")
        view = arguments.name("view", view)
        entity = arguments.name("entity", entity)
        fence = arguments.offsets("min_offsets", min_offsets)
        past, past_ms = arguments.point_in_time(as_of)
        wait_ms = arguments.timeout_ms(timeout_ms)
        what = f"context {view}/{entity}"
        with _named(what), self._decisions.recording(arguments.decision_id(decision_id)):
            answer = self._context.get(view, entity, fence, wait_ms, past, past_ms)
        return context_document(answer)

    def call_tool(
        self,
        tool: str,
        arguments_: dict[str, Any],
        idempotency_key: str,
        decision_id: str | None = None,
        wait_s: float | None = None,
    ) -> dict[str, Any]:
        tool = arguments.name("tool", tool)
        arguments.tool_arguments(arguments_)
        key = arguments.idempotency_key(idempotency_key)
        wait = arguments.seconds(
            "wait_s", DEFAULT_CALL_WAIT_S if wait_s is None else wait_s, arguments.CALL_WAIT_S_MAX
        )
        actions = self._actions_client()
        ident = arguments.decision_id(decision_id)
        with _named(f"tool call {key!r}"), self._decisions.recording(ident):
            # Without a decision the request names the key as its decision, as the SDK does.
            outcome = actions.call(tool, arguments_, key, decision_id=ident, wait_s=wait)
        answer = {"state": outcome.state, "result": outcome.result, "entry": outcome.entry}
        if outcome.state != ledger.DONE:
            raise ToolError(refusal_text(tool, key, outcome.state, outcome.entry))
        return answer

    def trace_decision(self, decision_id: str, timeout_s: float | None = None) -> dict[str, Any]:
        ident = arguments.decision_id(decision_id) or ""
        timeout = arguments.seconds(
            "timeout_s",
            DEFAULT_TRACE_TIMEOUT_S if timeout_s is None else timeout_s,
            arguments.TRACE_TIMEOUT_S_MAX,
        )
        config = {"bootstrap.servers": self._services.bootstrap, **self._services.client_config}
        with _named(f"trace of {ident!r}"):
            reader = trace_reader.Reader(config, timeout, trace_reader.RECORDS_MAX)
            try:
                tree, why = trace_reader.find_and_trace(reader, ident)
            finally:
                reader.close()
            if tree is None:
                raise ToolError(f"decision {ident!r} not found in {DECISIONS_TOPIC}{why}")
        return tree.document()

    def _actions_client(self) -> ActionsClient:
        if self._services.executor_url is None:
            raise ToolError("call_tool: no tool executor (start with --executor-url URL)")
        with self._actions_lock:
            if self._actions is None:
                self._actions = ActionsClient(
                    self._services.bootstrap,
                    self._services.executor_url,
                    self._services.client_config,
                )
            return self._actions

    def close(self) -> None:
        if self._actions is not None:
            self._actions.close()
        self._decisions.close()


def context_document(answer: EntityContext) -> dict[str, Any]:
    """The client's answer as JSON: the state, where it last changed and how fresh it is."""
    document = {
        "view": answer.view,
        "entity": answer.entity,
        "found": answer.found,
        "state": answer.state,
        "changed_by": None if answer.changed_by is None else asdict(answer.changed_by),
        "freshness": asdict(answer.freshness),
    }
    if answer.as_of is not None:
        vector: dict[str, dict[str, int]] = {}
        for (topic, partition), offset in sorted(answer.as_of.items()):
            vector.setdefault(topic, {})[str(partition)] = offset
        document["as_of"] = vector
        document["as_of_ms"] = answer.as_of_ms
    if answer.changelog is not None:
        document["changelog"] = asdict(answer.changelog)
    return document


def refusal_text(tool: str, key: str, state: str, entry: dict[str, Any]) -> str:
    """A call that did not end `done`: its state and the ledger's reason."""
    evaluation = entry.get("evaluation") or {}
    if state == ledger.DENIED:
        why = f"denied by its policy (version {evaluation.get('policy_version')})"
    elif state == ledger.AWAITING_APPROVAL:
        why = (
            "awaiting approval: its policy did not permit it, its approval policy would"
            f" (an approval names the key and request {entry.get('request_hash')})"
        )
    else:
        why = state
    reason = entry.get("reason")
    return f"{tool} {key!r}: {why}" + (f": {reason}" if reason else "") + ", not called"


@contextmanager
def _named(what: str) -> Iterator[None]:
    """What the clients raise, as a `ToolError` naming the operation and the cause (the
    fence's timeout, an unreachable service, a decision past its bound)."""
    try:
        yield
    except ToolError:
        raise
    except ContextClientError as exc:
        raise ToolError(f"{what}: {exc.kind or exc.status}: {exc}") from None
    except (ActionsClientError, DecisionError, DecisionTooLargeError, TraceError) as exc:
        raise ToolError(f"{what}: {exc}") from None
    except KafkaException as exc:
        raise ToolError(f"{what}: Kafka: {exc.args[0].str()}") from None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)  # urllib wraps the socket error
        raise ToolError(f"{what}: service unreachable: {reason}") from None
