"""What every phase of the machine shares: the groups, the timers, the time and the config.

Rules of this file:

* Time is read only through the injected `now_ms`; a deadline is `now_ms() + delay`.
* Timers are scheduled only through `schedule`, keyed by the timer itself, so a key's new
  timer always replaces the old one.
* A group is created only by `get_or_create` and lives in `groups` until the machine
  deletes or unloads it (then it is Dead and gone from `groups`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from contextplane import limits
from contextplane.coordinators.group_state.classic_group import Group
from contextplane.coordinators.group_state.member import Member
from contextplane.coordinators.group_state.timers import GroupTimer, HeartbeatExpiry, Timers

# Kafka's classicGroupNewMemberJoinTimeoutMs: a new member whose JoinGroup is parked is
# dropped after this long if the join phase has not completed.
NEW_MEMBER_JOIN_TIMEOUT_MS = 300_000
# Kafka's group.max.size default (Integer.MAX_VALUE).
GROUP_MAX_SIZE = 2**31 - 1


def _random_member_id_suffix() -> str:
    return str(uuid.uuid4())


@dataclass
class CoordinatorConfig:
    initial_rebalance_delay_ms: int = 3000
    session_timeout_ms_min: int = limits.GROUP_SESSION_TIMEOUT_MS_MIN
    session_timeout_ms_max: int = limits.GROUP_SESSION_TIMEOUT_MS_MAX
    new_member_join_timeout_ms: int = NEW_MEMBER_JOIN_TIMEOUT_MS
    max_group_size: int = GROUP_MAX_SIZE
    # What follows the client id (or instance id) in a new member id.
    member_id_suffix: Callable[[], str] = field(default=_random_member_id_suffix)


class Core:
    """The state the join, sync and session phases share."""

    def __init__(self, now_ms: Callable[[], int], config: CoordinatorConfig) -> None:
        self.now_ms = now_ms
        self.config = config
        self.groups: dict[str, Group] = {}
        self.timers: Timers[GroupTimer] = Timers()
        # Told of each group whose metadata Kafka would store: a completed rebalance
        # (the leader's assignment, or nobody left), or a static member replaced without
        # a rebalance. The shell stores it and writes it to __consumer_offsets; it must
        # not re-enter the machine.
        self.on_group_stored: Callable[[Group], None] | None = None

    def group_stored(self, group: Group) -> None:
        if self.on_group_stored is not None:
            self.on_group_stored(group)

    def get_or_create(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = Group(group_id, self.now_ms())
            self.groups[group_id] = group
        return group

    def schedule(self, timer: GroupTimer, delay_ms: int) -> None:
        self.timers.schedule(timer.key, self.now_ms() + max(0, delay_ms), timer)

    def cancel(self, key: Hashable) -> None:
        self.timers.cancel(key)

    def reschedule_heartbeat(
        self, group: Group, member: Member, timeout_ms: int | None = None
    ) -> None:
        """Restart the member's session: it expires `timeout_ms` (default: its session
        timeout) from now unless something restarts it again."""
        self.schedule(
            HeartbeatExpiry(group.group_id, member.member_id),
            member.session_timeout_ms if timeout_ms is None else timeout_ms,
        )
