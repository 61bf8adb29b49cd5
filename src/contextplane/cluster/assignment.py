"""Which partitions this broker should lead. One broker leads them all; a cluster will
decide per partition (and tell the storage engine to open or release partitions as the
assignment changes, see StorageEngine.assign / release)."""

from __future__ import annotations

from typing import Protocol

from contextplane.metadata.records import PartitionRecord


class Assignment(Protocol):
    def leads(self, record: PartitionRecord) -> bool: ...


class EveryPartition:
    """The single-broker assignment: this broker leads every partition."""

    def leads(self, record: PartitionRecord) -> bool:
        return True
