"""Transaction markers into partitions: the COMMIT or ABORT control batch the
transaction coordinator writes to each partition of a transaction (and an admin's
WriteTxnMarkers writes to close a hanging one), appended through the storage engine
like any batch (the WAL, then objects). In a cluster a partition led by another broker
gets its marker through that broker: WriteTxnMarkers over the inter-broker client
(RFC 0004 §3); one whose leader is offline stays pending for the coordinator's timer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from contextplane.clock import Clock
from contextplane.cluster.peer_client import Peers
from contextplane.coordinators.transactions import MarkerWriter
from contextplane.errors import KafkaError
from contextplane.protocol.control_records import marker_batch
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import parse_header
from contextplane.storage.engine import StorageEngine

if TYPE_CHECKING:
    from contextplane.broker.leaders import Leaders

WRITE_TXN_MARKERS_KEY = 27
WRITE_TXN_MARKERS_VERSION = 1  # flexible; Kafka 4.4's brokers send it

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


def routed_marker_writer(
    storage: StorageEngine, clock: Clock, leaders: Leaders, peers: Peers, node_id: int
) -> MarkerWriter:
    """Markers for partitions led here (or with no live leader known: the engine then
    answers NOT_LEADER_OR_FOLLOWER, and the marker stays pending) through the engine;
    the others sent to their leader as WriteTxnMarkers, its error raised."""
    local = marker_writer(storage, clock)

    async def write(topic: str, index: int, producer_id: int, epoch: int, commit: bool) -> None:
        node, _ = leaders.of(topic, index)
        if node in (node_id, -1):
            await local(topic, index, producer_id, epoch, commit)
            return
        answer = await peers.request(
            node,
            WRITE_TXN_MARKERS_KEY,
            WRITE_TXN_MARKERS_VERSION,
            markers=[
                {
                    "producer_id": producer_id,
                    "producer_epoch": epoch,
                    "transaction_result": commit,
                    "topics": [{"name": topic, "partition_indexes": [index]}],
                    "coordinator_epoch": COORDINATOR_EPOCH,
                }
            ],
        )
        codes = [p.error_code for m in answer.markers for t in m.topics for p in t.partitions]
        code = ErrorCode(codes[0]) if len(codes) == 1 else ErrorCode.unknown_server_error
        if code in (ErrorCode.none, ErrorCode.unknown_topic_or_partition):
            return  # written, or deleted with its topic
        raise KafkaError(code, f"node {node} refused the marker for {topic}-{index}")

    return write
