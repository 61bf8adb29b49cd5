"""One member's way from its current assignment to its target (Kafka's
`CurrentAssignmentBuilder`), as a pure function.

Rules of this file:

* Revocation comes first. While a member still owns partitions the target takes from it,
  it keeps its epoch, is told its assignment without them, and gets nothing new
  (UNREVOKED_PARTITIONS). Only a heartbeat whose owned partitions no longer hold any of
  them moves it on.
* A partition is given to a member only if no other member has it assigned or is still
  revoking it (`held_elsewhere`); the rest of its target waits (UNRELEASED_PARTITIONS)
  and is handed over on a later heartbeat, once the old owner has let go. So no
  partition is ever in two members' assignments at once.
* A member that is not revoking anything is at the target's epoch.
"""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass

from contextplane.coordinators.consumer_group.assignors import TopicPartition


class MemberState(enum.Enum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True, slots=True)
class Reconciliation:
    state: MemberState
    epoch: int
    assigned: frozenset[TopicPartition]
    revoking: frozenset[TopicPartition]


def reconcile(
    current: Reconciliation,
    target_epoch: int,
    target: frozenset[TopicPartition],
    owned: frozenset[TopicPartition] | None,
    held_elsewhere: Set[TopicPartition],
) -> Reconciliation:
    """The member's next step. `owned` is what the member's heartbeat says it owns (None
    when the heartbeat did not say: then it is assumed to own what it was given). Returns
    `current` itself when there is nothing to recompute."""
    if current.state is MemberState.UNREVOKED_PARTITIONS:
        if owned is None or owned & current.revoking:
            return current
        return _next(current, target_epoch, target, owned, held_elsewhere)
    if current.state is MemberState.STABLE and current.epoch == target_epoch:
        return current
    return _next(current, target_epoch, target, owned, held_elsewhere)


def _next(
    current: Reconciliation,
    target_epoch: int,
    target: frozenset[TopicPartition],
    owned: frozenset[TopicPartition] | None,
    held_elsewhere: Set[TopicPartition],
) -> Reconciliation:
    kept = current.assigned & target
    to_revoke = current.assigned - target
    if to_revoke and (owned is None or owned & to_revoke):
        return Reconciliation(MemberState.UNREVOKED_PARTITIONS, current.epoch, kept, to_revoke)
    pending = target - current.assigned
    free = frozenset(tp for tp in pending if tp not in held_elsewhere)
    state = MemberState.UNRELEASED_PARTITIONS if pending - free else MemberState.STABLE
    return Reconciliation(state, target_epoch, kept | free, frozenset())
