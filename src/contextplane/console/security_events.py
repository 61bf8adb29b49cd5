"""The latest security events for the console: the tail of the audit topic this broker
leads (`__contextplane_audit`, CloudEvents in JSON: security/audit_events.py), read
through the storage engine as a fetch reads it, never through a Kafka client.

Bounded: the last `EVENTS_SHOWN` offsets, one read of at most `READ_BYTES` (fewer events
when they are larger), decoded in a worker thread; each shown field cut to
`FIELD_CHARS_MAX`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contextplane.broker.internal_topics import AUDIT_TOPIC
from contextplane.errors import KafkaError
from contextplane.protocol.record_codec import read_records

if TYPE_CHECKING:
    from contextplane.broker.context import Services

EVENTS_SHOWN = 100
READ_BYTES = 1024 * 1024
DECOMPRESSED_BYTES_MAX = 16 * 1024 * 1024
FIELD_CHARS_MAX = 200
_TYPE_PREFIX = "io.contextplane.audit."


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    offset: int
    time: str
    kind: str  # authorization, change, authentication, suppressed
    subject: str
    principal: str
    client: str
    action: str  # the API and operation
    outcome: str  # the decision or result, and why


async def recent_events(services: Services) -> list[SecurityEvent] | None:
    """The latest events, newest first; None when the audit topic is not led here."""
    try:
        partition = services.log.partition(AUDIT_TOPIC, 0)
    except KafkaError:
        return None
    end = partition.high_watermark
    start = max(partition.log_start_offset, end - EVENTS_SHOWN)
    if start >= end:
        return []
    batches = await services.log.read(partition, start, READ_BYTES)
    return await asyncio.to_thread(decode, batches, start, end)


def decode(batches: list[bytes | memoryview], start: int, end: int) -> list[SecurityEvent]:
    events = []
    for batch in batches:
        header, records = read_records(batch, DECOMPRESSED_BYTES_MAX)
        if header.is_control:
            continue
        for record in records:
            if start <= record.offset < end and record.value is not None:
                events.append(_event(record.offset, bytes(record.value)))
    return events[::-1]


def _event(offset: int, value: bytes) -> SecurityEvent:
    try:
        event = json.loads(value)
    except (ValueError, RecursionError):
        event = None
    if not isinstance(event, dict):
        return SecurityEvent(offset, "", "unreadable", "", "", "", "", "")
    data = event.get("data")
    data = data if isinstance(data, dict) else {}
    kind = _text(event.get("type"))
    action = " ".join(_text(data.get(k)) for k in ("api", "operation") if data.get(k))
    outcome = " ".join(
        _text(data.get(k)) for k in ("decision", "result", "acl", "reason") if data.get(k)
    )
    return SecurityEvent(
        offset,
        _text(event.get("time")),
        kind.removeprefix(_TYPE_PREFIX),
        _text(event.get("subject")),
        _text(data.get("principal")),
        _text(data.get("client_address")),
        _cut(action),
        _cut(outcome),
    )


def _text(value: Any) -> str:
    return _cut(value if isinstance(value, str) else "" if value is None else str(value))


def _cut(text: str) -> str:
    return text if len(text) <= FIELD_CHARS_MAX else text[: FIELD_CHARS_MAX - 1] + "…"
