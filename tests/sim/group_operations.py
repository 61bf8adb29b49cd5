"""The random operations of the group simulation, and how often each is picked.

Rules of this file: an operation is one step of a seed's run. It may call the machine
several times (a leave of two members, a bad JoinGroup and SyncGroup) but checks what it
can see at once; everything else is checked by the simulation after the step. An
operation that finds nothing to do (no static member to replace) does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from contextplane.coordinators.group_state import GroupState
from contextplane.protocol.error_codes import ErrorCode
from tests.sim.group_checks import Violation
from tests.sim.group_clients import REBALANCE_CHOICES_MS, SESSION_CHOICES_MS

if TYPE_CHECKING:
    from tests.sim.group_model import GroupSimulation

# A group no client uses: only administrative offset commits and deletions reach it.
ADMIN_GROUP = "gx"
# Jumps of virtual time past any session timeout, and past any rebalance timeout.
LONG_JUMPS_MS = (max(SESSION_CHOICES_MS) + 1, max(REBALANCE_CHOICES_MS) + 1)


def next_move(sim: GroupSimulation) -> None:
    """A client does what a Kafka consumer would do next."""
    client = sim.pick_client()
    if client is not None:
        sim.natural_action(client)


def join(sim: GroupSimulation) -> None:
    client = sim.pick_client()
    if client is None:
        return
    if sim.rng.random() < 0.03:
        sim.join(client, f"ghost-{sim.rng.randrange(1000)}", own=False)
    else:
        sim.join(client, client.member_id)


def stale_request(sim: GroupSimulation) -> None:
    """A request with a member id the client does not hold: an id that was handed out
    earlier in this run (perhaps to another client, perhaps long gone)."""
    client = sim.pick_client()
    if client is None or not sim.handed_out:
        return
    member_id = sim.rng.choice(list(sim.handed_out))
    if member_id == client.member_id:
        return
    kind = sim.rng.randrange(3)
    if kind == 0:
        sim.join(client, member_id, own=False)
    elif kind == 1:
        sim.sync(client, sim.generation_of(client), own=False, member_id=member_id)
    else:
        sim.heartbeat(client, sim.generation_of(client), member_id=member_id)


def sync(sim: GroupSimulation) -> None:
    client = sim.pick_client()
    if client is not None:
        sim.sync(client, sim.generation_of(client))


def heartbeat(sim: GroupSimulation) -> None:
    client = sim.pick_client()
    if client is not None:
        sim.heartbeat(client, sim.generation_of(client))


def commit(sim: GroupSimulation) -> None:
    client = sim.pick_client()
    if client is None or sim.rng.random() < 0.2:
        # An administrative commit: no member, no generation.
        sim.commit(sim.rng.choice([*sim.group_ids, ADMIN_GROUP]), "", None, -1)
    else:
        sim.commit(
            client.group_id,
            client.member_id,
            client.instance_id,
            sim.generation_of(client),
        )


def leave(sim: GroupSimulation) -> None:
    client = sim.pick_client()
    if client is None:
        return
    leaving = [client]
    others = [c for c in sim.clients if c.group_id == client.group_id and c is not client]
    if others and sim.rng.random() < 0.3:
        leaving.append(sim.rng.choice(others))
    members = [(c.member_id, c.instance_id) for c in leaving]
    code, entries = sim.machine.leave(client.group_id, members)
    sim.log(f"LeaveGroup {client.group_id} {members} -> {code.name} {_codes(entries)}")
    if code is not ErrorCode.none or len(entries) != len(members):
        raise Violation(f"LeaveGroup answered {code.name} with {len(entries)} entries")
    _check_left(sim, client.group_id, entries)
    for leaver in leaving:
        leaver.forget_membership()
        leaver.stopped = True


def admin_leave(sim: GroupSimulation) -> None:
    static = [c for c in sim.clients if c.instance_id is not None]
    if not static:
        return
    target = sim.rng.choice(static)
    group = sim.machine.group(target.group_id)
    known = group is not None and target.instance_id in group.static_members
    code, entries = sim.machine.leave(target.group_id, [("", target.instance_id)])
    sim.log(f"admin removes {target.instance_id} from {target.group_id} -> {_codes(entries)}")
    expected = ErrorCode.none if known else ErrorCode.unknown_member_id
    if code is not ErrorCode.none or [e["error_code"] for e in entries] != [expected]:
        raise Violation(f"removing static member {target.instance_id} answered {entries}")
    _check_left(sim, target.group_id, entries)


def _check_left(sim: GroupSimulation, group_id: str, entries: list[dict[str, Any]]) -> None:
    group = sim.machine.group(group_id)
    for entry in entries:
        if entry["error_code"] is not ErrorCode.none or group is None:
            continue
        if entry["member_id"] in group.members or (
            entry["group_instance_id"] in group.static_members
        ):
            raise Violation(f"LeaveGroup said {entry} left, but it is still a member")


def replace_static(sim: GroupSimulation) -> None:
    static = [c for c in sim.clients if c.instance_id is not None]
    if static:
        old = sim.rng.choice(static)
        sim.new_client(old.group_id, instance_id=old.instance_id)


def new_client(sim: GroupSimulation) -> None:
    sim.new_client(sim.rng.choice(sim.group_ids))


def restart(sim: GroupSimulation) -> None:
    gone = [c for c in sim.clients if not c.active]
    if gone:
        client = sim.rng.choice(gone)
        client.restart()
        sim.log(f"{client.name} restarts")


def change_subscription(sim: GroupSimulation) -> None:
    client = sim.pick_client()
    if client is not None:
        client.protocols = sim.random_protocols()
        client.needs_join = True
        sim.log(f"{client.name} subscribes anew: {[n for n, _ in client.protocols]}")


def advance_a_little(sim: GroupSimulation) -> None:
    sim.advance(sim.rng.randint(1, 2_500))


def advance_a_lot(sim: GroupSimulation) -> None:
    config = sim.config
    sim.advance(
        sim.rng.choice(
            (
                *LONG_JUMPS_MS,
                config.initial_rebalance_delay_ms + 1,
                config.new_member_join_timeout_ms + 1,
            )
        )
    )


def delete_group(sim: GroupSimulation) -> None:
    group_id = sim.rng.choice([*sim.group_ids, ADMIN_GROUP])
    has_offsets = sim.rng.random() < 0.5
    group = sim.machine.group(group_id)
    error = sim.machine.validate_delete_group(group_id, has_offsets)
    sim.log(f"DeleteGroups {group_id} -> {'allowed' if error is None else error.name}")
    if error is None and group is not None and group.state is not GroupState.EMPTY:
        raise Violation(f"deleting group {group_id} in state {group.state.value} was allowed")
    if error is None:
        sim.remove_group(group_id)


def cleanup(sim: GroupSimulation) -> None:
    for group_id in sim.machine.removable_empty_groups():
        group = sim.machine.groups[group_id]
        if group.state is not GroupState.EMPTY or group.members or group.pending_join:
            raise Violation(f"cleanup offered group {group_id}, which is in use")
        sim.remove_group(group_id)


def bad_request(sim: GroupSimulation) -> None:
    """Requests the machine must refuse at once: no group id, or a member id for a
    group the coordinator does not have."""
    client = sim.pick_client()
    if client is None:
        return
    group_id = client.group_id
    try:
        client.group_id = sim.rng.choice(("", "never-created"))
        sim.join(client, client.member_id or "ghost-1", own=False)
        sim.sync(client, client.generation, own=False)
    finally:
        client.group_id = group_id
    join, sync = sim.requests[-2:]
    if not join.request.group_id:
        expected = [ErrorCode.invalid_group_id, ErrorCode.invalid_group_id]
    elif sim.config.session_timeout_ms_min <= client.session_ms:
        expected = [ErrorCode.unknown_member_id, ErrorCode.unknown_member_id]
    else:
        expected = [ErrorCode.invalid_session_timeout, ErrorCode.unknown_member_id]
    for record, code in zip((join, sync), expected, strict=True):
        answers = [a["error_code"] for a in record.answers]
        if answers != [code]:
            raise Violation(f"{record.label} should be refused at once with {code.name}")


def _codes(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["error_code"].name for entry in entries]


Operation = Callable[["GroupSimulation"], None]

# (weight, operation): how often each random operation is picked.
_WEIGHTED: tuple[tuple[float, Operation], ...] = (
    (12, next_move),
    (5, join),
    (4, sync),
    (4, heartbeat),
    (3, commit),
    (1, leave),
    (0.5, admin_leave),
    (1, replace_static),
    (1, new_client),
    (1, restart),
    (0.5, change_subscription),
    (7, advance_a_little),
    (1.5, advance_a_lot),
    (0.3, delete_group),
    (0.3, cleanup),
    (0.3, bad_request),
    (1, stale_request),
)
OPERATIONS = [operation for _, operation in _WEIGHTED]
WEIGHTS = [weight for weight, _ in _WEIGHTED]
