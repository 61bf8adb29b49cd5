"""One member of a classic group (Kafka's `ClassicGroupMember`) and its parked requests.

Rules of this file:

* A member holds at most one parked JoinGroup (`join_waiter`) and one parked SyncGroup
  (`sync_waiter`). `complete_join` / `complete_sync` are the only ways to answer them: each
  clears the slot before calling the waiter, so no waiter is ever answered twice, even if
  answering it re-enters the machine.
* A member waiting for a JoinGroup or SyncGroup response cannot heartbeat, so while it
  waits its heartbeat counts as satisfied; a new member's does not (it may be dropped while
  its first JoinGroup is parked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contextplane.coordinators.group_state.messages import Protocols, Waiter


@dataclass(eq=False, slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    join_waiter: Waiter | None = None
    sync_waiter: Waiter | None = None
    is_new: bool = False

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol_name: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""

    def has_satisfied_heartbeat(self) -> bool:
        if self.is_new:
            # New members can be expired even while awaiting join.
            return False
        # Members awaiting a rebalance automatically satisfy expected heartbeats.
        return self.awaiting_join or self.awaiting_sync

    def matches(self, protocols: Protocols) -> bool:
        return list(protocols) == list(self.protocols)

    def vote(self, candidates: set[str]) -> str:
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError("member does not support any of the candidate protocols")


def complete_join(member: Member, response: dict[str, Any]) -> bool:
    """Answer the member's parked JoinGroup, if any; True if there was one."""
    waiter = member.join_waiter
    if waiter is None:
        return False
    member.join_waiter = None
    waiter(response)
    return True


def complete_sync(member: Member, response: dict[str, Any]) -> bool:
    """Answer the member's parked SyncGroup, if any; True if there was one."""
    waiter = member.sync_waiter
    if waiter is None:
        return False
    member.sync_waiter = None
    waiter(response)
    return True
