"""Every group's committed offsets: rows in the metadata store, each change also told to
the offsets journal (the `__consumer_offsets` topic). Which member may commit, fetch or
delete is the group coordinator's question (group.py); this module only reads and
writes what it allowed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from contextplane import limits
from contextplane.coordinators.offset_fetch import fetched_topics
from contextplane.coordinators.offsets_journal import OffsetsJournal
from contextplane.errors import CoordinatorFenced, KafkaError
from contextplane.logsafe import escape
from contextplane.metadata.records import OffsetRow
from contextplane.metadata.store import MetadataStore, MetadataStoreUnavailable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.repeated_log import RepeatedLog

log = logging.getLogger(__name__)
# How often repeated commit failures during a metadata-store outage are summarised.
_UNAVAILABLE_LOG_INTERVAL_S = 10.0


@dataclass(slots=True)
class OffsetCommitEntry:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


class CommittedOffsets:
    def __init__(
        self,
        store: MetadataStore,
        journal: OffsetsJournal,
        now_ms: Callable[[], int],
        wall_ms: Callable[[], int],
    ) -> None:
        self._store = store
        # Replaced once the offsets topic is up (broker/offsets_topic.py).
        self.journal = journal
        self._now_ms = now_ms
        self._wall_ms = wall_ms
        # An outage of the metadata store fails every commit until it is back: one line
        # per burst, not a traceback per commit.
        self._unavailable_commits = RepeatedLog(
            log, "offset commits failed: metadata store unavailable", _UNAVAILABLE_LOG_INTERVAL_S
        )

    async def commit(
        self,
        group_id: str,
        entries: list[OffsetCommitEntry],
        fence: tuple[int, int] | None = None,
    ) -> list[ErrorCode]:
        """One error code per entry, in order, for a commit the group allowed; `fence`:
        the group's shard (stream, epoch), CoordinatorFenced raised when it moved."""
        codes: list[ErrorCode] = []
        rows = []
        for entry in entries:
            metadata = entry.metadata
            if metadata is not None and len(metadata) > limits.OFFSET_METADATA_BYTES_MAX:
                codes.append(ErrorCode.offset_metadata_too_large)
                continue
            codes.append(ErrorCode.none)
            rows.append(
                OffsetRow(entry.topic, entry.partition, entry.offset, entry.leader_epoch,
                          metadata or "")
            )  # fmt: skip
        if rows:
            commit_ms = self._wall_ms()
            try:
                await self._store.commit_offsets(group_id, rows, commit_ms, fence)
            except CoordinatorFenced:
                raise
            except MetadataStoreUnavailable as exc:
                self._unavailable_commits.event(
                    "the metadata store",
                    self._now_ms() / 1000,
                    "committing offsets of group %s failed: metadata store unavailable (%s)",
                    escape(group_id),
                    exc,
                )
                return _retriable(codes)
            except Exception:  # noqa: BLE001 - the store failed: retriable for the client
                log.exception("committing offsets of group %s failed", escape(group_id))
                return _retriable(codes)
            self.journal.offsets_committed(group_id, rows, commit_ms)
        return codes

    async def fetch(
        self, group_id: str, topics: Iterable[tuple[str, Iterable[int]]] | None
    ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        """(group error, OffsetFetch topics); see `GroupCoordinator.fetch_offsets`."""
        try:
            committed = await self._store.fetch_offsets(group_id)
        except KafkaError as exc:  # the store cannot answer now: retriable for the client
            log.warning("reading the offsets of group %s failed: %s", escape(group_id), exc)
            return ErrorCode.coordinator_not_available, []
        return ErrorCode.none, fetched_topics(committed, topics)

    async def delete(
        self,
        group_id: str,
        topics: list[tuple[str, list[int]]],
        subscribed: Callable[[str], bool],
        fence: tuple[int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """OffsetDelete's per-topic results: a topic the group is `subscribed` to keeps its
        offsets; the others' go, with a tombstone for each partition that had one."""
        results = []
        doomed: list[tuple[str, int]] = []
        for topic, partitions in topics:
            kept = subscribed(topic)
            code = ErrorCode.group_subscribed_to_topic if kept else ErrorCode.none
            if not kept:
                doomed.extend((topic, p) for p in partitions)
            results.append(
                {
                    "name": topic,
                    "partitions": [{"partition_index": p, "error_code": code} for p in partitions],
                }
            )
        if doomed:
            committed = await self._store.fetch_offsets(group_id)
            await self._store.delete_offsets(group_id, doomed, fence)
            self.journal.offsets_deleted(group_id, [k for k in doomed if k in committed])
        return results

    async def on_topic_deleted(self, topic: str) -> None:
        """Drop the committed offsets of a deleted topic from every group (Kafka's
        onPartitionsDeleted), with a tombstone for each in __consumer_offsets."""
        doomed = {}
        for group_id in await self._store.groups_with_offsets():
            partitions = [k for k in await self._store.fetch_offsets(group_id) if k[0] == topic]
            if partitions:
                doomed[group_id] = partitions
        await self._store.delete_topic_offsets(topic)
        for group_id, partitions in doomed.items():
            self.journal.offsets_deleted(group_id, partitions)

    async def snapshot(
        self, wanted: Callable[[str], bool] = lambda group_id: True
    ) -> AsyncIterator[tuple[str, dict[tuple[str, int], Any]]]:
        """(group, committed offsets) of every group `wanted` with offsets, one group at
        a time."""
        for group_id in await self._store.groups_with_offsets():
            if not wanted(group_id):
                continue
            committed = await self._store.fetch_offsets(group_id)
            if committed:
                yield group_id, committed


def _retriable(codes: list[ErrorCode]) -> list[ErrorCode]:
    return [ErrorCode.coordinator_not_available if c == ErrorCode.none else c for c in codes]
