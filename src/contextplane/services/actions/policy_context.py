"""The context a tool's policy reads: the tool's entity from the context service, behind
a read fence at the request's `context_offsets` (RFC 0006 §2, "The policy's context")."""

from __future__ import annotations

from typing import Any

from contextplane.services.actions.requests import Request
from contextplane.services.context.client import ContextClient, ContextClientError

# A context read's fence wait, at most (the tool's own time bound is for the endpoint).
CONTEXT_WAIT_MS = 5_000


def read_context(
    context_url: str | None, request: Request
) -> tuple[dict[str, Any] | None, dict[str, Any]] | str:
    """The tool's context entity (its state, what was read), or why it could not be."""
    tool_context = request.tool.context
    assert tool_context is not None
    if context_url is None:
        return "the tool reads context and the executor has no --context-url"
    value: Any = request.arguments
    for part in tool_context.entity_path:
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str | int) or isinstance(value, bool):
        path = ".".join(tool_context.entity_path)
        return f"arguments.{path}: no entity id there"
    client = ContextClient(context_url)
    try:
        answer = client.get(
            tool_context.view,
            str(value),
            min_offsets=request.context_offsets,
            timeout_ms=CONTEXT_WAIT_MS if request.context_offsets else None,
        )
    except ContextClientError as exc:
        return f"context {tool_context.view}/{value}: {exc.status} {exc}"
    except OSError as exc:
        return f"context {tool_context.view}/{value}: {exc}"
    read = {
        "view": answer.view,
        "entity": answer.entity,
        "found": answer.found,
        "positions": [
            {"topic": p.topic, "partition": p.partition, "position": p.position}
            for p in answer.freshness.partitions
        ],
        "age_ms": answer.freshness.age_ms,
    }
    return answer.state if answer.found else None, read
