"""`contextplane trace`'s reading (RFC 0006 §4): the decision found on
`copilot.decisions`, then every link it recorded followed and read back, as a tree.

The decision is read from its time on (ListOffsets: the time a UUIDv7 id carries, or the
caller's `since`), else found by scanning the topic from its start (bounded by a
deadline and a record count); the ledger and the policy evaluations are scanned for the
decision's idempotency keys, and the read receipts for its source records
(`receipts.py`). Records at a recorded offset are read at that offset: each read's
changelog record, and the source record it names. Transactional topics are read
`read_committed`. A link that cannot be followed is a node `missing` with the reason,
never left out.

A source record's producer (id, epoch, transactional) is read from its batch header
with a raw Fetch (`producer.py`): confluent-kafka's `Message` does not expose it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from contextplane.clock import SystemClock
from contextplane.services.actions import ledger
from contextplane.services.trace import event, receipts, rollback
from contextplane.services.trace.event import OFFSET_MAX
from contextplane.services.trace.link import Link, cut, place
from contextplane.services.trace.producer import BatchProducers

RECORDS_MAX = 1_000_000
EVALUATIONS_PER_KEY_MAX = 10
# A decision value read back, at most (the producer refuses larger ones).
DECISION_BYTES_MAX = event.CLIENT_MESSAGE_BYTES_MAX
# A UUIDv7 id's time is the SDK's clock at the decision's start; its record is stamped
# later (CreateTime), or by the broker (LogAppendTime): read from this long before it.
ID_CLOCK_SKEW_MS = 60_000
_POLL_S = 0.2
FETCH_WAIT_MS = 10
_CLOCK = SystemClock()

_AT = ("topic", "partition", "offset")
# A source record found: its link, topic/partition/offset and timestamp.
Source = tuple[Link, tuple[str, int, int], int]


class TraceError(Exception):
    """The decision topic could not be read or scanned (the message says why)."""


class Reader:
    """One consumer, reassigned for each scan or read; every scan ends by the deadline.

    The cluster's metadata is asked once per trace (every topic's partition count, kept
    for the reader's life: a trace follows links into some ten topics, and each
    librdkafka lookup takes a metadata round trip of its own); a topic that listing
    does not name is asked for alone, so its error (authorization, absence) is Kafka's.
    `consumer` makes the client (a wrapper counts the lookups in a test)."""

    def __init__(
        self,
        config: dict[str, Any],
        timeout_s: float,
        records_max: int,
        consumer: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self._consumer = consumer(
            config
            | {
                "group.id": f"contextplane-trace-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                # A trace reads to ends it knows and never waits for new records: a fetch
                # the broker holds at a partition's end (500 ms by default) would hold up
                # the next link's ListOffsets on the same connection as long.
                "fetch.wait.max.ms": FETCH_WAIT_MS,
            }
        )
        self._deadline_ms = _CLOCK.monotonic_ms() + timeout_s * 1000
        self._timeout_s = timeout_s
        self._records_max = records_max
        # Records each topic's scans read (what an index lookup saves is counted here).
        self.records_read: dict[str, int] = {}
        # How `find_decision` found the decision: "time" (the id's), "since", "scan".
        self.found_by = "scan"
        # topic -> its partition count, or why it has none; None: not listed yet.
        self._topics: dict[str, int | str] | None = None
        self._producers = BatchProducers(config)
        self.translation: rollback.Translation | None = None  # when copied (rollback.py)

    @property
    def client(self) -> Consumer:
        """The consumer (to ask the cluster's metadata first, naming an unreachable one)."""
        return self._consumer

    def close(self) -> None:
        self._consumer.close()
        self._producers.close()

    def producer_of(self, topic: str, partition: int, offset: int) -> dict[str, Any]:
        """The producer fields of a record's batch, or `producer` saying why not read."""
        if self._left_s() <= 0:
            return {"producer": f"not read within {self._timeout_s:g} s"}
        found = self._producers.producer_of(topic, partition, offset)
        return {"producer": f"not read: {found}"} if isinstance(found, str) else found

    def _left_s(self) -> float:
        return max(0.0, (self._deadline_ms - _CLOCK.monotonic_ms()) / 1000)

    def know(self, metadata: Any) -> dict[str, int | str]:
        """The cluster's metadata of every topic (`list_topics()`), kept: a caller that
        asked it already saves the reader its lookup."""
        topics = self._topics = {} if self._topics is None else self._topics
        for name, found in metadata.topics.items():
            topics[name] = _count(name, found)
        return topics

    def listed(self, topic: str) -> bool:
        """Is `topic` in the cluster's one listing of every topic (no lookup of its own)?"""
        try:
            listing = self._topics or self._consumer.list_topics(timeout=max(1.0, self._left_s()))
        except KafkaException:
            return False
        return topic in (listing if isinstance(listing, dict) else self.know(listing))

    def _partitions(self, topic: str) -> list[int] | str:
        """The topic's partitions (Kafka numbers them 0 to count - 1), or why there are
        none; from the one listing of every topic, else asked for this topic alone."""
        try:
            topics = self._topics
            if topics is None:
                topics = self.know(self._consumer.list_topics(timeout=max(1.0, self._left_s())))
            if topic not in topics:
                metadata = self._consumer.list_topics(topic, timeout=max(1.0, self._left_s()))
                topics[topic] = _count(topic, metadata.topics.get(topic))
        except KafkaException as exc:  # not kept: a later link may get an answer
            return f"topic {topic}: {exc.args[0].str()}"
        count = topics[topic]
        return count if isinstance(count, str) else list(range(count))

    def _watermarks(self, topic: str, partition: int) -> tuple[int, int] | str:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=max(1.0, self._left_s()), cached=False
            )
        except KafkaException as exc:
            return f"{topic}[{partition}]: {exc.args[0].name()} ({exc.args[0].str()})"
        return int(low), int(high)

    def scan(
        self,
        topic: str,
        keep: Callable[[Any], None],
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> str | None:
        """Every record of `topic` from its start (with `since_ms`: from each partition's
        first record stamped at or after it, found by ListOffsets) to its end (with
        `until_ms`: up to the first record stamped at or after that), given to `keep`;
        None when all were read, else why the scan stopped short."""
        partitions = self._partitions(topic)
        if isinstance(partitions, str):
            return partitions
        starts: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for partition in partitions:
            marks = self._watermarks(topic, partition)
            if isinstance(marks, str):
                return marks
            start = marks[0] if since_ms is None else self._offset_at(topic, partition, since_ms)
            end = OFFSET_MAX if until_ms is None else self._offset_at(topic, partition, until_ms)
            if isinstance(start, str) or isinstance(end, str):
                return start if isinstance(start, str) else str(end)
            start = max(start, marks[0])
            if min(marks[1], end) > start:
                starts.append(TopicPartition(topic, partition, start))
                ends[partition] = end
        pending = {tp.partition for tp in starts}
        self._consumer.assign(starts)
        read = 0
        try:
            while pending:
                if self._left_s() <= 0:
                    within = f"within {self._timeout_s:g} s ({read} records)"
                    return f"{topic}: not read to its end {within}"
                if read >= self._records_max:
                    return f"{topic}: stopped after {self._records_max} records (--max-records)"
                message = self._consumer.poll(min(_POLL_S, self._left_s()))
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                        continue
                    if error.fatal() or not error.retriable():
                        return f"{topic}[{message.partition()}]: {error.name()} ({error.str()})"
                    continue
                at, offset = message.partition(), message.offset()
                if at not in pending or offset is None:
                    continue  # past its end
                read += 1
                keep(message)
                if offset + 1 >= ends[at]:
                    pending.discard(at)
        finally:
            self._consumer.unassign()
            self.records_read[topic] = self.records_read.get(topic, 0) + read
        return None

    def _offset_at(self, topic: str, partition: int, since_ms: int) -> int | str:
        """The partition's first offset stamped at or after `since_ms` (its end: none)."""
        try:
            [found] = self._consumer.offsets_for_times(
                [TopicPartition(topic, partition, since_ms)], timeout=max(1.0, self._left_s())
            )
        except KafkaException as exc:
            return f"{topic}[{partition}]: {exc.args[0].name()} ({exc.args[0].str()})"
        if found.error is not None:
            return f"{topic}[{partition}]: {found.error.name()} ({found.error.str()})"
        return OFFSET_MAX if found.offset < 0 else int(found.offset)

    def read_at(self, topic: str, partition: int, offset: int) -> Any:
        """The record at exactly that offset, or why there is none."""
        if self._left_s() <= 0:  # a decision may name thousands: each would wait 1 s more
            return f"not read within {self._timeout_s:g} s"
        # Asked first: librdkafka names a missing topic or partition only _UNKNOWN_PARTITION.
        partitions = self._partitions(topic)
        if isinstance(partitions, str):
            return partitions
        if partition not in partitions:
            return f"topic {topic} has no partition {partition} ({len(partitions)} partitions)"
        marks = self._watermarks(topic, partition)
        if isinstance(marks, str):
            return marks
        low, high = marks
        if offset < low:
            return f"deleted: before the log start offset {low} (retention or deleteRecords)"
        if offset >= high:
            return f"past the end of the partition (high watermark {high})"
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        try:
            while self._left_s() > 0:
                message = self._consumer.poll(min(_POLL_S, self._left_s()))
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return "no committed record at that offset (aborted, or a control record)"
                    if error.fatal() or not error.retriable():
                        return f"{error.name()} ({error.str()})"
                    continue
                if message.offset() != offset:
                    return (
                        "no record at that offset (removed by compaction, or not committed);"
                        f" the next is at {message.offset()}"
                    )
                return message
            return f"not read within {self._timeout_s:g} s"
        finally:
            self._consumer.unassign()


def _count(topic: str, found: Any) -> int | str:
    """A topic's partition count from its metadata, or why it has none."""
    if found is None or found.error is not None:
        error = found.error.name() if found is not None else "absent"
        return f"topic {topic}: {error}"
    return len(found.partitions)


def find_decision(
    reader: Reader, decision_id: str, since_ms: int | None = None, until_ms: int | None = None
) -> tuple[Any, str | None]:
    """The newest record keyed `decision_id` (or None), and why the scan stopped short;
    with `until_ms`, the newest stamped at or before it (the scan stops there).

    Read from the decision's time when it is known (`since_ms`, else the time a UUIDv7
    id carries, less ID_CLOCK_SKEW_MS), by ListOffsets: every record of the id is at or
    after it, so the newest is found reading only what came since. Not found that way
    (a time that was wrong), the topic is scanned from its start. `reader.found_by`
    says which answered."""
    since = since_ms
    if since is None and (id_ms := event.id_time_ms(decision_id)) is not None:
        since = max(0, id_ms - ID_CLOCK_SKEW_MS)
    if since is not None:
        found, short = _newest(reader, decision_id, since, until_ms)
        if found is not None:
            reader.found_by = "time" if since_ms is None else "since"
            return found, short
    reader.found_by = "scan"
    return _newest(reader, decision_id, None, until_ms)


def _newest(
    reader: Reader, decision_id: str, since_ms: int | None, until_ms: int | None
) -> tuple[Any, str | None]:
    wanted = decision_id.encode()
    found: list[Any] = []

    def keep(message: Any) -> None:
        # The scan ends at the first offset stamped after until_ms (ListOffsets); a record
        # before it with a later CreateTime is not the decision as it stood then either.
        if message.key() == wanted and (until_ms is None or message.timestamp()[1] <= until_ms):
            found[:] = [message]

    # scan's until is exclusive: records stamped at until_ms itself are wanted.
    until = None if until_ms is None else until_ms + 1
    short = reader.scan(event.DECISIONS_TOPIC, keep, since_ms=since_ms, until_ms=until)
    return (found[0] if found else None), short


def find_and_trace(
    reader: Reader, decision_id: str, since_ms: int | None = None, until_ms: int | None = None
) -> tuple[Link | None, str]:
    """`find_decision`, then `trace` of what it found: (the tree, ""), or (None, " (why
    the scan stopped short)" or "") for the caller's not-found message."""
    message, short = find_decision(reader, decision_id, since_ms, until_ms)
    if message is None:
        return None, f" ({short})" if short else ""
    return trace(reader, message), ""


def trace(reader: Reader, message: Any) -> Link:
    """The decision record's tree: its reads, tool calls and write-backs, each followed."""
    where = place(message.topic(), message.partition(), message.offset())
    headers = event.header_map(message.headers())
    root = Link("decision", headers.get("ce_id", _text(message.key())), where)
    raw = message.value() or b""
    try:
        document = event.loads(raw) if len(raw) <= DECISION_BYTES_MAX else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        root.missing = "the record's value is not a decision (not a JSON object)"
        return root
    root.detail = {
        "outcome": document.get("outcome"),
        "source": headers.get("ce_source"),
        "time": headers.get("ce_time"),
        "correlationid": headers.get("correlationid"),
        "causationid": headers.get("causationid"),
        "found_by": reader.found_by,
        "records_scanned": reader.records_read.get(event.DECISIONS_TOPIC, 0),
    }
    if hasattr(reader, "translation"):  # not the console's reader (its own cluster's)
        rollback.translate_if_copied(reader, message, root)
    sources: list[Source] = []  # source records found, with their timestamps
    root.children += [_read(reader, read, sources) for read in _dicts(document.get("reads"))]
    _add_receipts(reader, sources, message.timestamp()[1])
    calls = _dicts(document.get("tool_calls"))
    found = _ledger_and_evaluations(reader, calls)
    for call in calls:
        root.children.append(_call(reader, call, found))
    for written in _dicts(document.get("write_backs")):
        root.children.append(_record_link(reader, "write-back", "write-back", written))
    return root


def _read(reader: Reader, read: dict[str, Any], sources: list[Source]) -> Link:
    """A read, the changelog record it answered from and the source record that changed
    the entity (named by that changelog record, else by the answer)."""
    detail = {k: read[k] for k in ("found", "age_ms", "lag", "stale", "error") if k in read}
    # The positions vector, as the source recorded it or translated (`rollback.py`).
    where = rollback.positions(
        getattr(reader, "translation", None), _dicts(read.get("positions")), detail
    )
    link = Link("read", f"read {read.get('view')}/{read.get('entity')}", where, detail)
    changed_by, via = read.get("changed_by"), "answer"
    if read.get("found") and "error" not in read:
        entry, from_changelog = _changelog_link(reader, read)
        link.children.append(entry)
        if from_changelog is not None:
            changed_by, via = from_changelog, "changelog"
    if isinstance(changed_by, dict):
        source, record = _record(reader, "source-record", "changed by", changed_by)
        source.detail["via"] = via
        link.children.append(source)
        if record is not None:
            at = (record.topic(), record.partition(), record.offset())
            # The console's reader over its storage engine has no raw Fetch: no producer.
            if (producer_of := getattr(reader, "producer_of", None)) is not None:
                source.detail.update(producer_of(*at))
            sources.append((source, at, record.timestamp()[1]))
    elif read.get("found"):
        link.children.append(
            Link("source-record", "changed by", missing="the answer named no changed_by")
        )
    return link


def _changelog_link(reader: Reader, read: dict[str, Any]) -> tuple[Link, dict[str, Any] | None]:
    """The context service's changelog record the read answered from, and the source
    position it names (None when not followed)."""
    at = read.get("changelog")
    if not isinstance(at, dict):
        why = (
            "a point-in-time read: folded from the sources, not read from the changelog"
            if "as_of" in read
            else "the answer named no changelog record (a context service that does not"
            " record it, or a state restored before it did)"
        )
        return Link("changelog-record", "changelog", missing=why), None
    link, message = _record(reader, "changelog-record", "changelog", at)
    if message is None:
        return link, None
    try:
        key = event.loads(message.key()) if message.key() is not None else None
    except ValueError:
        key = None
    if key != ["entity", read.get("view"), read.get("entity")]:
        link.missing = f"the record there is another's: key {cut(_text(message.key()) or '')}"
        return link, None
    value = _json(message.value())
    if value is None:
        deleted = message.value() is None
        link.missing = "a tombstone (the entity was deleted)" if deleted else "not JSON"
        return link, None
    origin = value.get("changed_by")
    named = event.position(*origin[:3]) if isinstance(origin, list) and len(origin) == 4 else None
    if named is None:
        link.missing = f"its value names no source record: changed_by {cut(repr(origin))}"
        return link, None
    link.detail["changed_by"] = place(*named)
    said = read.get("changed_by")
    answered = event.position(*(said.get(k) for k in _AT)) if isinstance(said, dict) else None
    if answered is not None and answered != named:
        # Same entity, another state: the changelog's offsets moved since the decision
        # (a copy mirror, a rollback into another cluster), so the answer names the source.
        link.missing = (
            f"it holds another state of the entity (changed by {place(*named)}, the answer"
            f" by {place(*answered)}): the changelog's offsets moved since the decision"
        )
        return link, None
    return link, dict(zip(_AT, named, strict=True))


def _add_receipts(reader: Reader, sources: list[Source], decided_ms: int) -> None:
    """Each source record's read receipts of reads begun by `decided_ms` (one scan for
    all), as its children."""
    wanted: dict[tuple[str, int, int], int] = {}
    for _, at, timestamp_ms in sources:
        stamped = max(0, timestamp_ms)  # -1: a record without a timestamp
        wanted[at] = min(wanted.get(at, stamped), stamped)
    found = receipts.receipt_links(reader, wanted, decided_ms)
    for source, at, _ in sources:
        source.children += found[at]


def _record_link(reader: Reader, kind: str, label: str, at: dict[str, Any]) -> Link:
    return _record(reader, kind, label, at)[0]


def _record(reader: Reader, kind: str, label: str, at: dict[str, Any]) -> tuple[Link, Any]:
    """The link to the record at a recorded position, and the record (None: missing)."""
    found_at = event.position(at.get("topic"), at.get("partition"), at.get("offset"))
    if found_at is None:
        return Link(kind, label, missing=f"not a record position: {cut(repr(at))}"), None
    topic, partition, offset = found_at
    link = Link(kind, label, place(topic, partition, offset))
    if (translation := getattr(reader, "translation", None)) is not None:
        here = translation.record(topic, partition, offset)
        if here != offset:  # the record is elsewhere here, or where is not known
            link.detail["recorded_at"] = link.where
            if isinstance(here, str):
                link.missing = here
                return link, None
            link.where, offset = place(topic, partition, here), here
    found = reader.read_at(topic, partition, offset)
    if isinstance(found, str):
        link.missing = found
        return link, None
    link.detail |= {
        "key": _text(found.key()),
        "timestamp_ms": found.timestamp()[1],
        "value_bytes": len(found.value() or b""),
    }
    return link, found


def _ledger_and_evaluations(reader: Reader, calls: list[dict[str, Any]]) -> Found:
    """The newest ledger entry of each call's key, its newest conflict or rejection, and
    its policy evaluations (at most EVALUATIONS_PER_KEY_MAX, the newest)."""
    keys = {str(call.get("key")) for call in calls}
    if not keys:
        return Found({}, {}, {}, None)
    entries: dict[str, Any] = {}
    refusals: dict[str, Any] = {}
    evaluations: dict[str, list[Any]] = {}

    def keep_entry(message: Any) -> None:
        parts = ledger.decode_key(message.key())
        if parts is None or len(parts) < 2 or parts[1] not in keys:
            return
        if parts[0] == "call":
            entries[parts[1]] = message  # the newest wins; a tombstone too
        elif parts[0] in (ledger.CONFLICT, ledger.REJECTED) and message.value() is not None:
            refusals[parts[1]] = message  # why a key has no entry of its own, or lost one

    def keep_evaluation(message: Any) -> None:
        key = _text(message.key())
        if key in keys:
            held = evaluations.setdefault(key, [])
            held.append(message)
            del held[:-EVALUATIONS_PER_KEY_MAX]

    short = reader.scan(ledger.LEDGER_TOPIC, keep_entry)
    short_evaluations = reader.scan(ledger.EVALUATIONS_TOPIC, keep_evaluation)
    return Found(entries, refusals, evaluations, short or short_evaluations)


@dataclass
class Found:
    """What the ledger and evaluation scans found for a decision's keys."""

    entries: dict[str, Any]  # key -> its newest ["call", KEY] record
    refusals: dict[str, Any]  # key -> its newest conflict or rejected record
    evaluations: dict[str, list[Any]]  # key -> its newest evaluation records
    short: str | None  # why a scan stopped short, if one did


def _call(reader: Reader, call: dict[str, Any], found: Found) -> Link:
    key = str(call.get("key"))
    detail: dict[str, Any] = {n: call[n] for n in ("key", "state", "error") if n in call}
    link = Link("tool-call", f"tool call {call.get('tool')}", "", detail)
    request = call.get("request")
    if isinstance(request, dict):  # none when the request was never produced
        at = {"topic": ledger.REQUESTS_TOPIC, **request}
        link.children.append(_record_link(reader, "request", "request", at))
    unread = f"; {found.short}" if found.short else ""
    link.children.append(_ledger_link(found.entries.get(key), found.refusals.get(key), unread))
    evaluations = found.evaluations.get(key, [])
    if not evaluations:
        why = f"none for this key in {ledger.EVALUATIONS_TOPIC}{unread}"
        link.children.append(Link("policy-evaluation", "policy evaluation", missing=why))
    for message in evaluations:
        value = _json(message.value()) or {}
        detail = {name: value.get(name) for name in _EVALUATION_FIELDS}
        link.children.append(
            Link("policy-evaluation", "policy evaluation", _where(message), detail)
        )
    return link


_EVALUATION_FIELDS: tuple[str, ...] = ("decision", "decision_id", "policy_version", "reasons")


def _ledger_link(entry: Any, refusal: Any, unread: str) -> Link:
    """The key's ledger entry; when it has none, why, with its rejection if recorded."""
    if entry is None:
        why = f"key not in {ledger.LEDGER_TOPIC}{unread}"
        refused = _json(refusal.value()) if refusal is not None else None
        if refused is not None:
            state, reason = refused.get("state"), refused.get("reason")
            why += f"; {state} at {_where(refusal)}: {reason}"
        return Link("ledger-entry", "ledger entry", missing=why)
    link = Link("ledger-entry", "ledger entry", _where(entry))
    value = _json(entry.value())
    if value is None:
        deleted = "deleted (a tombstone: past the executor's key retention)"
        link.missing = deleted if entry.value() is None else "not JSON"
        return link
    result = value.get("result")
    if not isinstance(result, dict):
        result = {}
    link.detail = {
        "state": value.get("state"),
        "decision_id": value.get("decision_id"),
        "executor": value.get("executor"),
        "status": result.get("status"),
    }
    if "approved_by" in value:
        link.detail["approved_by"] = value["approved_by"]
    return link


def _where(message: Any) -> str:
    return place(message.topic(), message.partition(), message.offset())


def _json(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = event.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(errors="backslashreplace")
