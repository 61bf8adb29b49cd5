"""The classic group's states and the events that move a group between them.

Rules of this file:

* `_TRANSITIONS` is the whole state diagram: (state, event) -> next state. It is Kafka's
  `ClassicGroupState` table of valid previous states, read forwards. No other code decides
  which state a group moves to; code decides only which event happened.
* An event the table does not allow in the group's current state is a programming error,
  never a client's: `InvalidTransition` names the group, the state and the event, and no
  state changes.

The diagram (Kafka's, for classic groups)::

                REBALANCE                       JOIN_COMPLETE
    Empty ------------------> PreparingRebalance ------------> CompletingRebalance
      ^                        |      ^       ^                      |         |
      |  JOIN_COMPLETE_EMPTY   |      |       |      REBALANCE       |         | ASSIGNMENT
      +------------------------+      |       +----------------------+         v
                                      +----------------- REBALANCE -------- Stable

    any state --UNLOAD--> Dead (the group is deleted, or the coordinator unloads it)
"""

from __future__ import annotations

import enum

from contextplane.logsafe import escape


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class GroupEvent(enum.Enum):
    # A member joins, rejoins with new metadata, leaves, expires or is replaced.
    REBALANCE = "rebalance"
    # The join phase ended with members: a new generation waits for its assignment.
    JOIN_COMPLETE = "join phase complete"
    # The join phase ended with nobody left: a new, empty generation.
    JOIN_COMPLETE_EMPTY = "join phase complete without members"
    # The leader's SyncGroup brought the generation's assignment.
    ASSIGNMENT = "leader's assignment"
    # The group is deleted, or the coordinator unloads every group.
    UNLOAD = "unload"


_TRANSITIONS: dict[tuple[GroupState, GroupEvent], GroupState] = {
    (GroupState.EMPTY, GroupEvent.REBALANCE): GroupState.PREPARING_REBALANCE,
    (GroupState.STABLE, GroupEvent.REBALANCE): GroupState.PREPARING_REBALANCE,
    (GroupState.COMPLETING_REBALANCE, GroupEvent.REBALANCE): GroupState.PREPARING_REBALANCE,
    (GroupState.PREPARING_REBALANCE, GroupEvent.JOIN_COMPLETE): GroupState.COMPLETING_REBALANCE,
    (GroupState.PREPARING_REBALANCE, GroupEvent.JOIN_COMPLETE_EMPTY): GroupState.EMPTY,
    (GroupState.COMPLETING_REBALANCE, GroupEvent.ASSIGNMENT): GroupState.STABLE,
    **{(state, GroupEvent.UNLOAD): GroupState.DEAD for state in GroupState},
}


class InvalidTransition(RuntimeError):
    """The machine was asked for an event its state forbids (a programming error)."""

    def __init__(self, group_id: str, state: GroupState, event: GroupEvent) -> None:
        super().__init__(
            f"group {escape(group_id, quote=True)}: event '{event.value}' is not allowed in "
            f"state {state.value}"
        )
        self.group_id = group_id
        self.state = state
        self.event = event


def allows(state: GroupState, event: GroupEvent) -> bool:
    return (state, event) in _TRANSITIONS


def next_state(group_id: str, state: GroupState, event: GroupEvent) -> GroupState:
    """The state `event` moves a group in `state` to; InvalidTransition if none."""
    target = _TRANSITIONS.get((state, event))
    if target is None:
        raise InvalidTransition(group_id, state, event)
    return target
