"""What the group simulation checks, from outside the machine.

Rules of this file:

* The checkers see only what a client or an operator could see: the responses the machine
  gives, and the groups' public fields (state, generation, members) between two calls.
  They never call into the machine's phases and share none of its code, so a broken
  machine cannot also break its checker.
* A broken rule raises `Violation` with one sentence; the simulation turns it into a
  `SimulationFailure` that names the seed and the trace tail.
* Heartbeat and offset-commit answers are compared with Kafka's rules restated here (the
  order of checks of `GroupMetadataManager` / `ClassicGroup.validateOffsetCommit`).
* Member ids are never reused (the simulation's id suffix is a counter), so a member id
  that left a group is gone for good; a static member's identity is its instance id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contextplane.coordinators.group_state import (
    Group,
    GroupState,
    GroupStateMachine,
    JoinRequest,
    SyncRequest,
    check_invariants,
)
from contextplane.protocol.error_codes import ErrorCode

# Instance ids the simulation hands out start with this; client ids never do.
STATIC_PREFIX = "s"
TRACE_TAIL = 40
# States in which a group has a generation that its members were told about.
_FORMED = (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)


class Violation(AssertionError):
    """A rule the machine broke (one sentence)."""


class SimulationFailure(AssertionError):
    """A seed failed: the broken rule, the trace tail and how to run the seed again."""

    def __init__(self, seed: int, problem: str, trace: list[str]) -> None:
        tail = trace[-TRACE_TAIL:]
        super().__init__(
            f"group simulation seed {seed}: {problem}\n"
            f"reproduce: SEED={seed} pytest tests/sim/test_group_sim.py -q\n"
            f"last {len(tail)} of {len(trace)} trace entries:\n  " + "\n  ".join(tail)
        )
        self.seed = seed
        self.problem = problem


def identity(member_id: str) -> str:
    """Who a member id stands for: a static member's instance id (the part before its
    last '-'), else the member id itself."""
    if member_id.startswith(STATIC_PREFIX):
        return member_id.rsplit("-", 1)[0]
    return member_id


@dataclass(frozen=True, slots=True)
class GroupView:
    """What the group looked like just before a request (None fields: no such group)."""

    state: GroupState | None
    generation: int
    members: frozenset[str]
    static_members: Mapping[str, str]

    @staticmethod
    def of(group: Group | None) -> GroupView:
        if group is None:
            return GroupView(None, -1, frozenset(), {})
        return GroupView(
            group.state, group.generation_id, frozenset(group.members), dict(group.static_members)
        )


def _validate_member(view: GroupView, member_id: str, instance_id: str | None) -> ErrorCode | None:
    if instance_id is not None:
        known = view.static_members.get(instance_id)
        if known is None:
            return ErrorCode.unknown_member_id
        if known != member_id:
            return ErrorCode.fenced_instance_id
    if member_id not in view.members:
        return ErrorCode.unknown_member_id
    return None


def expected_heartbeat(
    view: GroupView, group_id: str, member_id: str, generation: int, instance_id: str | None
) -> ErrorCode:
    if not group_id:
        return ErrorCode.invalid_group_id
    if view.state is None:
        return ErrorCode.unknown_member_id
    if view.state is GroupState.DEAD:
        return ErrorCode.coordinator_not_available
    error = _validate_member(view, member_id, instance_id)
    if error is not None:
        return error
    if generation != view.generation:
        return ErrorCode.illegal_generation
    if view.state is GroupState.EMPTY:
        return ErrorCode.unknown_member_id
    if view.state is GroupState.PREPARING_REBALANCE:
        return ErrorCode.rebalance_in_progress
    return ErrorCode.none


def expected_commit(
    view: GroupView, member_id: str, instance_id: str | None, generation: int, api_version: int
) -> ErrorCode | None:
    if view.state is None:
        if generation >= 0:
            return (
                ErrorCode.group_id_not_found if api_version >= 9 else ErrorCode.illegal_generation
            )
        view = GroupView(GroupState.EMPTY, 0, frozenset(), {})
    if view.state is GroupState.DEAD:
        return ErrorCode.coordinator_not_available
    if generation < 0 and view.state is GroupState.EMPTY:
        return None
    if generation >= 0 or member_id or instance_id is not None:
        error = _validate_member(view, member_id, instance_id)
        if error is not None:
            return error
        if generation != view.generation:
            return ErrorCode.illegal_generation
    elif view.state is not GroupState.EMPTY:
        return ErrorCode.unknown_member_id
    if view.state is GroupState.COMPLETING_REBALANCE:
        return ErrorCode.rebalance_in_progress
    return None


@dataclass
class Generation:
    """What the responses have said about one generation of one group."""

    leader: str | None = None  # identity
    members: frozenset[str] | None = None  # identities, from the leader's member list
    protocol_name: str | None = None
    # identity -> bytes, from the leader's SyncGroup that the generation's assignment
    # came from.
    assignment: dict[str, bytes] | None = None


class GroupChecker:
    """Checks every response as it arrives and the groups after every step."""

    def __init__(self, start_ms: int) -> None:
        self._generations: dict[str, dict[int, Generation]] = {}
        self._last_generation: dict[str, int] = {}
        # member id -> group id, for ids seen in a group (as member or pending member).
        self._seen: dict[str, str] = {}
        self._gone: set[str] = set()
        # Successful JoinGroup responses of this step: (group, generation, member id).
        self._joined: list[tuple[str, int, str]] = []
        self._last_member_generation: dict[str, int] = {}
        # The SyncGroup being handled now (responses may arrive inside its call).
        self.sync_in_flight: SyncRequest | None = None
        # The time while the machine runs its timers (None: a request is being handled).
        self.timers_at_ms: int | None = None
        # Steps are numbered; per group, the last step (and its time) after which it was
        # not in a join phase: its current join phase began later.
        self._step = 0
        self._calm: dict[str, tuple[int, int]] = {}
        self._last_step_ms = start_ms
        # member id -> the first step after which it was a member.
        self._member_since: dict[str, int] = {}
        # Member ids whose session a heartbeat or an offset commit restarted.
        self._restarted: set[str] = set()

    # -- groups come and go -------------------------------------------------------------

    def forget_group(self, group_id: str) -> None:
        """The group was deleted: a group of that id starts again at generation 0."""
        self._generations.pop(group_id, None)
        self._last_generation.pop(group_id, None)

    def _generation(self, group_id: str, generation: int) -> Generation:
        return self._generations.setdefault(group_id, {}).setdefault(generation, Generation())

    def _check_not_gone(self, kind: str, member_id: str) -> None:
        if member_id in self._gone:
            raise Violation(f"{kind} of member {member_id}, which had left the group, succeeded")

    # -- responses ----------------------------------------------------------------------

    def on_join_response(
        self, request: JoinRequest, response: dict[str, Any], new_member_timeout_ms: int
    ) -> None:
        error = response["error_code"]
        if not isinstance(error, ErrorCode):
            raise Violation(f"JoinGroup answered with a non-error code {error!r}")
        if error is ErrorCode.unknown_member_id and self.timers_at_ms is not None:
            self._check_join_expiry(request, self.timers_at_ms, new_member_timeout_ms)
        if error is not ErrorCode.none:
            if response["generation_id"] != -1 or response["members"]:
                raise Violation(f"JoinGroup error {error.name} carries a generation or members")
            return
        member_id = response["member_id"]
        generation = response["generation_id"]
        self._check_not_gone("JoinGroup", member_id)
        if not member_id or generation < 1:
            raise Violation(f"JoinGroup success with member id {member_id!r} gen {generation}")
        if response["protocol_type"] != request.protocol_type:
            raise Violation(f"JoinGroup success with protocol type {response['protocol_type']!r}")
        name = response["protocol_name"]
        if name not in [n for n, _ in request.protocols]:
            raise Violation(f"generation {generation} selected {name!r}, which {member_id} lacks")
        previous = self._last_member_generation.get(member_id, 0)
        if generation < previous:
            raise Violation(f"{member_id} was given generation {generation} after {previous}")
        self._last_member_generation[member_id] = generation
        record = self._generation(request.group_id, generation)
        self._same(record, "protocol_name", name, f"generation {generation}'s protocol")
        leader = identity(response["leader"])
        self._same(record, "leader", leader, f"generation {generation}'s leader")
        members = response["members"]
        is_leader = response["leader"] == member_id
        if bool(members) != is_leader:
            raise Violation(
                f"{member_id} (leader {response['leader']}) of generation {generation} got "
                f"{len(members)} members: only the leader gets the member list"
            )
        if members:
            listed = frozenset(identity(m["member_id"]) for m in members)
            if len(listed) != len(members):
                raise Violation(f"generation {generation}'s member list repeats a member")
            self._same(record, "members", listed, f"generation {generation}'s members")
        self._joined.append((request.group_id, generation, member_id))

    def _check_join_expiry(self, request: JoinRequest, now_ms: int, timeout_ms: int) -> None:
        """A member waiting for its JoinGroup response cannot heartbeat, so it does not
        expire, unless it is new in this join phase: then it is bounded by the new member
        timeout, or by its session once a heartbeat or commit restarted that."""
        calm_step, calm_ms = self._calm.get(request.group_id, (self._step, self._last_step_ms))
        member_id = request.member_id
        new = not member_id or self._member_since.get(member_id, self._step + 1) > calm_step
        if new and (now_ms - calm_ms >= timeout_ms or member_id in self._restarted):
            return
        raise Violation(
            f"a waiting JoinGroup of {'a new member' if new else member_id} was expired by a "
            f"timer, at most {now_ms - calm_ms} ms into the join phase"
        )

    def on_sync_response(self, request: SyncRequest, response: dict[str, Any]) -> None:
        error = response["error_code"]
        if not isinstance(error, ErrorCode):
            raise Violation(f"SyncGroup answered with a non-error code {error!r}")
        if error is ErrorCode.unknown_member_id and self.timers_at_ms is not None:
            raise Violation(
                f"a waiting SyncGroup of {request.member_id} was expired by a timer: a member "
                "waiting for its assignment cannot heartbeat"
            )
        if error is not ErrorCode.none:
            if response["assignment"]:
                raise Violation(f"SyncGroup error {error.name} carries an assignment")
            return
        member_id, generation = request.member_id, request.generation_id
        self._check_not_gone("SyncGroup", member_id)
        record = self._generation(request.group_id, generation)
        if record.leader is None or record.members is None:
            raise Violation(f"SyncGroup success in generation {generation}, which never formed")
        if identity(member_id) not in record.members:
            raise Violation(f"{member_id} synced in generation {generation} without being in it")
        if record.protocol_name != response["protocol_name"]:
            raise Violation(
                f"SyncGroup says protocol {response['protocol_name']!r}, generation "
                f"{generation} chose {record.protocol_name!r}"
            )
        if record.assignment is None:
            source = self.sync_in_flight
            if (
                source is None
                or source.group_id != request.group_id
                or source.generation_id != generation
                or identity(source.member_id) != record.leader
            ):
                raise Violation(
                    f"{member_id} got an assignment of generation {generation} before its "
                    f"leader {record.leader} sent SyncGroup"
                )
            record.assignment = {identity(mid): data for mid, data in source.assignments.items()}
        expected = record.assignment.get(identity(member_id), b"")
        if response["assignment"] != expected:
            raise Violation(
                f"{member_id} got assignment {response['assignment']!r} in generation "
                f"{generation}; its leader assigned {expected!r}"
            )

    def on_heartbeat(
        self,
        view: GroupView,
        group_id: str,
        member_id: str,
        generation: int,
        instance_id: str | None,
        answer: ErrorCode,
    ) -> None:
        expected = expected_heartbeat(view, group_id, member_id, generation, instance_id)
        if answer is not expected:
            raise Violation(f"Heartbeat answered {answer.name}, Kafka's rules say {expected.name}")
        if answer in (ErrorCode.none, ErrorCode.rebalance_in_progress):
            self._restarted.add(member_id)
        if answer is ErrorCode.none:
            self._check_not_gone("Heartbeat", member_id)

    def on_commit(
        self,
        view: GroupView,
        member_id: str,
        instance_id: str | None,
        generation: int,
        api_version: int,
        answer: ErrorCode | None,
    ) -> None:
        expected = expected_commit(view, member_id, instance_id, generation, api_version)
        if answer is not expected:
            said = "accepted" if answer is None else answer.name
            rule = "accept" if expected is None else expected.name
            raise Violation(f"OffsetCommit validation {said}, Kafka's rules say {rule}")
        if answer is None and member_id:
            self._restarted.add(member_id)

    # -- after every step ---------------------------------------------------------------

    def after_step(self, machine: GroupStateMachine, now_ms: int) -> None:
        broken = check_invariants(machine.groups, machine.timers)
        if broken:
            raise Violation("machine invariant broken: " + "; ".join(broken))
        self._note_join_phases(machine, now_ms)
        present: set[str] = set()
        for group_id, group in machine.groups.items():
            last = self._last_generation.get(group_id, 0)
            if group.generation_id < last:
                raise Violation(
                    f"group {group_id} went back from generation {last} to {group.generation_id}"
                )
            self._last_generation[group_id] = group.generation_id
            if group.state in _FORMED:
                self._check_formed(group_id, group)
            for member_id in (*group.members, *sorted(group.pending_join)):
                present.add(member_id)
                if member_id in self._gone:
                    raise Violation(f"member id {member_id} came back to group {group_id}")
                self._seen[member_id] = group_id
        for member_id in [m for m in self._seen if m not in present]:
            del self._seen[member_id]
            self._gone.add(member_id)
        self._check_joined(machine)

    def _note_join_phases(self, machine: GroupStateMachine, now_ms: int) -> None:
        """When each group was last seen outside a join phase (a group first seen in one
        was created after the previous step), and since when each member is one."""
        self._step += 1
        calm = {}
        for group_id, group in machine.groups.items():
            if group.state is not GroupState.PREPARING_REBALANCE:
                calm[group_id] = (self._step, now_ms)
            else:
                calm[group_id] = self._calm.get(group_id, (self._step - 1, self._last_step_ms))
            for member_id in group.members:
                self._member_since.setdefault(member_id, self._step)
        self._calm = calm
        self._last_step_ms = now_ms

    def _check_formed(self, group_id: str, group: Group) -> None:
        """A group in CompletingRebalance or Stable has exactly the members and the leader
        that its generation's JoinGroup responses announced."""
        generation = group.generation_id
        record = self._generations.get(group_id, {}).get(generation)
        if record is None or record.members is None:
            raise Violation(f"group {group_id} is in generation {generation}, which nobody joined")
        members = frozenset(identity(m) for m in group.members)
        if members != record.members:
            raise Violation(
                f"group {group_id} generation {generation} has members {sorted(members)}; its "
                f"leader was given {sorted(record.members)}"
            )
        if group.leader_id is None or identity(group.leader_id) != record.leader:
            raise Violation(
                f"group {group_id} generation {generation} is led by {group.leader_id}; its "
                f"members were told {record.leader}"
            )

    def _check_joined(self, machine: GroupStateMachine) -> None:
        """Whoever got a generation's JoinGroup response is in its leader's member list,
        and a generation is never ahead of its group."""
        joined, self._joined = self._joined, []
        for group_id, generation, member_id in joined:
            group = machine.group(group_id)
            if group is not None and generation > group.generation_id:
                raise Violation(
                    f"{member_id} got generation {generation} of a group at {group.generation_id}"
                )
            record = self._generation(group_id, generation)
            if record.members is None:
                raise Violation(f"generation {generation} answered JoinGroup without a leader")
            if identity(member_id) not in record.members:
                raise Violation(
                    f"{member_id} joined generation {generation}, whose leader lists "
                    f"{sorted(record.members)}"
                )

    @staticmethod
    def _same(record: Generation, attribute: str, value: Any, what: str) -> None:
        known = getattr(record, attribute)
        if known is None:
            setattr(record, attribute, value)
        elif known != value:
            shown = sorted(value) if isinstance(value, frozenset) else value
            was = sorted(known) if isinstance(known, frozenset) else known
            raise Violation(f"{what} was {was!r}, now {shown!r}")
