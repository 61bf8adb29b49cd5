"""Which partitions this broker opens when it reads them (at start, and for the topics it
creates): `TargetAssignment`, the desired assignment of RFC 0004 §2. The reconciler
(`cluster/reconciler.py`) keeps following the targets as they change."""

from __future__ import annotations

from typing import Protocol

from contextplane.metadata.records import PartitionRecord


class Assignment(Protocol):
    def leads(self, record: PartitionRecord) -> bool: ...


class TargetAssignment:
    """Partitions targeted at this node that nobody leads, and those this node led: an
    earlier incarnation's are reopened (their WAL tail is replayed here) even when their
    target moved meanwhile, and the reconciler then hands them over. A row without a
    target (written before targets existed) is opened when nobody leads it, so a second
    broker on the same metadata claims none of the first one's partitions. The claim
    (`claim_leadership`) checks the same conditions in its transaction."""

    def __init__(self, node_id: int) -> None:
        self._node_id = node_id

    def leads(self, record: PartitionRecord) -> bool:
        if record.leader_node == self._node_id:
            return True
        return record.leader_node == -1 and record.target_node in (self._node_id, -1)
