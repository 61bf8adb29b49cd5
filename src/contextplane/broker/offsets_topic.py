"""The read-only internal topic `__consumer_offsets`, written by the group coordinator.

Committed offsets live in the metadata store (the authority); lag monitors and Kafka's
own tools read them from `__consumer_offsets` in Kafka's key and value formats. The
coordinator reports every change once the store has it (`OffsetsJournal`), and this
writer appends the records through the storage engine, as one batch per change, in the
group's partition (`partition_for`): the same WAL and object path as produced data. An
append is queued, not awaited: a commit never waits for it, and a failed one is logged
and repaired by a snapshot.

The topic is `cleanup.policy=compact`, as Kafka's: the log cleaner keeps each key's
newest record, so a reader from the earliest offset sees every live offset and group.
At start (which also covers a crash between a metadata commit and its append) and after
a failed append, the writer appends a snapshot of every live committed offset and group.
If an operator makes the policy list `delete` too, retention may delete the segments of
offsets that never changed since, so the writer then also appends a snapshot every half
of the topic's `retention.ms`: retention deletes only segments whose newest record is
older than that, so the latest snapshot and everything after it are always retained.
A topic created as `delete` by a version without compaction is switched to `compact` at
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from contextplane.broker.configs import is_true
from contextplane.broker.internal_topics import InternalTopic, Record, append, ensure
from contextplane.broker.topics import TopicManager
from contextplane.clock import Clock
from contextplane.coordinators.group import GroupCoordinator
from contextplane.limits import OFFSETS_SNAPSHOT_BYTES_PER_S, OFFSETS_SNAPSHOT_INTERVAL_MIN_MS
from contextplane.logsafe import escape
from contextplane.metadata.records import OffsetRow
from contextplane.protocol.offsets_records import (
    OFFSETS_TOPIC,
    GroupMetadata,
    group_metadata_key,
    group_metadata_value,
    offset_commit_key,
    offset_commit_value,
    partition_for,
)
from contextplane.settings import Settings
from contextplane.storage.engine import StorageEngine
from contextplane.tasks import cancel_and_wait, log_round_failure

log = logging.getLogger(__name__)

# Kafka's offsets.topic.segment.bytes default.
SEGMENT_BYTES = 100 * 1024 * 1024
# After a failed append, the next snapshot repairs the topic this long later.
REPAIR_DELAY_MS = 30_000
RECHECK_S = 60.0


def topic_configs(settings: Settings) -> dict[str, str]:
    """Kafka's own (compact, 100 MiB segments); `retention.ms` applies only if an operator
    adds `delete` to the policy."""
    return {
        "cleanup.policy": "compact",
        "retention.ms": str(settings.offsets_topic_retention_ms),
        "retention.bytes": "-1",
        "segment.bytes": str(SEGMENT_BYTES),
    }


def unclean_election(topics: TopicManager, name: str) -> bool:
    """May a dead broker's partition of `name` holding records in no object be taken
    over, those records given up (RFC 0004 §5)? The topic's
    `unclean.leader.election.enable`; always for `__consumer_offsets`, a copy of what
    the metadata store holds that the new leader's snapshot at shard load repairs, so a
    group coordinator never waits for a dead broker's disk."""
    if name == OFFSETS_TOPIC:
        return True
    return is_true(topics.configs(name).get("unclean.leader.election.enable"))


def legacy_topic_configs(settings: Settings) -> dict[str, str]:
    """What versions without compaction created the topic with."""
    return dict(topic_configs(settings), **{"cleanup.policy": "delete"})


class OffsetsShards:
    """A coordinator's `ShardLeases`: the partitions of its internal topic
    (`__consumer_offsets` for the group coordinator, `__transaction_state` for the
    transaction coordinator) this broker leads, at their epochs
    (coordinators/group_shards.py)."""

    def __init__(
        self, storage: StorageEngine, topics: TopicManager, topic: str = OFFSETS_TOPIC
    ) -> None:
        self._storage = storage
        self._topics = topics
        self._topic = topic

    def count(self) -> int:
        topic = self._topics.topics().get(self._topic)
        return 0 if topic is None else topic.partitions

    def lease(self, shard: int) -> tuple[int, int] | None:
        partition = self._storage.partitions.get((self._topic, shard))
        if partition is None or partition.handing_over:
            return None
        return partition.stream_id, partition.leader_epoch

    def release(self, stream_id: int) -> None:
        self._storage.leadership.release(stream_id)


class OffsetsTopicWriter:
    """The coordinator's `OffsetsJournal`: appends its records to `__consumer_offsets`."""

    def __init__(
        self, storage: StorageEngine, topics: TopicManager, settings: Settings, clock: Clock
    ) -> None:
        self._storage = storage
        self._topics = topics
        self._settings = settings
        self._wall_ms = clock.wall_ms
        self._coordinator: GroupCoordinator | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last_snapshot_ms = 0
        self._last_snapshot_bytes = 0
        self._repair_at_ms: int | None = None
        self.failed_appends = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def ensure_topic(self) -> bool:
        """Create the internal topic at the first start (its partition count is fixed
        from then on, as in Kafka); True if it was created."""
        partitions = self._settings.offsets_topic_num_partitions
        configs = topic_configs(self._settings)
        topic = InternalTopic(OFFSETS_TOPIC, partitions, configs)
        if not await ensure(self._topics, topic):
            if self._topics.configs(OFFSETS_TOPIC) == legacy_topic_configs(self._settings):
                await self._topics.set_configs(OFFSETS_TOPIC, configs)
                log.info("%s is now cleanup.policy=compact", OFFSETS_TOPIC)
            return False
        log.info(
            "created %s with %d partitions",
            OFFSETS_TOPIC,
            self._settings.offsets_topic_num_partitions,
        )
        return True

    async def start(self, coordinator: GroupCoordinator) -> None:
        """Append a snapshot (repairing what a crash lost), then keep the topic complete."""
        self._coordinator = coordinator
        coordinator.offsets.journal = self
        coordinator.shard_loaded.append(self._shard_loaded)
        self._topics.on_deleted.append(self._topic_deleted)
        await self.snapshot()
        self._task = asyncio.create_task(self._run(), name="offsets-topic-snapshots")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _interval_ms(self) -> int | None:
        """Half of the topic's retention.ms; at least OFFSETS_SNAPSHOT_INTERVAL_MIN_MS and
        long enough to keep the snapshots' writes under OFFSETS_SNAPSHOT_BYTES_PER_S
        (None: no time retention, or a policy without `delete`)."""
        configs = self._topics.configs(OFFSETS_TOPIC)
        policy = configs.get("cleanup.policy", self._settings.log_cleanup_policy)
        if "delete" not in [item.strip() for item in policy.split(",")]:
            return None
        configured = configs.get("retention.ms")
        try:
            retention = int(configured) if configured is not None else self._settings.retention_ms
        except ValueError:
            retention = self._settings.retention_ms
        if retention < 0:
            return None
        by_rate = self._last_snapshot_bytes * 1000 // OFFSETS_SNAPSHOT_BYTES_PER_S
        return max(retention // 2, OFFSETS_SNAPSHOT_INTERVAL_MIN_MS, by_rate)

    def _next_due_ms(self) -> int | None:
        interval = self._interval_ms()
        due = None if interval is None else self._last_snapshot_ms + interval
        if self._repair_at_ms is not None:
            due = self._repair_at_ms if due is None else min(due, self._repair_at_ms)
        return due

    async def _run(self) -> None:
        while True:
            due = self._next_due_ms()
            self._wake.clear()
            if due is not None and self._wall_ms() >= due:
                try:
                    await self.snapshot()
                except Exception as exc:  # noqa: BLE001 - retried at the next deadline
                    log_round_failure(log, f"snapshot of {OFFSETS_TOPIC}", exc)
                    self._repair_at_ms = self._wall_ms() + REPAIR_DELAY_MS
                continue
            # Woken early by a failed append; at least once a minute, so a changed
            # retention.ms of the topic takes effect.
            delay_s = RECHECK_S if due is None else min((due - self._wall_ms()) / 1000, RECHECK_S)
            # Not wait_for: on Python 3.11 it can drop a cancellation (stop() would hang).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay_s, 0.0)):
                    await self._wake.wait()

    async def _topic_deleted(self, name: str) -> None:
        """DeleteTopics took the topic (its groups' shards with it): create it again now,
        so its partitions, the coordinator's shards, are led here again."""
        if name == OFFSETS_TOPIC:
            self._repair_at_ms = self._wall_ms()
            self._wake.set()

    async def _shard_loaded(self, shard: int) -> None:
        """A shard moved here: append its snapshot (what its last leader may not have)."""
        coordinator = self._coordinator
        assert coordinator is not None
        try:
            await self.snapshot(coordinator.shards.in_shards({shard}))
        except Exception as exc:  # noqa: BLE001 - repaired by the next snapshot
            log_round_failure(log, f"snapshot of {OFFSETS_TOPIC}-{shard}", exc)
            self._repair_at_ms = self._wall_ms() + REPAIR_DELAY_MS

    async def snapshot(self, wanted: Callable[[str], bool] | None = None) -> int:
        """Append every live committed offset and group of the groups served here (or
        those `wanted`); returns the records appended."""
        coordinator = self._coordinator
        assert coordinator is not None, "start() sets the coordinator"
        if wanted is None:
            self._repair_at_ms = None
            if await self.ensure_topic():  # DeleteTopics may delete it, as Kafka allows
                await coordinator.load_led_shards()
            wanted = coordinator.shards.serves
        started_ms = self._wall_ms()
        count = written = 0
        async for group_id, committed in coordinator.offsets.snapshot(wanted):
            rows = [
                (topic, partition, c.offset, c.leader_epoch, c.metadata or "", c.commit_ms)
                for (topic, partition), c in sorted(committed.items())
            ]
            records = [self._offset_record(group_id, *row) for row in rows]
            self._append(group_id, records)
            count += len(records)
            written += sum(len(key) + len(value or b"") for key, value in records)
            await asyncio.sleep(0)  # many groups: let requests in between
        for group_id, metadata in coordinator.snapshot_groups():
            if wanted(group_id):
                self.group_stored(group_id, metadata)
            count += 1
        self._last_snapshot_ms = started_ms
        self._last_snapshot_bytes = written
        log.info("appended a snapshot of %d records to %s", count, OFFSETS_TOPIC)
        return count

    # -- the journal ----------------------------------------------------------------------

    def offsets_committed(self, group_id: str, rows: list[OffsetRow], commit_ms: int) -> None:
        self._append(
            group_id,
            [
                self._offset_record(
                    group_id,
                    r.topic,
                    r.partition,
                    r.offset,
                    r.leader_epoch,
                    r.metadata or "",
                    commit_ms,
                )  # fmt: skip
                for r in rows
            ],
        )

    def offsets_deleted(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        if partitions:
            self._append(
                group_id, [(offset_commit_key(group_id, t, p), None) for t, p in partitions]
            )

    def group_stored(self, group_id: str, metadata: GroupMetadata) -> None:
        self._append(group_id, [(group_metadata_key(group_id), group_metadata_value(metadata))])

    def group_deleted(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        records: list[Record] = [(offset_commit_key(group_id, t, p), None) for t, p in partitions]
        records.append((group_metadata_key(group_id), None))
        self._append(group_id, records)

    def _offset_record(
        self,
        group_id: str,
        topic: str,
        partition: int,
        offset: int,
        leader_epoch: int,
        metadata: str,
        commit_ms: int,
    ) -> Record:
        record = self._topics.topics().get(topic)
        value = offset_commit_value(
            offset,
            leader_epoch,
            metadata,
            commit_ms,
            None if record is None else record.topic_id,
        )
        return offset_commit_key(group_id, topic, partition), value

    def _append(self, group_id: str, records: list[Record]) -> None:
        """Queue `records` on the group's partition; never raises, never waits. A group
        whose shard is led elsewhere is that broker's to write."""
        if self._coordinator is not None and not self._coordinator.shards.serves(group_id):
            return
        try:
            topic = self._topics.topics().get(OFFSETS_TOPIC)
            # No topic: `append` raises, and the snapshot that repairs it recreates it.
            partition = partition_for(group_id, topic.partitions if topic is not None else 1)
            durables = append(
                self._storage, self._topics, OFFSETS_TOPIC, partition, records, self._wall_ms()
            )
            for durable in durables:
                durable.add_done_callback(self._check_written(group_id))
        except Exception as exc:  # noqa: BLE001 - the metadata store has it; a snapshot repairs
            self._failed(group_id, exc)

    def _check_written(self, group_id: str) -> Callable[[asyncio.Future[None]], None]:
        def check(durable: asyncio.Future[None]) -> None:
            if durable.cancelled():
                return
            error = durable.exception()
            if error is not None:
                self._failed(group_id, error)

        return check

    def _failed(self, group_id: str, error: BaseException) -> None:
        """Count and log a failed append (once until the repairing snapshot: a full disk
        fails every commit's append) and schedule the snapshot that repairs it."""
        self.failed_appends += 1
        if self._repair_at_ms is not None:
            return
        log.warning(
            "appending to %s for group %s failed: %s; a snapshot repairs it",
            OFFSETS_TOPIC,
            escape(group_id),
            escape(str(error).rstrip(".")),
        )
        self._repair_at_ms = self._wall_ms() + REPAIR_DELAY_MS
        self._wake.set()
