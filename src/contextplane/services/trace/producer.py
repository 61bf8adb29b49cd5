"""The producer of a source record: the producer id and epoch in the header of the batch
holding it (RFC 0006 §4, "source events (topic, partition, offset, producer)").

confluent-kafka's `Message` does not expose them (librdkafka parses the batch header, the
Python binding gives no accessor), so the batch is fetched raw: one Fetch v12 of the
record's partition from its offset, on the project's own blocking client (`cli/wire.py`,
the mirror's, with TLS and SASL from the same librdkafka settings), to the partition's
leader. A broker answers from the batch holding the offset, and returns that first batch
whole even past the byte bound (KIP-74), so only the first few batches are asked for.
Apache Kafka answers the same request: nothing here is contextplane's own.

A producer id of -1 is a producer that was neither idempotent nor transactional (Kafka
stamps no id then); a transactional batch says so.
"""

from __future__ import annotations

from typing import Any

from contextplane.protocol.records import BATCH_HEADER_BYTES, parse_header

FETCH, FETCH_VERSION = 1, 12  # topics by name; Kafka 3.1 to 4.x answers it
# Bytes asked of the partition: the first batch comes whole past it anyway.
PARTITION_BYTES_MAX = 64 * 1024
_MAGIC = 2  # the only record batch format Kafka 4 has


def batch_producer(records: bytes, offset: int) -> dict[str, Any] | str:
    """The producer fields of the batch in `records` (a fetch's concatenated batches,
    possibly ending in a partial one) that holds `offset`, or why none does."""
    view = memoryview(records)
    position = 0
    while len(view) - position >= BATCH_HEADER_BYTES:
        header = parse_header(view, position)
        if header.magic != _MAGIC:
            return f"a batch of magic {header.magic} at {header.base_offset}, not 2"
        if header.batch_length <= 0:
            return f"a batch of length {header.batch_length} at {header.base_offset}"
        last = header.base_offset + header.last_offset_delta
        if header.base_offset <= offset <= last and not header.is_control:
            return {
                "producer_id": header.producer_id,
                "producer_epoch": header.producer_epoch,
                "transactional": header.is_transactional,
                "batch": f"{header.base_offset}..{last}",
            }
        if header.base_offset > offset:
            break
        position += header.total_bytes
    return f"no batch of the fetched {len(records)} bytes holds offset {offset}"


class BatchProducers:
    """Raw connections to the cluster for one trace, made at the first question."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._cluster: Any = None
        self._leaders: dict[tuple[str, int], str] = {}

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()

    def producer_of(self, topic: str, partition: int, offset: int) -> dict[str, Any] | str:
        """The producer fields of the batch holding the record, or why they were not read."""
        from contextplane.cli.wire import Cluster, WireError, error_name
        from contextplane.cli.wire_security import Security, SecurityError

        try:
            if self._cluster is None:
                bootstrap = str(self._config.get("bootstrap.servers", ""))
                self._cluster = Cluster(bootstrap, security=Security.from_config(self._config))
            if (topic, partition) not in self._leaders:
                self._leaders.update(self._cluster.leaders([topic]))
            address = self._leaders.get((topic, partition))
            if address is None:
                return f"{topic}[{partition}] has no leader"
            answer = self._cluster.connection(address).request(
                FETCH,
                FETCH_VERSION,
                replica_id=-1,
                max_wait=0,
                min_bytes=1,
                max_bytes=PARTITION_BYTES_MAX,
                isolation_level=0,  # the record was read committed already; markers skipped
                session_id=0,
                session_epoch=-1,
                topics=[
                    {
                        "topic": topic,
                        "partitions": [
                            {
                                "partition": partition,
                                "current_leader_epoch": -1,
                                "fetch_offset": offset,
                                "last_fetched_epoch": -1,
                                "log_start_offset": -1,
                                "partition_max_bytes": PARTITION_BYTES_MAX,
                            }
                        ],
                    }
                ],
                forgotten_topics_data=[],
                rack_id="",
            )
        except (WireError, SecurityError) as exc:
            return f"fetching the batch: {exc}"
        if answer.error_code:
            return f"fetching the batch: {error_name(answer.error_code)}"
        for data in (p for t in answer.responses for p in t.partitions):
            if data.partition_index == partition:
                if data.error_code:
                    return f"fetching the batch: {error_name(data.error_code)}"
                return batch_producer(bytes(data.records or b""), offset)
        return f"the fetch answered nothing for {topic}[{partition}]"
