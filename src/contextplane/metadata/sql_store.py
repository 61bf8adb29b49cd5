"""The async `MetadataStore` over a `SqlEngine`, for every SQL engine: each call runs the
engine's synchronous method on the store's runner (one worker thread in the broker), so
nothing blocks the event loop and calls are serialised as one connection wants. An engine
subclasses it with how it opens and closes (sqlite.py, postgres.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from contextplane.metadata.records import (
    AbortedRow,
    AclRecord,
    ClaimOutcome,
    CommitOutcome,
    CommittedOffset,
    ObjectCommit,
    OffsetRow,
    PartitionRecord,
    RangeRecord,
    RangeSummary,
    ReplicaRanges,
    ScramCredentialRecord,
    TopicRecord,
)
from contextplane.metadata.reserve import SpaceReserve
from contextplane.metadata.runner import Runner
from contextplane.metadata.sql_assignment import AssignmentCalls, TargetOf
from contextplane.metadata.sql_broker_configs import BrokerConfigCalls
from contextplane.metadata.sql_brokers import BrokerCalls
from contextplane.metadata.sql_classic_groups import ClassicGroupCalls
from contextplane.metadata.sql_consumer_groups import ConsumerGroupCalls
from contextplane.metadata.sql_engine import SqlEngine
from contextplane.metadata.sql_objects import ObjectCalls
from contextplane.metadata.sql_quotas import QuotaCalls
from contextplane.metadata.sql_reassignments import ReassignmentCalls
from contextplane.metadata.sql_share_group_members import ShareGroupCalls
from contextplane.metadata.sql_share_groups import SharePartitionCalls
from contextplane.metadata.sql_transactions import TransactionCalls
from contextplane.metadata.sql_wal_dirty import WalDirtyCalls
from contextplane.metadata.store import ChangeListener

_P = ParamSpec("_P")
_T = TypeVar("_T")


class SqlMetadataStore(
    BrokerConfigCalls,
    QuotaCalls,
    ClassicGroupCalls,
    ShareGroupCalls,
    ConsumerGroupCalls,
    SharePartitionCalls,
    TransactionCalls,
    ObjectCalls,
    BrokerCalls,
    AssignmentCalls,
    ReassignmentCalls,
    WalDirtyCalls,
):
    """`MetadataStore` over a `SqlEngine`: every call runs on the runner."""

    reserve: SpaceReserve | None = None
    shared = True
    _runner: Runner
    _engine: SqlEngine | None = None

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        if self._engine is not None:
            await self._runner.run(self._engine.close)
            self._engine = None
        self._runner.close()

    async def _call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._runner.run(method, *args, **kwargs)

    def companion(self) -> SqlMetadataStore:
        """A store for calls that must not wait behind this one's (the registry's
        heartbeat), not yet opened. This one itself by default: SQLite has one broker on
        one host, and `:memory:` cannot be shared by a second connection."""
        return self

    def change_listener(self, wake: Callable[[], None]) -> ChangeListener | None:
        """None: SQLite has one broker, whose own changes need no announcing."""
        return None

    @property
    def engine(self) -> SqlEngine:
        assert self._engine is not None, "the metadata store is not open"
        return self._engine

    async def cluster_id(self) -> str:
        return await self._call(self.engine.cluster_id)

    async def next_counter(self, name: str, count: int = 1) -> int:
        return await self._call(self.engine.next_counter, name, count)

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: dict[str, str],
        placement: TargetOf | None = None,
    ) -> TopicRecord:
        return await self._call(self.engine.create_topic, name, partitions, configs, placement)

    async def create_topics(
        self,
        names: list[str],
        partitions: int,
        configs: dict[str, str],
        placement: TargetOf | None = None,
    ) -> list[TopicRecord]:
        return await self._call(self.engine.create_topics, names, partitions, configs, placement)

    async def topics(self) -> list[TopicRecord]:
        return await self._call(self.engine.topics)

    async def topic(self, name: str) -> TopicRecord | None:
        return await self._call(self.engine.topic, name)

    async def topic_by_id(self, topic_id: bytes) -> TopicRecord | None:
        return await self._call(self.engine.topic_by_id, topic_id)

    async def delete_topic(self, name: str, delete_due_ms: int) -> list[str]:
        return await self._call(self.engine.delete_topic, name, delete_due_ms)

    async def add_partitions(
        self, name: str, total: int, placement: TargetOf | None = None
    ) -> None:
        await self._call(self.engine.add_partitions, name, total, placement)

    async def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        await self._call(self.engine.set_topic_configs, name, configs)

    async def partitions(self, topic: str | None = None) -> list[PartitionRecord]:
        return await self._call(self.engine.partitions, topic)

    async def claim_leadership(
        self, claims: dict[int, int], node_id: int, unclean: frozenset[int] = frozenset()
    ) -> ClaimOutcome:
        return await self._call(self.engine.claim_leadership, claims, node_id, unclean)

    async def commit_object(self, commit: ObjectCommit) -> CommitOutcome:
        return await self._call(self.engine.commit_object, commit)

    async def ranges_by_stream(self) -> dict[int, list[RangeRecord]]:
        return await self._call(self.engine.ranges_by_stream)

    async def ranges_of(self, stream_id: int) -> list[RangeRecord]:
        return await self._call(self.engine.ranges_of, stream_id)

    async def replica_ranges(
        self, topic: str, partition: int, since: int, aborted_since: int = -1
    ) -> ReplicaRanges | None:
        return await self._call(self.engine.replica_ranges, topic, partition, since, aborted_since)

    async def aborted_in(
        self, stream_id: int, start: int, end: int, before: int
    ) -> list[AbortedRow]:
        return await self._call(self.engine.aborted_in, stream_id, start, end, before)

    async def range_summaries(self) -> dict[int, RangeSummary]:
        return await self._call(self.engine.range_summaries)

    async def advance_log_start(self, stream_id: int, offset: int, delete_due_ms: int) -> list[str]:
        return await self._call(self.engine.advance_log_start, stream_id, offset, delete_due_ms)

    async def commit_offsets(
        self,
        group_id: str,
        rows: list[OffsetRow],
        now_ms: int,
        fence: tuple[int, int] | None = None,
    ) -> None:
        await self._call(self.engine.commit_offsets, group_id, rows, now_ms, fence)

    async def fetch_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        return await self._call(self.engine.fetch_offsets, group_id)

    async def delete_offsets(
        self,
        group_id: str,
        partitions: list[tuple[str, int]] | None,
        fence: tuple[int, int] | None = None,
    ) -> None:
        await self._call(self.engine.delete_offsets, group_id, partitions, fence)

    async def delete_topic_offsets(self, topic: str) -> None:
        await self._call(self.engine.delete_topic_offsets, topic)

    async def groups_with_offsets(self) -> list[str]:
        return await self._call(self.engine.groups_with_offsets)

    async def acls(self) -> list[AclRecord]:
        return await self._call(self.engine.acls)

    async def create_acls(self, records: list[AclRecord]) -> None:
        await self._call(self.engine.create_acls, records)

    async def delete_acls(self, records: list[AclRecord]) -> None:
        await self._call(self.engine.delete_acls, records)

    async def scram_credentials(self) -> list[ScramCredentialRecord]:
        return await self._call(self.engine.scram_credentials)

    async def alter_scram_credentials(
        self, upserts: list[ScramCredentialRecord], deletions: list[tuple[str, str]]
    ) -> None:
        await self._call(self.engine.alter_scram_credentials, upserts, deletions)
