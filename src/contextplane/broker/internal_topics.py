"""Internal topics the broker writes itself: created at start, listed internal in
Metadata, readable by clients allowed to READ them, never produced to by clients.

`__consumer_offsets` (written by `offsets_topic.py`), the security audit topic and the
read receipts topic are all internal. Each writer describes its topic with an
`InternalTopic`, creates it with `ensure` and appends (key, value) records with
`append`: uncompressed RecordBatch v2 batches through the storage engine, the same WAL
and object path as produced data. The audit sink writes its `chunks` through
`cluster/forwarder.py` instead, so that a partition led by another broker gets them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from contextplane.broker.topics import TopicManager
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.errors import KafkaError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, encode_batch
from contextplane.protocol.records import parse_header
from contextplane.storage.engine import StorageEngine

AUDIT_TOPIC = "__contextplane_audit"
READ_RECEIPTS_TOPIC = "__contextplane_read_receipts"
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TXN_STATE_TOPIC, AUDIT_TOPIC, READ_RECEIPTS_TOPIC})
# Internal topics whose partitions are coordinator shards (RFC 0004 §3): spread over the
# brokers like any topic, their leaders the coordinators.
SHARD_TOPICS = frozenset({OFFSETS_TOPIC, TXN_STATE_TOPIC})
# The security audit trail: never deleted through the Kafka API (DeleteTopics answers
# TOPIC_DELETION_DISABLED) nor grown (CreatePartitions: its records are ordered in one
# partition), so no client erases the record of what it did. Its retention stays an
# administrator's AlterConfigs, which is itself audited; its other configs are refused
# (`handlers/configs.py`): one such as max.message.bytes could stop the brokers' appends.
AUDIT_TRAIL_TOPICS = frozenset({AUDIT_TOPIC, READ_RECEIPTS_TOPIC})

# Records of one appended batch stop at this many bytes (a larger record goes alone), so
# every batch is well below max.message.bytes and any consumer fetches it.
BATCH_BYTES_MAX = 512 * 1024

Record = tuple[bytes, bytes | None]


def is_internal(topic: str) -> bool:
    """Is this a topic only the broker writes (Produce and DeleteRecords refused)?"""
    return topic in INTERNAL_TOPICS


@dataclass(frozen=True, slots=True)
class InternalTopic:
    name: str
    partitions: int
    configs: dict[str, str]


# `__transaction_state`: Kafka's transaction.state.log.num.partitions default. Nothing
# is written to it; its partitions give transactional ids shards with leaders and epochs.
TXN_STATE = InternalTopic(TXN_STATE_TOPIC, 50, {"cleanup.policy": "compact"})


async def ensure(topics: TopicManager, topic: InternalTopic) -> bool:
    """Create the topic unless it exists (its partition count is then fixed, as in
    Kafka); True if it was created."""
    if topic.name in topics.topics():
        return False
    try:
        await topics.create(topic.name, topic.partitions, dict(topic.configs))
    except KafkaError as exc:
        if exc.code != ErrorCode.topic_already_exists:
            raise
        # Another broker starting at the same time on the same metadata created it.
        await topics.refresh()
        return False
    return True


def chunks(records: Sequence[Record], bytes_max: int = BATCH_BYTES_MAX) -> list[list[Record]]:
    """`records` split into batches of at most `bytes_max` bytes of keys and values."""
    batches: list[list[Record]] = []
    size = bytes_max
    for record in records:
        record_bytes = len(record[0]) + len(record[1] or b"") + 16
        if size + record_bytes > bytes_max:
            batches.append([])
            size = 0
        batches[-1].append(record)
        size += record_bytes
    return batches


def append(
    storage: StorageEngine,
    topics: TopicManager,
    name: str,
    partition: int,
    records: Sequence[Record],
    now_ms: int,
) -> list[asyncio.Future[None]]:
    """Queue `records` on one partition of an internal topic; the futures resolve once
    each batch is durable. Raises KafkaError if the topic or partition is gone."""
    topic = topics.topics().get(name)
    if topic is None or not 0 <= partition < topic.partitions:
        raise KafkaError(ErrorCode.unknown_topic_or_partition, f"no {name}-{partition}")
    log = storage.partition(name, partition)
    durable: list[asyncio.Future[None]] = []
    for batch_records in chunks(records):
        batch = encode_batch(batch_records, now_ms)
        result = storage.append(log, [(parse_header(batch), memoryview(batch))])
        if result.durable is not None:
            durable.append(result.durable)
    return durable
