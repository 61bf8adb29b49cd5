"""The MCP tools' arguments checked and bounded before any service is asked: each refusal
names the argument and what was expected, and becomes the tool call's error."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from contextplane.services.actions.ledger import KEY_BYTES_MAX, REQUEST_BYTES_MAX
from contextplane.services.context.service import FENCE_PARTITIONS_MAX, FENCE_WAIT_MS_MAX
from contextplane.services.trace.event import HEADER_CHARS_MAX, OFFSET_MAX, PARTITION_MAX

# A view, entity or tool name, at most (an entity id is a URL path segment).
NAME_CHARS_MAX = 1024
# The arguments of a tool call, encoded: what leaves room for the rest of the request
# record, whose value the executor bounds at REQUEST_BYTES_MAX.
ARGUMENTS_BYTES_MAX = REQUEST_BYTES_MAX - 4096
# How long `call_tool` waits for an outcome, at most (a tool's own bound is 120 s).
CALL_WAIT_S_MAX = 150.0
# How long `trace_decision` scans, at most.
TRACE_TIMEOUT_S_MAX = 120.0


class ArgumentError(ToolError):
    """An argument the tool refuses (the message names it): the call's error."""


def name(argument: str, value: str, chars_max: int = NAME_CHARS_MAX) -> str:
    if not 0 < len(value) <= chars_max:
        raise ArgumentError(f"{argument}: expected 1 to {chars_max} characters, got {len(value)}")
    return value


def decision_id(value: str | None) -> str | None:
    """A decision id as the event's `ce_id` header carries it."""
    return None if value is None else name("decision_id", value, HEADER_CHARS_MAX)


def idempotency_key(value: str) -> str:
    size = len(value.encode())
    if not 0 < size <= KEY_BYTES_MAX:
        raise ArgumentError(f"idempotency_key: expected 1 to {KEY_BYTES_MAX} bytes, got {size}")
    return value


def tool_arguments(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value).encode())
    if size > ARGUMENTS_BYTES_MAX:
        raise ArgumentError(
            f"arguments: {size} bytes encoded, past the {ARGUMENTS_BYTES_MAX} bytes a call carries"
        )
    return value


def offsets(argument: str, value: dict[str, Any] | None) -> dict[tuple[str, int], int] | None:
    """`{topic: {partition: offset}}` (the context service's JSON shape) as the client's
    vector; partitions as decimal strings or integers."""
    if value is None:
        return None
    vector: dict[tuple[str, int], int] = {}
    for topic, partitions in value.items():
        name(f"{argument} topic", topic, 249)
        if not isinstance(partitions, dict):
            raise ArgumentError(f"{argument}.{topic}: expected {{partition: offset}}")
        for partition, offset in partitions.items():
            where = f"{argument}.{topic}.{partition}"
            number = _integer(where, partition, 0, PARTITION_MAX)
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise ArgumentError(f"{where}: expected an offset (an integer)")
            vector[(topic, number)] = _integer(where, offset, 0, OFFSET_MAX)
            if len(vector) > FENCE_PARTITIONS_MAX:
                raise ArgumentError(f"{argument}: more than {FENCE_PARTITIONS_MAX} partitions")
    return vector


def point_in_time(
    value: dict[str, Any] | None,
) -> tuple[dict[tuple[str, int], int] | None, int | None]:
    """`as_of`: an offset vector, or `{"timestamp_ms": T}` (the HTTP API's shapes)."""
    if value is None:
        return None, None
    if "timestamp_ms" in value and not isinstance(value["timestamp_ms"], dict):
        if len(value) != 1:
            raise ArgumentError("as_of: a timestamp_ms or an offset vector, not both")
        stamp = value["timestamp_ms"]
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise ArgumentError("as_of.timestamp_ms: expected milliseconds since the epoch")
        return None, _integer("as_of.timestamp_ms", stamp, 0, OFFSET_MAX)
    return offsets("as_of", value), None


def timeout_ms(value: int | None) -> int | None:
    if value is None:
        return None
    return _integer("timeout_ms", value, 1, FENCE_WAIT_MS_MAX)


def seconds(argument: str, value: float, most: float) -> float:
    if not 0 < value <= most:
        raise ArgumentError(f"{argument}: expected more than 0 and at most {most:g} seconds")
    return value


def _integer(argument: str, value: Any, least: int, most: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{argument}: expected an integer, got {str(value)[:40]!r}") from None
    if not least <= number <= most:
        raise ArgumentError(f"{argument}: expected {least} to {most}, got {number}")
    return number
