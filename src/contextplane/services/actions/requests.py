"""A tool call as it arrives on `copilot.tool-calls`: key = idempotency key, value =
`{decision_id, tool, arguments, request_hash, caller?, approved_by?, context_offsets?}`
(JSON). `request_hash` is recomputed here; a request whose hash disagrees with its own
arguments is refused rather than trusted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contextplane.services.actions.ledger import KEY_BYTES_MAX, REQUEST_BYTES_MAX, request_hash
from contextplane.services.actions.tools import Tool

NAME_CHARS_MAX = 200


@dataclass(frozen=True)
class Request:
    key: str
    decision_id: str
    tool: Tool
    arguments: dict[str, Any]
    hash: str
    caller: str
    approved_by: str | None
    # A read fence for the tool's context entity: {(topic, partition): offset}.
    context_offsets: dict[tuple[str, int], int] | None
    value: dict[str, Any]  # the record's value as read (an approval evaluates it again)


@dataclass(frozen=True)
class Refused:
    key: str | None  # None: no usable idempotency key, so no ledger entry can name it
    reason: str
    kind: str = "malformed"  # what /metrics counts it as (else no_key, unknown_tool)


def read_request(
    raw_key: bytes | None, raw_value: bytes | None, tools: dict[str, Tool]
) -> Request | Refused:
    if not raw_key:
        return Refused(None, "no idempotency key (the record key)")
    if len(raw_key) > KEY_BYTES_MAX:
        return Refused(None, f"idempotency key longer than {KEY_BYTES_MAX} bytes")
    try:
        key = raw_key.decode()
    except UnicodeDecodeError:
        return Refused(None, "idempotency key not UTF-8")
    if raw_value is None or len(raw_value) > REQUEST_BYTES_MAX:
        return Refused(key, f"no value, or a value over {REQUEST_BYTES_MAX} bytes")
    try:
        value = json.loads(raw_value)
    except ValueError:
        return Refused(key, "value not JSON")
    except RecursionError:  # a few KiB of `[`: the executor would stop on it at every start
        return Refused(key, "value not JSON (nested too deeply)")
    if not isinstance(value, dict):
        return Refused(key, "value not a JSON object")
    decision_id = value.get("decision_id")
    tool_name = value.get("tool")
    arguments = value.get("arguments")
    caller = value.get("caller", "copilot")
    approved_by = value.get("approved_by")
    for name, field in (("decision_id", decision_id), ("tool", tool_name), ("caller", caller)):
        if not isinstance(field, str) or not 0 < len(field) <= NAME_CHARS_MAX:
            return Refused(key, f"{name}: expected a string of 1 to {NAME_CHARS_MAX} characters")
    if approved_by is not None and (
        not isinstance(approved_by, str) or not 0 < len(approved_by) <= NAME_CHARS_MAX
    ):
        return Refused(key, "approved_by: expected a string")
    assert isinstance(tool_name, str) and isinstance(decision_id, str)
    tool = tools.get(tool_name)
    if tool is None:
        return Refused(key, f"unknown tool {tool_name!r}", "unknown_tool")
    if not isinstance(arguments, dict):
        return Refused(key, "arguments: expected a JSON object")
    hash_ = request_hash(tool_name, arguments)
    if value.get("request_hash", hash_) != hash_:
        return Refused(key, "request_hash does not match the tool and arguments")
    offsets = _offsets(value.get("context_offsets"))
    if isinstance(offsets, str):
        return Refused(key, offsets)
    return Request(key, decision_id, tool, arguments, hash_, caller, approved_by, offsets, value)


def _offsets(raw: Any) -> dict[tuple[str, int], int] | None | str:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return "context_offsets: expected {topic: {partition: offset}}"
    found: dict[tuple[str, int], int] = {}
    for topic, partitions in raw.items():
        if not isinstance(partitions, dict):
            return "context_offsets: expected {topic: {partition: offset}}"
        for partition, offset in partitions.items():
            if not (isinstance(partition, str) and partition.isascii() and partition.isdigit()):
                return "context_offsets: a partition is a decimal number"
            if type(offset) is not int or offset < 0:
                return "context_offsets: an offset is a non-negative integer"
            found[(topic, int(partition))] = offset
    return found
