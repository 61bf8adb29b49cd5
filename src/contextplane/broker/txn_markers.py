"""Transaction markers into partitions: the COMMIT or ABORT control batch the
transaction coordinator writes to each partition of a transaction (and an admin's
WriteTxnMarkers writes to close a hanging one), appended through the storage engine
like any batch (the WAL, then objects)."""

from __future__ import annotations

from contextplane.clock import Clock
from contextplane.coordinators.transactions import MarkerWriter
from contextplane.errors import KafkaError
from contextplane.protocol.control_records import marker_batch
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import parse_header
from contextplane.storage.engine import StorageEngine

# One coordinator, never moved: Kafka's coordinator epoch of its only load.
COORDINATOR_EPOCH = 0


async def write_marker(
    storage: StorageEngine,
    clock: Clock,
    topic: str,
    index: int,
    producer_id: int,
    epoch: int,
    commit: bool,
    coordinator_epoch: int = COORDINATOR_EPOCH,
) -> None:
    """Append one marker and wait until it is durable. Kafka's errors: an unknown
    partition, a marker of an older producer epoch (INVALID_PRODUCER_EPOCH)."""
    partition = storage.partition(topic, index)
    batch = marker_batch(producer_id, epoch, commit, clock.wall_ms(), coordinator_epoch)
    result = storage.append(partition, [(parse_header(batch), memoryview(batch))])
    if result.durable is not None:
        await result.durable


def marker_writer(storage: StorageEngine, clock: Clock) -> MarkerWriter:
    async def write(topic: str, index: int, producer_id: int, epoch: int, commit: bool) -> None:
        try:
            await write_marker(storage, clock, topic, index, producer_id, epoch, commit)
        except KafkaError as exc:
            if exc.code == ErrorCode.unknown_topic_or_partition:
                return  # deleted with its topic: nothing left to mark
            raise

    return write
