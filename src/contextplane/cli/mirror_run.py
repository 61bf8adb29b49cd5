"""One mirror's work: fetch raw batches from the source's partition leaders and append
them to the target's with MirrorAppend, at the source's offsets.

A round fetches every partition once (each leader's partitions in one Fetch, read
uncommitted: aborted records and transaction markers are copied too, so read_committed
consumers of the target see what those of the source see), appends what came back and
moves each partition's position to the end of its last complete batch. The source's log
start is carried over with DeleteRecords on the target, so the first offset a consumer
finds is the source's.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from contextplane.cli.kafka_client import CommandError
from contextplane.cli.wire import Cluster, WireError, error_name
from contextplane.protocol.codec import MIRROR_APPEND_KEY
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.records import BATCH_HEADER_BYTES, parse_header

FETCH = 1
LIST_OFFSETS = 2
EARLIEST, LATEST = -2, -1  # ListOffsets' timestamps
DELETE_RECORDS = 21
FETCH_VERSION = 12  # topics by name; every Kafka from 3.1 to 4.x answers it
PARTITION_BYTES_MAX = 1024 * 1024
FETCH_BYTES_MAX = 16 * 1024 * 1024
FETCH_WAIT_MS = 200
APPEND_TIMEOUT_MS = 30_000
LEADER_TRIES, LEADER_WAIT_S = 20, 0.5


@dataclass
class PartitionProgress:
    topic: str
    partition: int
    position: int  # the next source offset to fetch
    stored: bool = False  # the progress topic holds a position of the partition
    source_end: int = -1  # the source's high watermark at the last fetch
    source_start: int = 0
    target_start: int = 0  # the target's log start, as far as this mirror moved it

    @property
    def lag(self) -> int:
        return max(self.source_end - self.position, 0) if self.source_end >= 0 else -1


def complete_batches(records: bytes, position: int) -> tuple[bytes, int]:
    """The whole batches of a fetched record set that end past `position` (a fetch may
    end with a partial batch, and start with the batch holding `position`), and the
    offset after the last."""
    view = memoryview(records)
    start = end = None
    offset = 0
    next_position = position
    while len(view) - offset >= BATCH_HEADER_BYTES:
        header = parse_header(view, offset)
        size = header.total_bytes
        if offset + size > len(view):
            break
        batch_end = header.base_offset + header.last_offset_delta + 1
        if batch_end <= next_position:
            offset += size
            continue
        if start is None:
            start = offset
        end = offset + size
        next_position = batch_end
        offset += size
    if start is None or end is None:
        return b"", position
    return bytes(view[start:end]), next_position


class Mirror:
    def __init__(self, source: Cluster, target: Cluster, progress: list[PartitionProgress]):
        self.source = source
        self.target = target
        self.progress = {(p.topic, p.partition): p for p in progress}
        topics = sorted({p.topic for p in progress})
        self._source_leaders = source.leaders(topics)
        self._target_leaders = target.leaders(topics)
        for _ in range(LEADER_TRIES):  # topics just created may not be led yet
            if all(key in self._target_leaders for key in self.progress):
                break
            time.sleep(LEADER_WAIT_S)
            self._target_leaders = target.leaders(topics)
        self._check_targets_unwritten()
        self._start_at_log_start(list(self.progress.values()))

    def round(self) -> int:
        """Fetch and append once for every partition; how many batches' bytes moved."""
        fetched = self._fetch()
        moved = 0
        by_leader: dict[str, list[tuple[PartitionProgress, bytes, int]]] = defaultdict(list)
        for progress, records, end in fetched:
            by_leader[self._target_leader(progress)].append((progress, records, end))
            moved += len(records)
        for address, items in by_leader.items():
            self._append(address, items)
        self._carry_log_starts()
        return moved

    def _fetch(self) -> list[tuple[PartitionProgress, bytes, int]]:
        by_leader: dict[str, list[PartitionProgress]] = defaultdict(list)
        for progress in self.progress.values():
            by_leader[self._source_leader(progress)].append(progress)
        out = []
        for address, partitions in by_leader.items():
            topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for p in partitions:
                topics[p.topic].append(
                    {
                        "partition": p.partition,
                        "current_leader_epoch": -1,
                        "fetch_offset": p.position,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": PARTITION_BYTES_MAX,
                    }
                )
            answer = self.source.connection(address).request(
                FETCH,
                FETCH_VERSION,
                replica_id=-1,
                max_wait=FETCH_WAIT_MS,
                min_bytes=1,
                max_bytes=FETCH_BYTES_MAX,
                isolation_level=0,
                session_id=0,
                session_epoch=-1,
                topics=[{"topic": t, "partitions": ps} for t, ps in topics.items()],
                forgotten_topics_data=[],
                rack_id="",
            )
            if answer.error_code:
                raise CommandError(f"fetch from {address}: {error_name(answer.error_code)}")
            for topic in answer.responses:
                for data in topic.partitions:
                    progress = self.progress[(topic.topic, data.partition_index)]
                    out.extend(self._fetched(progress, data))
        return out

    def _start_at_log_start(self, partitions: list[PartitionProgress]) -> None:
        """Note each partition's log start on the source, and begin there where the
        position is below it."""
        starts = _list_offsets(self.source, self._source_leaders, partitions, EARLIEST, "source")
        for p in partitions:
            p.source_start = starts[(p.topic, p.partition)]
            p.position = max(p.position, p.source_start)

    def _check_targets_unwritten(self) -> None:
        """A partition without a stored position must be empty on the target: a batch
        the target holds already is acknowledged as mirrored, so records that no mirror
        wrote would pass for the source's."""
        fresh = [p for p in self.progress.values() if not p.stored]
        ends = _list_offsets(self.target, self._target_leaders, fresh, LATEST, "target")
        for (topic, partition), end in ends.items():
            if end > 0:
                raise CommandError(
                    f"{topic}-{partition} holds {end} offsets on the target that this mirror "
                    "did not write: mirror into a new or empty topic"
                )

    def _source_leader(self, progress: PartitionProgress) -> str:
        leader = self._source_leaders.get((progress.topic, progress.partition))
        if leader is None:
            raise CommandError(f"{progress.topic}-{progress.partition} has no leader on the source")
        return leader

    def _fetched(
        self, progress: PartitionProgress, data: Any
    ) -> list[tuple[PartitionProgress, bytes, int]]:
        what = f"{progress.topic}-{progress.partition}"
        if (
            data.error_code == ErrorCode.offset_out_of_range
            and data.log_start_offset > progress.position
        ):
            # The source removed those records (retention, DeleteRecords): go on from its
            # log start, as the target will have it.
            progress.position = data.log_start_offset
            progress.source_start = data.log_start_offset
            return []
        if data.error_code:
            raise CommandError(f"fetch of {what} from the source: {error_name(data.error_code)}")
        progress.source_end = data.high_watermark
        progress.source_start = max(progress.source_start, data.log_start_offset)
        records, end = complete_batches(data.records or b"", progress.position)
        if not records:
            if data.records and len(data.records) >= PARTITION_BYTES_MAX:
                raise CommandError(f"{what}: a batch larger than {PARTITION_BYTES_MAX} bytes")
            return []
        return [(progress, records, end)]

    def _target_leader(self, progress: PartitionProgress) -> str:
        leader = self._target_leaders.get((progress.topic, progress.partition))
        if leader is None:
            raise CommandError(f"{progress.topic}-{progress.partition} has no leader on the target")
        return leader

    def _append(self, address: str, items: list[tuple[PartitionProgress, bytes, int]]) -> None:
        topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for progress, records, _ in items:
            topics[progress.topic].append({"index": progress.partition, "records": records})
        answer = self.target.connection(address).request(
            MIRROR_APPEND_KEY,
            0,
            timeout=APPEND_TIMEOUT_MS,
            topics=[{"name": t, "partitions": ps} for t, ps in topics.items()],
        )
        results = {(topic.name, p.index): p for topic in answer.topics for p in topic.partitions}
        for progress, _, end in items:
            result = results.get((progress.topic, progress.partition))
            if result is None:
                raise CommandError(
                    f"{address} did not answer for {progress.topic}-{progress.partition}"
                )
            if result.error_code:
                message = f": {result.error_message}" if result.error_message else ""
                raise CommandError(
                    f"mirror append to {progress.topic}-{progress.partition} on the target: "
                    f"{error_name(result.error_code)}{message}"
                )
            progress.position = end

    def _carry_log_starts(self) -> None:
        """DeleteRecords on the target up to the source's log start, where the mirror has
        reached it."""
        by_leader: dict[str, list[PartitionProgress]] = defaultdict(list)
        for progress in self.progress.values():
            if progress.target_start < progress.source_start <= progress.position:
                by_leader[self._target_leader(progress)].append(progress)
        for address, partitions in by_leader.items():
            topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for p in partitions:
                topics[p.topic].append({"partition_index": p.partition, "offset": p.source_start})
            answer = self.target.connection(address).request(
                21,
                2,
                topics=[{"name": t, "partitions": ps} for t, ps in topics.items()],
                timeout=APPEND_TIMEOUT_MS,
            )
            for topic in answer.topics:
                for result in topic.partitions:
                    if result.error_code:
                        raise CommandError(
                            f"moving the log start of {topic.name}-{result.partition_index} on "
                            f"the target: {error_name(result.error_code)}"
                        )
                    self.progress[
                        (topic.name, result.partition_index)
                    ].target_start = result.low_watermark


def answers_mirror_append(target: Cluster) -> bool:
    """Whether the target serves MirrorAppend (contextplane's own request, not listed by
    ApiVersions): asked with no partitions, which a contextplane broker answers with
    nothing, while a Kafka broker closes the connection on an API key it does not know."""
    connection = target.connection(target.bootstrap.split(",")[0])  # unreachable: WireError
    try:
        connection.request(MIRROR_APPEND_KEY, 0, timeout=APPEND_TIMEOUT_MS, topics=[])
    except WireError:
        target.close()  # the connection is gone; later requests open new ones
        return False
    return True


def _list_offsets(
    cluster: Cluster,
    leaders: dict[tuple[str, int], str],
    partitions: list[PartitionProgress],
    timestamp: int,
    side: str,
) -> dict[tuple[str, int], int]:
    """ListOffsets (EARLIEST or LATEST) of `partitions`, from their leaders on `cluster`."""
    by_leader: dict[str, list[PartitionProgress]] = defaultdict(list)
    for p in partitions:
        leader = leaders.get((p.topic, p.partition))
        if leader is None:
            raise CommandError(f"{p.topic}-{p.partition} has no leader on the {side}")
        by_leader[leader].append(p)
    offsets: dict[tuple[str, int], int] = {}
    for address, group in by_leader.items():
        topics: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for p in group:
            topics[p.topic].append(
                {"partition_index": p.partition, "current_leader_epoch": -1, "timestamp": timestamp}
            )
        answer = cluster.connection(address).request(
            LIST_OFFSETS,
            7,
            replica_id=-1,
            isolation_level=0,
            topics=[{"name": t, "partitions": ps} for t, ps in topics.items()],
        )
        for topic in answer.topics:
            for result in topic.partitions:
                if result.error_code:
                    raise CommandError(
                        f"offsets of {topic.name}-{result.partition_index} on the {side}: "
                        f"{error_name(result.error_code)}"
                    )
                offsets[(topic.name, result.partition_index)] = result.offset
    return offsets


__all__ = [
    "Mirror",
    "PartitionProgress",
    "WireError",
    "answers_mirror_append",
    "complete_batches",
]
