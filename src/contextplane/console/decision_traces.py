"""The console's decisions: the newest records of `copilot.decisions` (RFC 0006 §4) and one
decision's trace tree, read through the storage engine (console/stored_records.py), never
through a Kafka client.

The tree is `contextplane trace`'s own (`services/trace/reader.py`'s `trace`), run in a
worker thread over `StorageTraceReader`, which answers the reader's two questions (the
record at an offset; every record of a topic) from the partitions this broker leads, each
read handed to the event loop and awaited with what is left of the deadline.

Bounded: the list reads the last `DECISIONS_SHOWN` offsets of at most
`PARTITIONS_READ_MAX` partitions, `LIST_READ_BYTES` each; a trace ends by `TRACE_S`, scans
at most `SCAN_RECORDS_MAX` records and `SCAN_BYTES_MAX` bytes per topic, and a link it
could not follow in time says so. Values are decoded in worker threads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from contextplane.clock import SystemClock
from contextplane.console.stored_records import StoredMessage, committed_records
from contextplane.errors import KafkaError
from contextplane.services.trace import event
from contextplane.services.trace.reader import Link, place, trace

if TYPE_CHECKING:
    from contextplane.broker.context import Services
    from contextplane.storage.partition import PartitionLog

DECISIONS_TOPIC = event.DECISIONS_TOPIC
DECISIONS_SHOWN = 50
PARTITIONS_READ_MAX = 64
LIST_READ_BYTES = 4 * 1024 * 1024
TRACE_S = 10.0
SCAN_RECORDS_MAX = 100_000
SCAN_BYTES_MAX = 64 * 1024 * 1024
SCAN_CHUNK_BYTES = 1024 * 1024
FIELD_CHARS_MAX = 200
_CLOCK = SystemClock()
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DecisionRow:
    partition: int
    offset: int
    decision_id: str
    time: str
    source: str
    outcome: str
    reads: int
    tool_calls: int
    write_backs: int
    timestamp_ms: int


async def recent_decisions(services: Services) -> list[DecisionRow] | None:
    """The newest decisions, newest first; None when no partition of the topic is led here."""
    record = services.topics.topics().get(DECISIONS_TOPIC)
    partitions = []
    for index in range(min(record.partitions, PARTITIONS_READ_MAX) if record else 0):
        led = services.log.partitions.get((DECISIONS_TOPIC, index))
        if led is not None and not led.deleted:
            partitions.append(led)
    if not partitions:
        return None
    messages: list[StoredMessage] = []
    for partition in partitions:
        end = partition.last_stable_offset
        start = max(partition.log_start_offset, end - DECISIONS_SHOWN)
        found, _ = await committed_records(services.log, partition, start, end, LIST_READ_BYTES)
        messages += found
    return await asyncio.to_thread(_rows, messages)


def _rows(messages: list[StoredMessage]) -> list[DecisionRow]:
    newest = sorted(messages, key=lambda m: (m.stamp_ms, m.at), reverse=True)
    return [_row(m) for m in newest[:DECISIONS_SHOWN]]


def _row(message: StoredMessage) -> DecisionRow:
    headers = event.header_map(message.headers())
    raw = message.value() or b""
    try:
        document = event.loads(raw) if len(raw) <= event.CLIENT_MESSAGE_BYTES_MAX else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = {}
    key = (message.key() or b"").decode(errors="backslashreplace")

    def count(name: str) -> int:
        value = document.get(name)
        return len(value) if isinstance(value, list) else 0

    outcome = document.get("outcome")
    return DecisionRow(
        message.partition(),
        message.offset(),
        _cut(headers.get("ce_id") or key),
        _cut(headers.get("ce_time", "")),
        _cut(headers.get("ce_source", "")),
        _cut(outcome if isinstance(outcome, str) else json.dumps(outcome)),
        count("reads"),
        count("tool_calls"),
        count("write_backs"),
        message.stamp_ms,
    )


async def decision_trace(services: Services, partition: int, offset: int) -> Link | None:
    """The trace tree of the decision at that position; None when there is no record there
    (or the partition is not led here)."""
    led = services.log.partitions.get((DECISIONS_TOPIC, partition))
    if led is None or led.deleted:
        return None
    found, _ = await committed_records(services.log, led, offset, offset + 1, LIST_READ_BYTES)
    if not found or found[0].offset() != offset:
        return None
    reader = StorageTraceReader(services, asyncio.get_running_loop(), TRACE_S)
    return await asyncio.to_thread(trace, reader, found[0])


class StorageTraceReader:
    """The trace reader's `read_at` and `scan` over the partitions this broker leads, for
    `trace` in a worker thread; every answer comes by the one deadline."""

    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop, timeout_s: float):
        self._services = services
        self._loop = loop
        self._timeout_s = timeout_s
        self._deadline_ms = _CLOCK.monotonic_ms() + timeout_s * 1000
        # What `trace` reports on its root: records read per topic, and how the decision
        # was found (the console names it by its position).
        self.records_read: dict[str, int] = {}
        self.found_by = "position"

    def _left_s(self) -> float:
        return max(0.0, (self._deadline_ms - _CLOCK.monotonic_ms()) / 1000)

    def _on_loop(self, make: Callable[[], Coroutine[Any, Any, _T]]) -> _T | None:
        """The coroutine's result, run on the broker's loop; None past the deadline."""
        if self._left_s() <= 0:
            return None
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(self._left_s())
        except TimeoutError:
            future.cancel()
            return None

    async def _bounds(self, topic: str, partition: int) -> tuple[PartitionLog, int, int] | str:
        """On the loop (the broker's state changes there): the partition this broker leads
        with its log start and last stable offset, or why it cannot be read here."""
        record = self._services.topics.topics().get(topic)
        if record is None:
            return f"topic {topic}: UNKNOWN_TOPIC_OR_PART"
        if not 0 <= partition < record.partitions:
            return f"topic {topic} has no partition {partition} ({record.partitions} partitions)"
        try:
            led = self._services.log.partition(topic, partition)
        except KafkaError as exc:
            return f"{topic}[{partition}]: not readable by this broker ({exc})"
        return led, led.log_start_offset, led.last_stable_offset

    async def _record_at(self, topic: str, partition: int, offset: int) -> Any:
        bounds = await self._bounds(topic, partition)
        if isinstance(bounds, str):
            return bounds
        led, start, stable = bounds
        if offset < start:
            return f"deleted: before the log start offset {start} (retention or deleteRecords)"
        if offset >= led.high_watermark:
            return f"past the end of the partition (high watermark {led.high_watermark})"
        if offset >= stable:
            return "no committed record at that offset (its transaction is open)"
        found, _ = await committed_records(
            self._services.log, led, offset, offset + 1, SCAN_CHUNK_BYTES
        )
        if not found:
            return "no committed record at that offset (aborted, or a control record)"
        if found[0].offset() != offset:
            return (
                "no record at that offset (removed by compaction, or not committed);"
                f" the next is at {found[0].offset()}"
            )
        return found[0]

    def read_at(self, topic: str, partition: int, offset: int) -> Any:
        """The record at exactly that offset, or why there is none (the reader's words)."""
        found = self._on_loop(partial(self._record_at, topic, partition, offset))
        return f"not read within {self._timeout_s:g} s" if found is None else found

    def scan(
        self,
        topic: str,
        keep: Callable[[Any], None],
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> str | None:
        """Every committed record of `topic` from its start to its end as the scan began,
        given to `keep`; None when all were read, else why the scan stopped short. With
        `since_ms` each partition from its first record stamped at or after it, with
        `until_ms` up to its first record stamped at or after that (what ListOffsets by
        time finds for the Kafka reader)."""
        record = self._services.topics.topics().get(topic)  # a dict's get: safe off the loop
        if record is None:
            return f"topic {topic}: UNKNOWN_TOPIC_OR_PART"
        read = chunks = 0
        log = self._services.log
        late = f"{topic}: not read to its end within {self._timeout_s:g} s"
        for index in range(record.partitions):
            bounds = self._on_loop(partial(self._bounds, topic, index))
            if bounds is None:
                return f"{late} ({read} records)"
            if isinstance(bounds, str):
                return bounds
            led, position, end = bounds
            started = since_ms is None
            while position < end:
                if read >= SCAN_RECORDS_MAX or chunks * SCAN_CHUNK_BYTES >= SCAN_BYTES_MAX:
                    return f"{topic}: stopped after {read} records (the console's bound)"
                chunk = self._on_loop(
                    partial(committed_records, log, led, position, end, SCAN_CHUNK_BYTES)
                )
                if chunk is None:
                    return f"{late} ({read} records)"
                messages, stopped = chunk
                if stopped <= position:
                    break  # nothing more to read below the end (trimmed meanwhile)
                chunks += 1
                for message in messages:
                    stamp = message.timestamp()[1]
                    if not started and stamp < (since_ms or 0):
                        continue
                    started = True
                    if until_ms is not None and stamp >= until_ms:
                        stopped = end  # this partition is read up to `until_ms`
                        break
                    read += 1
                    self.records_read[topic] = self.records_read.get(topic, 0) + 1
                    keep(message)
                position = stopped
        return None


def where(partition: int, offset: int) -> str:
    return place(DECISIONS_TOPIC, partition, offset)


def _cut(text: str) -> str:
    return text if len(text) <= FIELD_CHARS_MAX else text[: FIELD_CHARS_MAX - 1] + "…"
