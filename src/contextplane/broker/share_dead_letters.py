"""Share groups' dead-letter topics (KIP-1191): a record a share group gives up on is
copied to the topic its group config `errors.deadletterqueue.topic.name` names.

A record is undeliverable when its member REJECTs it or when it is released after its
last delivery (`group.share.delivery.count.limit`). The share coordinator hands them here
before it stores the state that archived them (`ShareCoordinator.save`), and stores that
state only once the copies are durable: a broker killed in between copies them again
after its restart (KIP-1191 allows a repeated DLQ record, never a lost one).

Each copy is a new record, written by the broker itself (no principal's WRITE is needed:
the topic's own `errors.deadletterqueue.group.enable` and the broker's
`errors.deadletterqueue.topic.name.prefix` are what guard it, as in Kafka), timestamped
when it is written (Kafka's choice: retention then counts from the copy), on partition
`source partition % partitions`, with Kafka's context headers `__dlq.errors.topic`,
`.partition`, `.offset`, `.group`, `.delivery.count` and `.message`. With the group
config `errors.deadletterqueue.copy.record.enable` it also carries the original record's
key and value (not its headers, which Kafka 4.4 does not copy), read back from the log (a
record retention or compaction removed is copied with the context headers only, as
Kafka does).

A topic that cannot be used (none and `errors.deadletterqueue.auto.create.topics.enable`
off, not enabled for groups, a name starting `__` or outside the prefix, a partition this
partition gone since) leaves the record archived without a copy, counted and logged at
most once a minute per reason; a DLQ partition led by another broker is written there
(`cluster/forwarder.py`); a write that fails raises, so the coordinator keeps the
records and tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from contextplane.broker.configs import DLQ_GROUP_ENABLE, is_true, topic_config
from contextplane.broker.dead_letters import encoded_header
from contextplane.broker.stats import BrokerStats
from contextplane.broker.topics import TopicManager, validate_topic_name
from contextplane.clock import Clock
from contextplane.cluster.forwarder import PartitionWriter
from contextplane.coordinators.consumer_group.group_configs import DLQ_COPY_RECORD, DLQ_TOPIC_NAME
from contextplane.coordinators.share_coordinator import ShareKey
from contextplane.coordinators.share_partition import Undeliverable
from contextplane.errors import KafkaError
from contextplane.java_numbers import java_trim, stored_int
from contextplane.limits import BROKER_WRITE_TIMEOUT_S
from contextplane.logsafe import escape
from contextplane.metadata.records import TopicRecord
from contextplane.protocol.decompress import DecompressedTooLarge, DecompressionError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_codec import (
    Record,
    encode_varint,
    read_records,
    write_batch,
)
from contextplane.protocol.records import BatchHeader, parse_header
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.storage.reader import ReadRequest

log = logging.getLogger(__name__)

HEADER_TOPIC = b"__dlq.errors.topic"
HEADER_PARTITION = b"__dlq.errors.partition"
HEADER_OFFSET = b"__dlq.errors.offset"
HEADER_GROUP = b"__dlq.errors.group"
HEADER_DELIVERY_COUNT = b"__dlq.errors.delivery.count"
HEADER_MESSAGE = b"__dlq.errors.message"
# The messages of Kafka's ShareGroupDLQThrowable, the `__dlq.errors.message` header.
REJECTED_MESSAGE = "Offset rejected by client."
EXCEEDED_MESSAGE = "Offset delivery count exceeded the threshold."
# Kafka reads at most this much of the source log per DLQ read (records are mostly single).
_READ_BYTES = 1024 * 1024
_LOG_EVERY_MS = 60_000
_BATCH_OVERHEAD = 61  # a v2 batch's header
# Most a record's framing adds to its key, value and headers (length, attributes and the
# timestamp, offset, key and value varints): sizes are summed, not re-encoded, per record.
_RECORD_OVERHEAD = 32
# The outcomes counted (BrokerStats.share_dead_lettered).
WRITTEN, NO_TOPIC, REFUSED, NOT_HERE = "written", "no_topic", "refused", "not_here"


@dataclass(frozen=True, slots=True)
class Original:
    """What a copy carries of the source record (copy.record.enable)."""

    key: bytes | None
    value: bytes | None


def context_headers(
    topic: str, partition: int, group_id: str, record: Undeliverable
) -> list[tuple[bytes, bytes]]:
    """Kafka's DLQ context headers for one record, in Kafka's order, values as UTF-8 text."""
    message = REJECTED_MESSAGE if record.rejected else EXCEEDED_MESSAGE
    return [
        (HEADER_TOPIC, topic.encode()),
        (HEADER_PARTITION, str(partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
        (HEADER_GROUP, group_id.encode()),
        (HEADER_DELIVERY_COUNT, str(record.delivery_count).encode()),
        (HEADER_MESSAGE, message.encode()),
    ]


def dead_letter_record(
    added: Sequence[tuple[bytes, bytes]], original: Original | None, offset: int, now_ms: int
) -> Record:
    """A DLQ record: the original's key and value when given, and the `added` headers."""
    headers = encode_varint(len(added)) + b"".join(encoded_header(k, v) for k, v in added)
    key = original.key if original is not None else None
    value = original.value if original is not None else None
    return Record(0, now_ms, offset, key, value, headers)


def dead_letter_batch(records: list[Record], now_ms: int) -> bytes:
    """`records` (offsets 0..n-1) as one uncompressed batch with no producer id."""
    header = BatchHeader(
        base_offset=0,
        batch_length=0,
        partition_leader_epoch=-1,
        magic=2,
        crc=0,
        attributes=0,
        last_offset_delta=len(records) - 1,
        base_timestamp=now_ms,
        max_timestamp=now_ms,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        records_count=len(records),
    )
    return write_batch(header, records)


class ShareDeadLetters:
    """The coordinator's `DeadLetterSink`: copies undeliverable records, durably."""

    def __init__(
        self,
        topics: TopicManager,
        storage: StorageEngine,
        settings: Settings,
        group_configs: Callable[[str], Mapping[str, str]],
        stats: BrokerStats,
        clock: Clock,
        writer: PartitionWriter,
    ) -> None:
        self._writer = writer
        self._topics = topics
        self._storage = storage
        self._settings = settings
        self._group_configs = group_configs
        self._stats = stats
        self._clock = clock
        self._logged: dict[str, int] = {}  # reason -> when last logged (monotonic ms)

    async def __call__(self, taken: list[tuple[ShareKey, list[Undeliverable]]]) -> None:
        for (group_id, topic, partition), records in taken:
            configs = self._group_configs(group_id)
            # Group configs are stored as given: read trimmed, as Kafka reads them.
            name = java_trim(configs.get(DLQ_TOPIC_NAME, ""))
            if not name:
                continue
            target = await self._usable(group_id, name, len(records))
            if target is None:
                continue
            originals: dict[int, Original] = {}
            if is_true(java_trim(configs.get(DLQ_COPY_RECORD, "false"))):
                originals = await self._originals(topic, partition, [r.offset for r in records])
            await self._write(group_id, topic, partition, records, originals, target)

    async def _usable(self, group_id: str, name: str, count: int) -> TopicRecord | None:
        """The dead-letter topic if records may be copied there (created if it may be),
        else None with the refusal counted and logged, as Kafka's validator refuses."""
        problem = None
        prefix = self._settings.errors_deadletterqueue_topic_name_prefix
        target = self._topics.topics().get(name)
        if name.startswith("__"):
            problem = REFUSED, "a dead-letter topic cannot start with __"
        elif target is not None and not is_true(
            topic_config(target.configs, DLQ_GROUP_ENABLE, self._settings)
        ):
            problem = REFUSED, f"the topic does not set {DLQ_GROUP_ENABLE}=true"
        elif prefix and not name.startswith(prefix):
            problem = REFUSED, f"the name does not start with the prefix {prefix}"
        elif target is None:
            target = await self._created(name)
            if target is None:
                problem = NO_TOPIC, "no such topic (and auto-creation is off or failed)"
        if problem is None:
            return target
        outcome, why = problem
        self._stats.share_dead_lettered(outcome, count)
        self._log_bounded(
            outcome,
            "share group %s: %d undeliverable records archived without a dead-letter copy "
            "to %s: %s",
            escape(group_id),
            count,
            escape(name),
            why,
        )
        return None

    async def _created(self, name: str) -> TopicRecord | None:
        if not self._settings.errors_deadletterqueue_auto_create_topics_enable:
            return None
        try:
            validate_topic_name(name)
            return await self._topics.create(
                name, self._settings.num_partitions, {DLQ_GROUP_ENABLE: "true"}
            )
        except KafkaError as exc:
            existing = self._topics.topics().get(name)  # created meanwhile, by someone
            if existing is None:
                log.info("creating dead-letter topic %s failed: %s", escape(name), exc)
            return existing

    async def _originals(
        self, topic: str, partition: int, offsets: list[int]
    ) -> dict[int, Original]:
        """The source records at `offsets` still in the log, read from the first wanted
        offset on, _READ_BYTES at a time (bounded: each read passes at least one wanted
        offset or stops)."""
        wanted = sorted(set(offsets))
        found: dict[int, Original] = {}
        try:
            source = self._storage.partition(topic, partition)
        except KafkaError:
            return found
        limit = (
            int(self._settings.message_max_bytes) * self._settings.message_max_decompression_ratio
        )
        index = 0
        while index < len(wanted):
            start = max(wanted[index], source.log_start_offset)
            if start >= source.high_watermark:
                break
            results = await self._storage.read_many(
                [ReadRequest(source, start, _READ_BYTES)], _READ_BYTES
            )
            chunks = results[0]
            if isinstance(chunks, KafkaError | OSError):
                break
            end = start
            for batch in _batches(b"".join(bytes(c) for c in chunks)):
                try:
                    _, records = read_records(batch, limit)
                except (ValueError, IndexError, DecompressionError, DecompressedTooLarge):
                    continue  # unreadable here: its records are copied with headers only
                for record in records:
                    end = max(end, record.offset + 1)
                    found[record.offset] = Original(record.key, record.value)
                header = parse_header(batch)
                end = max(end, header.base_offset + header.last_offset_delta + 1)
            if end <= start:
                break
            while index < len(wanted) and wanted[index] < end:
                index += 1
        return {offset: found[offset] for offset in wanted if offset in found}

    async def _write(
        self,
        group_id: str,
        topic: str,
        partition: int,
        records: list[Undeliverable],
        originals: Mapping[int, Original],
        target: TopicRecord,
    ) -> None:
        """Append the copies in batches within the topic's max.message.bytes (a record too
        large for it alone goes with its context headers only) and wait until durable."""
        bytes_max = stored_int(topic_config(target.configs, "max.message.bytes", self._settings))
        now = self._clock.wall_ms()
        batches: list[bytes] = []
        pending: list[Record] = []
        size = _BATCH_OVERHEAD
        for item in records:
            added = context_headers(topic, partition, group_id, item)
            record = dead_letter_record(added, originals.get(item.offset), len(pending), now)
            if _BATCH_OVERHEAD + _size(record) > bytes_max:
                record = dead_letter_record(added, None, len(pending), now)
            if pending and size + _size(record) > bytes_max:
                batches.append(dead_letter_batch(pending, now))
                pending, size = [], _BATCH_OVERHEAD
                record = Record(0, now, 0, record.key, record.value, record.headers)
            pending.append(record)
            size += _size(record)
        if pending:
            batches.append(dead_letter_batch(pending, now))
        index = partition % target.partitions
        for batch in batches:
            self._stats.share_dlq_counted(group_id, "produce")
            try:
                # Here or at the partition's leader on another broker (forwarder.py).
                await self._writer.write(target.name, index, [batch], BROKER_WRITE_TIMEOUT_S)
            except KafkaError as exc:
                self._stats.share_dlq_counted(group_id, "failed")
                if exc.code != ErrorCode.unknown_topic_or_partition:
                    raise  # the next save copies the records again
                # Deleted since: archived without a copy, not retried.
                self._stats.share_dead_lettered(NOT_HERE, len(records))
                self._log_bounded(
                    NOT_HERE,
                    "share group %s: %d undeliverable records archived without a "
                    "dead-letter copy to %s: %s",
                    escape(group_id),
                    len(records),
                    escape(target.name),
                    exc,
                )
                return
            except Exception:
                self._stats.share_dlq_counted(group_id, "failed")
                raise
            count = parse_header(batch).records_count
            self._stats.produced(target.name, count, len(batch))
            self._stats.share_dlq_counted(group_id, "records", count)
        self._stats.share_dead_lettered(WRITTEN, len(records))

    def _log_bounded(self, reason: str, message: str, *args: object) -> None:
        now = self._clock.monotonic_ms()
        if now - self._logged.get(reason, -_LOG_EVERY_MS) >= _LOG_EVERY_MS:
            self._logged[reason] = now
            log.warning(message, *args)


def _size(record: Record) -> int:
    """At most the bytes `record` takes in a batch."""
    return (
        len(record.key or b"") + len(record.value or b"") + len(record.headers) + (_RECORD_OVERHEAD)
    )


def _batches(data: bytes) -> Iterator[memoryview]:
    """The whole batches of a read."""
    view = memoryview(data)
    position = 0
    while position + 61 <= len(data):
        header = parse_header(view, position)
        end = position + header.total_bytes
        if header.batch_length < 49 or end > len(data):
            break
        yield view[position:end]
        position = end
