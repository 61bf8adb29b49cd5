"""The recorded decisions a replay runs again: a range of `copilot.decisions` (offsets of
one partition, or record timestamps resolved to offsets of every partition), read
`read_committed` one record at a time, each parsed into what the replay needs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from contextplane.clock import SystemClock
from contextplane.services.actions import ledger
from contextplane.services.trace import event

_POLL_S = 0.2
_CLOCK = SystemClock()


class RangeError(Exception):
    """The range could not be resolved or read (the message names the partition)."""


@dataclass(frozen=True)
class Span:
    """Offsets [start, end) of one partition of the decisions topic."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class Recorded:
    """One recorded decision: where it is, its attributes and its JSON value (None when
    the value is not a decision document, with `unreadable` saying why)."""

    partition: int
    offset: int
    decision_id: str
    source: str
    correlation_id: str
    causation_id: str
    document: dict[str, Any] | None
    unreadable: str | None = None

    @property
    def where(self) -> dict[str, Any]:
        return {"topic": event.DECISIONS_TOPIC, "partition": self.partition, "offset": self.offset}


class DecisionLog:
    """One consumer of the decisions topic (no group), every wait bounded by `timeout_s`."""

    def __init__(self, config: dict[str, Any], timeout_s: float) -> None:
        self._consumer = Consumer(
            config
            | {
                "group.id": f"contextplane-replay-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "error",
            }
        )
        self._timeout_s = timeout_s

    @property
    def client(self) -> Consumer:
        return self._consumer

    def close(self) -> None:
        self._consumer.close()

    def partitions(self) -> list[int]:
        try:
            metadata = self._consumer.list_topics(event.DECISIONS_TOPIC, timeout=self._timeout_s)
        except KafkaException as exc:
            raise RangeError(f"{event.DECISIONS_TOPIC}: {exc.args[0].str()}") from None
        found = metadata.topics.get(event.DECISIONS_TOPIC)
        if found is None or found.error is not None:
            why = found.error.name() if found is not None else "absent"
            raise RangeError(f"topic {event.DECISIONS_TOPIC}: {why}")
        return sorted(found.partitions)

    def watermarks(self, partition: int) -> tuple[int, int]:
        """The log start and the last stable offset (read_committed) of a partition."""
        tp = TopicPartition(event.DECISIONS_TOPIC, partition)
        try:
            low, high = self._consumer.get_watermark_offsets(
                tp, timeout=self._timeout_s, cached=False
            )
        except KafkaException as exc:
            error = exc.args[0]
            raise RangeError(f"{event.DECISIONS_TOPIC}[{partition}]: {error.name()}") from None
        return int(low), int(high)

    def span_of_offsets(self, partition: int, start: int, end: int) -> Span:
        """[start, end) of `partition`, refused where retention deleted `start` and cut
        at the partition's end."""
        if partition not in self.partitions():
            raise RangeError(f"{event.DECISIONS_TOPIC} has no partition {partition}")
        low, high = self.watermarks(partition)
        if start < low:
            raise RangeError(
                f"{event.DECISIONS_TOPIC}[{partition}]: offset {start} is before the log start"
                f" offset {low} (deleted by retention or DeleteRecords)"
            )
        return Span(partition, start, min(end, high))

    def spans_of_times(self, since_ms: int, until_ms: int) -> list[Span]:
        """Per partition, the records stamped from `since_ms` up to (not including)
        `until_ms`: Kafka's offsets for times (the first offset stamped at or after each),
        the partition's end where there is none."""
        partitions = self.partitions()
        ends = {p: self.watermarks(p)[1] for p in partitions}

        def offsets_at(ms: int) -> dict[int, int]:
            wanted = [TopicPartition(event.DECISIONS_TOPIC, p, ms) for p in partitions]
            try:
                found = self._consumer.offsets_for_times(wanted, timeout=self._timeout_s)
            except KafkaException as exc:
                raise RangeError(f"{event.DECISIONS_TOPIC}: {exc.args[0].str()}") from None
            answer: dict[int, int] = {}
            for tp in found:
                if tp.error is not None:
                    raise RangeError(f"{event.DECISIONS_TOPIC}[{tp.partition}]: {tp.error.str()}")
                end = ends[tp.partition]
                answer[tp.partition] = end if tp.offset < 0 or tp.offset > end else tp.offset
            return answer

        starts, stops = offsets_at(since_ms), offsets_at(until_ms)
        return [Span(p, starts[p], max(starts[p], stops[p])) for p in partitions]

    def read(self, span: Span) -> Iterator[Recorded]:
        """Each committed record of the span in offset order (aborted ones and control
        records are skipped by read_committed)."""
        if span.size == 0:
            return
        self._consumer.assign([TopicPartition(event.DECISIONS_TOPIC, span.partition, span.start)])
        try:
            deadline_ms = _CLOCK.monotonic_ms() + self._timeout_s * 1000
            while True:
                message = self._consumer.poll(_POLL_S)
                if message is None:
                    if _CLOCK.monotonic_ms() > deadline_ms:
                        raise RangeError(
                            f"{event.DECISIONS_TOPIC}[{span.partition}]: no record within"
                            f" {self._timeout_s:g} s"
                        )
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    if error.fatal() or not error.retriable():
                        raise RangeError(
                            f"{event.DECISIONS_TOPIC}[{span.partition}]: {error.name()}"
                            f" ({error.str()})"
                        )
                    continue
                if (message.offset() or 0) >= span.end:
                    return
                yield parse(message)
                # The replay of one decision may take long: the wait is per record.
                deadline_ms = _CLOCK.monotonic_ms() + self._timeout_s * 1000
        finally:
            self._consumer.unassign()


def parse(message: Any) -> Recorded:
    headers = event.header_map(message.headers())
    key = (message.key() or b"").decode(errors="backslashreplace")
    ident = headers.get("ce_id") or key
    raw = message.value() or b""
    document: Any = None
    unreadable = None
    if len(raw) > event.CLIENT_MESSAGE_BYTES_MAX:
        unreadable = f"value of {len(raw)} bytes, past {event.CLIENT_MESSAGE_BYTES_MAX}"
    else:
        try:
            document = event.loads(raw)
        except ValueError as exc:
            unreadable = f"value is not JSON ({exc})"
    if unreadable is None and not isinstance(document, dict):
        unreadable = "value is not a decision (not a JSON object)"
    if unreadable is None:
        unreadable = _not_lists(document)
    return Recorded(
        partition=message.partition(),
        offset=message.offset() or 0,
        decision_id=ident,
        source=headers.get("ce_source", ""),
        correlation_id=headers.get("correlationid") or ident,
        causation_id=headers.get("causationid") or ident,
        document=document if unreadable is None else None,
        unreadable=unreadable,
    )


_LISTS = ("reads", "tool_calls", "write_backs")


def _not_lists(document: dict[str, Any]) -> str | None:
    """Why a decision document cannot be replayed: a field that must be a list is not."""
    for name in _LISTS:
        if document.get(name) is not None and not isinstance(document[name], list):
            return f"value's {name} is not a list"
    return None


class RequestArguments:
    """The arguments of a tool call recorded before decisions held them, read back from
    its request record on `copilot.tool-calls` (a consumer of its own, made when first
    needed); None where that record cannot be read."""

    def __init__(self, config: dict[str, Any], timeout_s: float) -> None:
        self._config = config
        self._timeout_s = timeout_s
        self._consumer: Consumer | None = None

    def fill(self, document: dict[str, Any]) -> None:
        """Each call of `document` without `arguments` given those of its request."""
        for call in document.get("tool_calls") or []:
            request = call.get("request") if isinstance(call, dict) else None
            if "arguments" in call or not isinstance(request, dict):
                continue
            partition, offset = request.get("partition"), request.get("offset")
            at = event.position(ledger.REQUESTS_TOPIC, partition, offset)
            if at is not None:
                found = self._arguments(at[1], at[2], str(call.get("key")))
                if found is not None:
                    call["arguments"] = found

    def _arguments(self, partition: int, offset: int, key: str) -> Any:
        if self._consumer is None:
            self._consumer = Consumer(
                self._config
                | {
                    "group.id": f"contextplane-replay-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "error",
                }
            )
        self._consumer.assign([TopicPartition(ledger.REQUESTS_TOPIC, partition, offset)])
        try:
            deadline_ms = _CLOCK.monotonic_ms() + self._timeout_s * 1000
            while _CLOCK.monotonic_ms() < deadline_ms:
                message = self._consumer.poll(_POLL_S)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF and error.retriable():
                        continue
                    return None  # none at that offset, or an error that will not pass
                if message.offset() != offset or message.key() != key.encode():
                    return None
                try:
                    value = event.loads(message.value() or b"")
                except ValueError:
                    return None
                return value.get("arguments") if isinstance(value, dict) else None
            return None
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
