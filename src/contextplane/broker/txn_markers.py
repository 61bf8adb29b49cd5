"""Transaction markers into partitions: the COMMIT or ABORT control batch the
transaction coordinator writes to each partition of a transaction, appended through
the storage engine like any batch (the WAL, then objects)."""

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


def marker_writer(storage: StorageEngine, clock: Clock) -> MarkerWriter:
    async def write(topic: str, index: int, producer_id: int, epoch: int, commit: bool) -> None:
        try:
            partition = storage.partition(topic, index)
        except KafkaError as exc:
            if exc.code == ErrorCode.unknown_topic_or_partition:
                return  # deleted with its topic: nothing left to mark
            raise
        batch = marker_batch(producer_id, epoch, commit, clock.wall_ms(), COORDINATOR_EPOCH)
        result = storage.append(partition, [(parse_header(batch), memoryview(batch))])
        if result.durable is not None:
            await result.durable

    return write
