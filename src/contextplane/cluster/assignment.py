"""Which partitions this broker should lead. Until a controller writes a desired
assignment (RFC 0004 §2), a broker leads what it created and what nobody leads; a
cluster will decide per partition (and tell the storage engine to open or release
partitions as the assignment changes)."""

from __future__ import annotations

from typing import Protocol

from contextplane.metadata.records import PartitionRecord


class Assignment(Protocol):
    def leads(self, record: PartitionRecord) -> bool: ...


class OwnOrUnled:
    """The interim assignment (RFC 0004 slice 0): partitions this node led (its own
    again after a restart) or that no node leads yet (just created). A second broker on
    the same metadata therefore never claims the first one's partitions; a single broker
    keeps leading everything, as it always led with its one node id."""

    def __init__(self, node_id: int) -> None:
        self._node_id = node_id

    def leads(self, record: PartitionRecord) -> bool:
        return record.leader_node in (self._node_id, -1)
