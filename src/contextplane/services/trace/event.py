"""A decision event as it is on `copilot.decisions`: a CloudEvents 1.0 record in the Kafka
binding's binary mode (attributes in `ce_*` headers, the data as the record's value),
keyed by the decision id.

    headers  ce_specversion=1.0, ce_id=<decision id>, ce_type=io.contextplane.copilot.decision,
             ce_source=<the copilot>, ce_time=<RFC 3339>, content-type=application/json,
             correlationid=<conversation or request>, causationid=<what caused it>
    value    {"decision_id", "reads": [...], "tool_calls": [...], "write_backs": [...],
              "outcome", "started_ms", "ended_ms", "input"?, "replay_of"?}

A read: `{view, entity, found, positions: [{topic, partition, position}], age_ms, lag,
stale, changed_by?: {topic, partition, offset, timestamp_ms}, changelog?: {topic,
partition, offset}, as_of?}` (`changelog`: the context service's record it answered
from). A tool call:
`{key, tool, arguments, state, request?: {partition, offset}, error?}`. A write-back:
`{topic, partition, offset}`. `input` is what the decision was asked (a replay gives it to
the copilot function again); `replay_of` `{topic, partition, offset}` marks a replayed
decision (on `copilot.replay.<run>`) with the original it replays.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DECISIONS_TOPIC = "copilot.decisions"
CE_TYPE = "io.contextplane.copilot.decision"
SPEC_VERSION = "1.0"
# Kafka's default max.message.bytes (1,048,588) and librdkafka's message.max.bytes
# (1,000,000): a decision is refused past the smaller of the topic's bound and this.
CLIENT_MESSAGE_BYTES_MAX = 1_000_000
# What a record's batch framing and headers take beyond the key and value, at most here.
RECORD_OVERHEAD_BYTES = 4096
# Names a header carries: ids, a source, at most this long.
HEADER_CHARS_MAX = 1024
# Kafka's topic names, partitions (int32) and offsets (int64): a recorded position
# outside these names no record (and a client given one raises, or waits out its timeout).
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
PARTITION_MAX = 2**31 - 1
OFFSET_MAX = 2**63 - 1


class DecisionTooLargeError(ValueError):
    """The decision's record would pass the topic's bound."""


@dataclass(frozen=True)
class Attributes:
    """The CloudEvents attributes of one decision."""

    id: str
    source: str
    time_ms: int
    correlation_id: str
    causation_id: str


def headers(attributes: Attributes) -> list[tuple[str, bytes]]:
    time = datetime.fromtimestamp(attributes.time_ms / 1000, UTC)
    return [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", attributes.id.encode()),
        ("ce_type", CE_TYPE.encode()),
        ("ce_source", attributes.source.encode()),
        ("ce_time", time.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()),
        ("content-type", b"application/json"),
        ("correlationid", attributes.correlation_id.encode()),
        ("causationid", attributes.causation_id.encode()),
    ]


def check_name(what: str, text: str) -> str:
    if not 0 < len(text) <= HEADER_CHARS_MAX:
        raise ValueError(f"{what}: expected 1 to {HEADER_CHARS_MAX} characters")
    return text


def encode(document: dict[str, Any], key: str, bytes_max: int) -> bytes:
    """The value's bytes; DecisionTooLargeError naming the sizes past `bytes_max`."""
    value = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    size = len(value) + len(key.encode()) + RECORD_OVERHEAD_BYTES
    if size > bytes_max:
        raise DecisionTooLargeError(
            f"decision {key!r}: its record would be {size} bytes, past the {bytes_max} bytes"
            f" {DECISIONS_TOPIC} takes (max.message.bytes): {len(document.get('reads', []))}"
            f" reads, {len(document.get('tool_calls', []))} tool calls"
        )
    return value


def header_map(raw: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """A record's headers as text (the last of a repeated name wins)."""
    return {name: (value or b"").decode(errors="backslashreplace") for name, value in raw or []}


def loads(raw: bytes) -> Any:
    """A record's value as JSON; ValueError also for nesting too deep to decode (a record
    written by anyone may be a megabyte of `[`)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def position(topic: Any, partition: Any, offset: Any) -> tuple[str, int, int] | None:
    """A recorded topic, partition and offset, typed, if they can name a record at all."""
    if (
        isinstance(topic, str)
        and _TOPIC_NAME.fullmatch(topic) is not None
        and type(partition) is int
        and 0 <= partition <= PARTITION_MAX
        and type(offset) is int
        and 0 <= offset <= OFFSET_MAX
    ):
        return topic, partition, offset
    return None


def new_decision_id(time_ms: int) -> str:
    """A UUIDv7 (RFC 9562): its first 48 bits are `time_ms`, the decision's start, so
    `trace` can start reading where the decision is (ListOffsets by that time) instead
    of scanning the topic from its start."""
    random = int.from_bytes(os.urandom(10), "big")
    value = (
        (time_ms & (2**48 - 1)) << 80
        | 0x7 << 76  # version
        | (random >> 62 & 0xFFF) << 64  # rand_a
        | 0b10 << 62  # variant
        | random & (2**62 - 1)  # rand_b
    )
    return str(uuid.UUID(int=value))


def id_time_ms(decision_id: str) -> int | None:
    """The time a UUIDv7 decision id carries (ms since the epoch), else None."""
    if len(decision_id) != 36:
        return None
    try:
        parsed = uuid.UUID(decision_id)
    except ValueError:
        return None
    return parsed.int >> 80 if parsed.version == 7 else None
