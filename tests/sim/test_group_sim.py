"""Deterministic simulation of the classic group state machine (`coordinators/group_state/`).

Each seed drives the pure machine with random clients and virtual time (tests/sim/
group_model.py, group_operations.py) and checks, from outside the machine, after every
step (group_checks.py): the machine's invariants; generations never go back; one leader
and one member list per generation; every successful SyncGroup carries what that
generation's leader assigned; Heartbeat and OffsetCommit answers follow Kafka's rules; a
member id that left never succeeds again; a waiting member is not expired (only a new
member's JoinGroup, after the new member timeout); no waiter is answered twice. Then the
clients behave: the groups must settle with every request answered, and stay in their
generation while the members keep their sessions alive. The canaries prove that the
checkers catch a broken machine.

Run:
    pytest tests/sim/test_group_sim.py -q            # seeds 0..1999 (GROUP_SIM_SEEDS)
    SEED=1234 pytest tests/sim/test_group_sim.py -q  # one seed
    # a longer soak:
    GROUP_SIM_SEEDS=100000 pytest tests/sim/test_group_sim.py -q -k test_group_simulation

A failure names its seed, the broken rule and the tail of the seed's trace.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from contextplane.coordinators.group_state import (
    Group,
    GroupState,
    GroupStateMachine,
    Member,
    SyncRequest,
    Waiter,
    sync_error,
)
from contextplane.coordinators.group_state.rebalance import Rebalance
from contextplane.protocol.error_codes import ErrorCode
from tests.sim.group_model import GroupSimulation, MachineFactory, first_failure, run_seed

DEFAULT_SEEDS = 2_000
CHUNK = 100
# A canary must be caught within this many seeds.
CANARY_SEEDS = 300
REPOSITORY = Path(__file__).resolve().parents[2]


def _seed_chunks() -> list[range]:
    if os.environ.get("SEED"):
        seed = int(os.environ["SEED"])
        return [range(seed, seed + 1)]
    total = int(os.environ.get("GROUP_SIM_SEEDS", DEFAULT_SEEDS))
    return [range(start, min(start + CHUNK, total)) for start in range(0, total, CHUNK)]


@pytest.mark.parametrize(
    "seeds", _seed_chunks(), ids=lambda seeds: f"seeds-{seeds.start}-{seeds.stop - 1}"
)
def test_group_simulation(seeds: range) -> None:
    for seed in seeds:
        run_seed(seed)  # SimulationFailure names the seed and the trace tail


def test_same_seed_gives_the_same_trace() -> None:
    for seed in range(5):
        assert run_seed(seed) == run_seed(seed)
    assert run_seed(1) != run_seed(2)


def _digest(seeds: range) -> str:
    digest = hashlib.sha256()
    for seed in seeds:
        digest.update("\n".join(run_seed(seed)).encode())
    return digest.hexdigest()


def test_a_seed_gives_the_same_trace_in_another_process() -> None:
    """`SEED=n` reproduces a failure in a new process, whatever its hash seed."""
    script = (
        "from tests.sim.test_group_sim import _digest; "
        "import logging; logging.disable(logging.CRITICAL); print(_digest(range(8)))"
    )
    path = f"{REPOSITORY}{os.pathsep}{REPOSITORY / 'src'}"
    for hash_seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": path}
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPOSITORY,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert out.stdout.strip() == _digest(range(8))


def test_the_simulation_reaches_the_interesting_paths() -> None:
    """A simulation that never fences, expires or rebalances would pass without testing
    anything: the first seeds must reach every answer the checkers reason about."""
    seen: dict[str, int] = {}
    for seed in range(100):
        simulation = GroupSimulation(seed)
        simulation.run()
        for key, count in simulation.seen.items():
            seen[key] = seen.get(key, 0) + count
    wanted = [
        "join:none",
        "join:member_id_required",
        "join:fenced_instance_id",
        "join:unknown_member_id",
        "join:rebalance_in_progress",
        "join:group_max_size_reached",
        "join:inconsistent_group_protocol",
        "sync:none",
        "sync:rebalance_in_progress",
        "sync:illegal_generation",
        "sync:fenced_instance_id",
        "heartbeat:none",
        "heartbeat:rebalance_in_progress",
        "heartbeat:illegal_generation",
        "commit:accepted",
        "commit:rebalance_in_progress",
        "static member kept its assignment without a rebalance",
        "generation formed",
        "group removed",
        "settled",
        "shutdown",
        "quiesced",
    ]
    assert [key for key in wanted if not seen.get(key)] == []


# -- canaries: broken machines the checkers must catch ------------------------------------


class AnswersSyncTwice(GroupStateMachine):
    """Answers a SyncGroup in Stable, then answers it again."""

    def sync(self, request: SyncRequest, waiter: Waiter) -> None:
        group = self.group(request.group_id)
        stable = group is not None and group.state is GroupState.STABLE
        super().sync(request, waiter)
        if stable:
            waiter(sync_error(ErrorCode.rebalance_in_progress))


class HidesRebalances(GroupStateMachine):
    """Tells a member its heartbeat is fine while its group is rebalancing."""

    def heartbeat(
        self,
        group_id: str,
        member_id: str,
        generation_id: int,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        code = super().heartbeat(group_id, member_id, generation_id, group_instance_id)
        return ErrorCode.none if code is ErrorCode.rebalance_in_progress else code


def _skip_generation_bump(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new generation with members keeps the previous generation's number."""
    original = Group.init_next_generation

    def init_next_generation(group: Group, now_ms: int) -> None:
        previous = group.generation_id
        original(group, now_ms)
        if previous > 0 and group.members:
            group.generation_id = previous

    monkeypatch.setattr(Group, "init_next_generation", init_next_generation)


def _drop_parked_syncs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebalance from CompletingRebalance forgets parked SyncGroups without answering."""

    def reset_and_propagate_assignment(self: Rebalance, group: Group, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
            member.sync_waiter = None

    monkeypatch.setattr(Rebalance, "reset_and_propagate_assignment", reset_and_propagate_assignment)


def _expire_waiting_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """A member parked in JoinGroup or SyncGroup (it cannot heartbeat) loses its session."""
    monkeypatch.setattr(Member, "has_satisfied_heartbeat", lambda member: False)


def _no_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    pass


# (the machine, a patch that breaks it, words the checkers' complaint must contain)
Canary = tuple[MachineFactory, Callable[[pytest.MonkeyPatch], None], str]

CANARIES: dict[str, Canary] = {
    "answers-a-waiter-twice": (AnswersSyncTwice, _no_patch, "answered twice"),
    "skips-a-generation-bump": (GroupStateMachine, _skip_generation_bump, "generation"),
    "drops-parked-syncs": (GroupStateMachine, _drop_parked_syncs, "never answered"),
    "hides-rebalances-from-heartbeats": (HidesRebalances, _no_patch, "Kafka's rules say"),
    "expires-waiting-members": (GroupStateMachine, _expire_waiting_members, "expired by a timer"),
}


@pytest.mark.parametrize("name", list(CANARIES))
def test_the_checkers_catch_a_broken_machine(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    factory, patch, symptom = CANARIES[name]
    patch(monkeypatch)
    failure = first_failure(range(CANARY_SEEDS), factory)
    assert failure is not None, f"canary {name} passed {CANARY_SEEDS} seeds"
    assert symptom in failure.problem
    assert "machine invariant" not in failure.problem  # caught from outside the machine
    message = str(failure)
    assert f"seed {failure.seed}:" in message and f"SEED={failure.seed}" in message
    assert "trace entries" in message
