"""What the group coordinator tells the `__consumer_offsets` writer.

The metadata store is the authority for committed offsets; the internal topic is a copy
that lag monitors read. The coordinator reports each change after the store has it, and
the journal (the broker's `OffsetsTopicWriter`) appends the matching records. A journal
never raises into the coordinator and never makes it wait for durability: a commit
costs only the append's queueing, and a lost append is repaired by the next snapshot.
"""

from __future__ import annotations

from typing import Protocol

from contextplane.metadata.records import OffsetRow
from contextplane.protocol.offsets_records import GroupMetadata


class OffsetsJournal(Protocol):
    def offsets_committed(self, group_id: str, rows: list[OffsetRow], commit_ms: int) -> None: ...
    def offsets_deleted(self, group_id: str, partitions: list[tuple[str, int]]) -> None: ...
    def group_stored(self, group_id: str, metadata: GroupMetadata) -> None: ...
    def group_deleted(self, group_id: str, partitions: list[tuple[str, int]]) -> None: ...


class NoJournal:
    """No internal topic (unit tests of the coordinator alone)."""

    def offsets_committed(self, group_id: str, rows: list[OffsetRow], commit_ms: int) -> None:
        pass

    def offsets_deleted(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        pass

    def group_stored(self, group_id: str, metadata: GroupMetadata) -> None:
        pass

    def group_deleted(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        pass
