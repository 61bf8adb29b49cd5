"""The classic consumer group protocol as a pure state machine.

This follows Apache Kafka's group coordinator for classic groups (`GroupMetadataManager`
classic-group paths, `ClassicGroup`, `ClassicGroupMember`): the same states, the same
transitions, the same error codes. It owns no event loop, no sockets and no storage.

Rules of this package:

* Time comes from an injected `now_ms` callable; nothing here reads a clock or imports
  asyncio.
* Timers (heartbeat expiry, the join phase deadline, the initial rebalance delay, the
  pending-sync deadline) are data in `Timers`, keyed like Kafka's timer keys; scheduling a
  key replaces its previous entry. The owner calls `fire_due_timers()` once
  `next_deadline()` has passed.
* A request that may have to wait (JoinGroup, SyncGroup) carries a `Waiter`, a callable
  that receives the response as a dict of the response's field values. The machine calls
  it exactly once, possibly before the request method returns.
* Committed offsets are not kept here; `validate_offset_commit` and friends only decide
  whether an offset operation is allowed.

Modules, lowest first: `states` (the state diagram), `messages` (requests, responses,
waiters), `subscription`, `member`, `classic_group` (one group's bookkeeping), `timers`,
`core` (what the phases share), `rebalance` (the join phase's end and the assignment),
`join`, `sync`, `sessions` (heartbeats, expiry, leaving), `offsets`, `views`, `machine`
(ties them together), and `invariants` (what must hold between any two calls).
"""

from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.core import (
    GROUP_MAX_SIZE,
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    CoordinatorConfig,
)
from contextplane.coordinators.group_state.invariants import check_invariants
from contextplane.coordinators.group_state.machine import GroupStateMachine
from contextplane.coordinators.group_state.member import Member, complete_join, complete_sync
from contextplane.coordinators.group_state.messages import (
    CONSUMER_PROTOCOL_TYPE,
    GROUP_TYPE,
    UNKNOWN_MEMBER_ID,
    JoinRequest,
    Protocols,
    SyncRequest,
    Waiter,
    join_error,
    sync_error,
)
from contextplane.coordinators.group_state.states import GroupEvent, GroupState, InvalidTransition
from contextplane.coordinators.group_state.subscription import parse_subscription_topics
from contextplane.coordinators.group_state.timers import Timers

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "GROUP_MAX_SIZE",
    "GROUP_TYPE",
    "NEW_MEMBER_JOIN_TIMEOUT_MS",
    "UNKNOWN_MEMBER_ID",
    "CoordinatorConfig",
    "Group",
    "GroupEvent",
    "GroupState",
    "GroupStateMachine",
    "InvalidTransition",
    "JoinRequest",
    "Member",
    "Protocols",
    "SyncRequest",
    "Timers",
    "Waiter",
    "check_invariants",
    "complete_join",
    "complete_sync",
    "join_error",
    "parse_subscription_topics",
    "sync_error",
]
