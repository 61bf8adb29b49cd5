"""Where audit records and read receipts go: a bounded buffer, appended in batches to
the internal topics `__contextplane_audit` and `__contextplane_read_receipts` (and, for
audit records, a JSON-lines file when `contextplane.audit.file` names one).

Producers of records (`AuditLog`, `ReadReceipts`) call `offer`, which never waits: the
record joins the buffer, or, when the buffer holds `contextplane.audit.buffer.records`
records, it is dropped and counted (`dropped`), with one warning per episode. A flusher
task appends what is buffered every `contextplane.audit.flush.interval.ms` (sooner once a
batch's worth is waiting), through `cluster/forwarder.py`: locally when this broker
leads the topic's partition, else as a Produce to its leader. Records that could not be
written (a leader away, moving or killed) stay in the buffer, counted in
`failed_writes`, and are retried at the next round; so a leader away for long fills the
buffer, and the overflow policy decides. With `contextplane.audit.overflow.policy=fail-closed` the
pipeline asks `refusing()` before each request and closes the connection of a request
while the buffer is full, so nothing that would be audited happens unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path

from contextplane import limits
from contextplane.broker import internal_topics
from contextplane.broker.internal_topics import (
    AUDIT_TOPIC,
    READ_RECEIPTS_TOPIC,
    InternalTopic,
)
from contextplane.broker.topics import TopicManager
from contextplane.clock import Clock
from contextplane.cluster.forwarder import PartitionWriter
from contextplane.errors import KafkaError
from contextplane.logsafe import escape
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import encode_batch
from contextplane.settings import Settings
from contextplane.tasks import cancel_and_wait, log_round_failure

log = logging.getLogger(__name__)

# A leader's answers that no retry changes.
_NEVER_TAKEN = frozenset(
    {
        ErrorCode.message_too_large,
        ErrorCode.record_list_too_large,
        ErrorCode.invalid_record,
        ErrorCode.corrupt_message,
    }
)
FAIL_OPEN = "fail-open"
FAIL_CLOSED = "fail-closed"
OVERFLOW_POLICIES = (FAIL_OPEN, FAIL_CLOSED)


def audit_topics(settings: Settings) -> list[InternalTopic]:
    """The two topics, one partition each (their records are ordered in time)."""
    return [
        InternalTopic(
            AUDIT_TOPIC,
            1,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.audit_topic_retention_ms),
                "retention.bytes": str(settings.audit_topic_retention_bytes),
            },
        ),
        InternalTopic(
            READ_RECEIPTS_TOPIC,
            1,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.audit_read_receipts_retention_ms),
                "retention.bytes": str(settings.audit_read_receipts_retention_bytes),
            },
        ),
    ]


class AuditSink:
    def __init__(
        self, writer: PartitionWriter, topics: TopicManager, settings: Settings, clock: Clock
    ) -> None:
        self._writer = writer
        self._topics = topics
        self._settings = settings
        self._wall_ms = clock.wall_ms
        self.capacity = settings.audit_buffer_records
        self.fail_closed = settings.audit_overflow_policy == FAIL_CLOSED
        self._file = Path(settings.audit_file) if settings.audit_file else None
        self._buffer: deque[tuple[str, bytes, bytes]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: two would take the same buffered records and write them twice
        # (the flusher's round and an explicit flush, or the stop's).
        self._flushing = asyncio.Lock()
        self._overflowing = False
        self._failing = False  # a write failed: the next failures are logged quietly
        self._filed = 0  # records at the front of the buffer already in the audit file
        # Called before each flush (True at the stop): the audit log's summaries of the
        # denial records its rate bound held back (`AuditLog.report_suppressed`).
        self.before_flush: Callable[[bool], None] | None = None
        # What a test or an operator reads: records dropped at a full buffer, requests
        # refused (fail-closed), appends and file writes that failed, records written.
        self.dropped = 0
        self.refused = 0
        self.failed_writes = 0
        self.written = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for topic in audit_topics(self._settings):
            if await internal_topics.ensure(self._topics, topic):
                log.info("created %s", topic.name)
        self._task = asyncio.create_task(self._run(), name="audit-sink")

    async def stop(self) -> None:
        """Write what is buffered, then stop."""
        await cancel_and_wait(self._task)
        self._task = None
        if self.before_flush is not None:
            self.before_flush(True)
        await self.flush()
        if self._buffer:
            log.warning("%d audit records could not be written before the stop", len(self._buffer))

    # -- producers of records -------------------------------------------------------------

    @property
    def full(self) -> bool:
        return len(self._buffer) >= self.capacity

    def offer(self, topic: str, key: bytes, value: bytes) -> bool:
        """Buffer one record; False (dropped and counted) when the buffer is full."""
        buffer = self._buffer
        if len(buffer) >= self.capacity:
            self.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                log.warning(
                    "audit buffer full (%d records): the sink cannot keep up; %s",
                    self.capacity,
                    "requests are refused until it drains"
                    if self.fail_closed
                    else "records are dropped and counted",
                )
            return False
        buffer.append((topic, key, value))
        if len(buffer) >= limits.AUDIT_BATCH_RECORDS:
            self._wake.set()
        return True

    def refusing(self) -> bool:
        """Fail-closed and full: the request about to be handled must be refused."""
        if self.fail_closed and len(self._buffer) >= self.capacity:
            self.refused += 1
            return True
        return False

    # -- the flusher ----------------------------------------------------------------------

    async def _run(self) -> None:
        interval_s = self._settings.audit_flush_interval_ms / 1000
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if self.before_flush is not None:
                    self.before_flush(False)
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - counted; the next round goes on
                self.failed_writes += 1
                log_round_failure(log, "audit flush", exc)

    async def flush(self) -> None:
        """Write what is buffered; records that could not be written stay at the front of
        the buffer for the next round (their place counts against its capacity). A flush
        called while one is writing waits for it, then writes what is left."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        taken = list(buffer)  # kept in the buffer until written
        if self._overflowing:
            self._overflowing = False
            log.warning("audit buffer drained; %d records dropped so far", self.dropped)
        by_topic: dict[str, list[int]] = {}
        for index, (topic, _, _) in enumerate(taken):
            by_topic.setdefault(topic, []).append(index)
        if self._file is not None:
            # Records kept from a failed round are in the file already.
            lines = [v for t, _, v in taken[self._filed :] if t == AUDIT_TOPIC]
            if lines:
                try:
                    await asyncio.to_thread(_append_lines, self._file, lines)
                except OSError as exc:
                    self.failed_writes += 1
                    log.warning(
                        "writing the audit file %s failed: %s", escape(str(self._file)), exc
                    )
        now = self._wall_ms()
        written = await asyncio.gather(
            *(
                self._write_topic(topic, [taken[i][1:] for i in indexes], now)
                for topic, indexes in by_topic.items()
            )
        )
        unwritten = sorted(
            i
            for indexes, done in zip(by_topic.values(), written, strict=True)
            for i in indexes[done:]
        )
        kept = [taken[i] for i in unwritten]
        newer = list(buffer)[len(taken) :]
        buffer.clear()
        buffer.extend(kept)
        buffer.extend(newer)
        self._filed = len(kept)
        self.written += len(taken) - len(kept)

    async def _write_topic(
        self, topic: str, records: list[internal_topics.Record], now_ms: int
    ) -> int:
        """Write `records` in batches to the topic's partition, wherever it is led; how
        many were written (a failure stops at its batch: the rest are kept)."""
        done = 0
        for chunk in internal_topics.chunks(records):
            try:
                await self._writer.write(
                    topic, 0, [encode_batch(chunk, now_ms)], limits.BROKER_WRITE_TIMEOUT_S
                )
            except KafkaError as exc:
                if exc.code not in _NEVER_TAKEN:
                    return await self._failed(topic, len(records) - done, done, exc)
                # A leader that will never take this batch (its topic's max.message.bytes
                # lowered below it): given up, counted and logged, so later records go on.
                self.failed_writes += 1
                log.warning("%d records to %s given up: %s", len(chunk), topic, exc)
            except Exception as exc:  # noqa: BLE001 - a leader away, a full disk, a deletion
                return await self._failed(topic, len(records) - done, done, exc)
            done += len(chunk)
        if done and self._failing:
            self._failing = False
            log.warning("appending to %s works again", topic)
        return done

    async def _failed(self, topic: str, count: int, done: int, exc: Exception) -> int:
        """Count and log a failed write of `count` records (kept); returns `done`."""
        self.failed_writes += 1
        (log.info if self._failing else log.warning)(
            "appending %d records to %s failed (kept to retry): %s", count, topic, exc
        )
        self._failing = True
        if topic not in self._topics.topics():
            await self._recreate()
        return done

    async def _recreate(self) -> None:
        """DeleteTopics may delete an internal topic, as Kafka allows: create it again."""
        for topic in audit_topics(self._settings):
            with contextlib.suppress(Exception):
                await internal_topics.ensure(self._topics, topic)


def _append_lines(path: Path, lines: list[bytes]) -> None:
    with path.open("ab") as out:
        out.write(b"".join(line + b"\n" for line in lines))
