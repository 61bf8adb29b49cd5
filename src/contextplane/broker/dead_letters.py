"""The schema-validation dead-letter topic: `contextplane.schema.validation.dlq.topic`.

A batch the schema check refuses on a topic that names a dead-letter topic is appended
there instead, as Kafka Connect's `errors.deadletterqueue.topic.name` keeps what a
connector could not take: each record's key, value, headers and timestamp, plus headers
naming the source topic, partition and reason. Its records are written as one new batch
in the original's codec with no producer id (the producer's sequence belongs to the
source partition), through the storage engine's normal append, or as a Produce to its
leader when another broker leads it (`cluster/forwarder.py`), on partition
`p % partitions` of the dead-letter topic, within that topic's max.message.bytes.

What the producer is answered (RFC 0005, "Slice 7 as built"): success with offset -1 once
the dead-letter batch is durable, the source partition's offsets untouched; the original
INVALID_RECORD if it cannot be written (no such topic, larger than its
max.message.bytes, storage refusing) or if the batch is idempotent or transactional (its
sequence cannot skip a batch the partition never took), the records being copied to the
dead-letter topic all the same in that last case.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from contextplane.broker.configs import DLQ_TOPIC, topic_config
from contextplane.cluster.forwarder import PartitionWriter
from contextplane.errors import KafkaError
from contextplane.java_numbers import stored_int
from contextplane.limits import BROKER_WRITE_TIMEOUT_S
from contextplane.logsafe import escape
from contextplane.protocol.decompress import DecompressedTooLarge, DecompressionError
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_codec import (
    Record,
    encode_varint,
    read_records,
    write_batch,
    zigzag_varint,
)
from contextplane.protocol.records import COMPRESSION_MASK, BatchHeader

if TYPE_CHECKING:
    from contextplane.broker.context import RequestContext
    from contextplane.protocol.record_validation import RecordPolicy

log = logging.getLogger(__name__)

TOPIC_HEADER = b"__contextplane.dlq.topic"
PARTITION_HEADER = b"__contextplane.dlq.partition"
REASON_HEADER = b"__contextplane.dlq.reason"
# The reason of a record that passed, in a batch refused for another of its records.
BATCH_REFUSED = "Another record of its batch was refused"


class RefusedBatch(Protocol):
    """What the produce handler knows of a batch the schema check refused."""

    topic: str
    entry: dict[str, Any]
    header: BatchHeader
    batch: memoryview
    policy: RecordPolicy
    error: KafkaError | None
    schema_refusals: dict[int, str] | None
    routed: bool


async def route(
    ctx: RequestContext,
    batches: Sequence[RefusedBatch],
    executor: Executor,
    timeout_s: float = BROKER_WRITE_TIMEOUT_S,
) -> None:
    """Append each schema-refused batch of a topic with a dead-letter topic there; a batch
    written durably there is `routed` (its error cleared) unless it is idempotent. All
    the writes share `timeout_s` (the Produce's timeout), at most BROKER_WRITE_TIMEOUT_S:
    a deadline per batch let one Produce of many partitions hold for as many timeouts,
    retrying an unreachable leader all along."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(timeout_s, 0.001), BROKER_WRITE_TIMEOUT_S)
    known = ctx.topics.topics()
    for item in batches:
        if item.schema_refusals is None or item.error is None:
            continue
        source = known.get(item.topic)
        target_name = source.configs.get(DLQ_TOPIC, "") if source is not None else ""
        if not target_name:
            continue
        partition = item.entry["index"]
        try:
            wait_s = deadline - loop.time()
            if wait_s <= 0:
                raise KafkaError(ErrorCode.request_timed_out, "the Produce's timeout passed")
            await _append(ctx, item, target_name, partition, executor, wait_s)
        except (KafkaError, OSError, ValueError, IndexError, DecompressionError) as exc:
            ctx.services.stats.schema_dead_lettered(item.topic, "failed")
            log.info(
                "dead-lettering a refused batch of %s-%d to %s failed: %s",
                escape(item.topic),
                partition,
                escape(target_name),
                escape(str(exc)),
            )
            continue
        if item.header.producer_id >= 0:
            ctx.services.stats.schema_dead_lettered(item.topic, "copied")
        else:
            ctx.services.stats.schema_dead_lettered(item.topic, "routed")
            item.error = None
            item.routed = True


async def _append(
    ctx: RequestContext,
    item: RefusedBatch,
    target_name: str,
    partition: int,
    executor: Executor,
    wait_s: float,
) -> None:
    """Write the dead-letter batch and wait until it is durable; raises on any failure."""
    target = ctx.topics.topics().get(target_name)
    if target is None:
        raise KafkaError(ErrorCode.unknown_topic_or_partition, f"no topic {target_name}")
    bytes_max = stored_int(topic_config(target.configs, "max.message.bytes", ctx.settings))
    batch = await asyncio.get_running_loop().run_in_executor(
        executor,
        dead_letter_batch,
        item.batch,
        min(
            item.policy.decompressed_bytes_max,
            bytes_max * ctx.settings.message_max_decompression_ratio,
        ),
        item.topic,
        partition,
        item.schema_refusals or {},
        bytes_max,
    )
    index = partition % target.partitions
    append_time = (
        ctx.now_ms()
        if topic_config(target.configs, "message.timestamp.type", ctx.settings) == "LogAppendTime"
        else None
    )
    writer = ctx.services.writer
    if writer is None:
        writer = PartitionWriter(ctx.log, ctx.services.clock)
    # Here, or at the partition's leader on another broker; bounded by the produce's own
    # timeout (a failure answers the original INVALID_RECORD).
    await writer.write(target_name, index, [batch], wait_s, append_time)
    ctx.services.stats.produced(target_name, item.header.records_count, len(batch))


def dead_letter_batch(
    batch: memoryview,
    decompressed_max: int,
    topic: str,
    partition: int,
    reasons: Mapping[int, str],
    bytes_max: int,
) -> bytes:
    """The refused `batch`'s records as one batch in its codec with no producer id, each
    with the three dead-letter headers; ValueError if it would pass `bytes_max` (or
    decompress past `decompressed_max`)."""
    try:
        header, records = read_records(batch, decompressed_max)
    except DecompressedTooLarge as exc:
        raise ValueError(f"the refused batch is too large to dead-letter: {exc}") from None
    where = encoded_header(TOPIC_HEADER, topic.encode()) + encoded_header(
        PARTITION_HEADER, str(partition).encode()
    )
    # The three headers per distinct reason (a batch's refusals mostly share one).
    added: dict[str, bytes] = {}
    dead: list[Record] = []
    for index, record in enumerate(records):
        reason = reasons.get(index, BATCH_REFUSED)
        tail = added.get(reason)
        if tail is None:
            tail = added[reason] = where + encoded_header(REASON_HEADER, reason.encode())
        count, position = zigzag_varint(record.headers, 0)
        headers = encode_varint(max(count, 0) + 3) + record.headers[position:] + tail
        dead.append(Record(0, record.timestamp, record.offset, record.key, record.value, headers))
    out = write_batch(
        replace(
            header,
            attributes=header.attributes & COMPRESSION_MASK,  # CreateTime, not transactional
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            partition_leader_epoch=-1,
        ),
        dead,
    )
    if len(out) > bytes_max:
        raise ValueError(f"the dead-letter batch is {len(out)} bytes, past {bytes_max}")
    return out


def encoded_header(key: bytes, value: bytes) -> bytes:
    """One record header as the record format encodes it (varint lengths)."""
    return encode_varint(len(key)) + key + encode_varint(len(value)) + value
