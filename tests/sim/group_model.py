"""A deterministic simulation of the classic group state machine.

One seed is one run: a `random.Random(seed)` picks the coordinator's settings, the groups
and clients, then up to `STEPS_MAX` random operations (`group_operations.py`: joins with
and without member ids, static members and their replacement, SyncGroup, Heartbeat,
LeaveGroup, offset commit validation, group deletion, and virtual time moving on so that
sessions, join phases and sync deadlines expire). Then the clients behave until every
group settles and stays settled, and finally either every client goes away and the
timers run out, or the coordinator shuts down.

Rules of this file:

* Nothing is random but the seeded `rng`, nothing reads a clock (time is `VirtualClock`)
  and nothing iterates a set, so a seed always gives the same trace, in any process.
* After every operation and every batch of timers, `GroupChecker.after_step` runs (the
  machine's invariants, then the checks from outside); every answer is checked as it
  arrives. The first broken rule ends the run with a `SimulationFailure`.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from contextplane.coordinators.group_state import (
    GROUP_MAX_SIZE,
    CoordinatorConfig,
    GroupState,
    GroupStateMachine,
    JoinRequest,
    SyncRequest,
    Waiter,
)
from contextplane.protocol.error_codes import ErrorCode
from tests.sim.group_checks import (
    STATIC_PREFIX,
    GroupChecker,
    GroupView,
    SimulationFailure,
    Violation,
)
from tests.sim.group_clients import (
    PROTOCOL_CHOICES,
    REBALANCE_CHOICES_MS,
    SESSION_CHOICES_MS,
    TOPICS,
    Client,
    Request,
    protocols,
)
from tests.sim.group_operations import OPERATIONS, WEIGHTS

MachineFactory = Callable[[Callable[[], int], CoordinatorConfig], GroupStateMachine]

START_MS = 1_000_000
# Random operations per seed: short runs settle from many different states, long ones
# reach deep generations.
STEPS_MIN, STEPS_MAX = 20, 160
CLIENTS_PER_GROUP_MAX = 6
# Rounds of well-behaved clients (one heartbeat interval each) before a group must settle.
SETTLE_ROUNDS_MAX = 1_000
# Timer batches after every client left before every timer must have run out.
QUIESCE_BATCHES_MAX = 2_000


class VirtualClock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


class GroupSimulation:
    """One seed's run: its machine, clients, requests and trace."""

    def __init__(
        self,
        seed: int,
        machine_factory: MachineFactory = GroupStateMachine,
        steps: int | None = None,
    ) -> None:
        self.seed = seed
        self.rng = rng = random.Random(seed)
        self.clock = VirtualClock()
        suffixes = itertools.count(1)
        self.config = CoordinatorConfig(
            initial_rebalance_delay_ms=rng.choice((0, 0, 300, 3_000)),
            new_member_join_timeout_ms=rng.choice((300_000, 20_000)),
            max_group_size=rng.choice((GROUP_MAX_SIZE, GROUP_MAX_SIZE, 3)),
            member_id_suffix=lambda: f"m{next(suffixes)}",
        )
        self.machine = machine_factory(self.clock, self.config)
        self.checker = GroupChecker(START_MS)
        self.steps = rng.randint(STEPS_MIN, STEPS_MAX) if steps is None else steps
        self.group_ids = [f"g{n}" for n in range(rng.choice((1, 1, 2)))]
        self.clients: list[Client] = []
        self.requests: list[Request] = []
        self.trace: list[str] = []
        # How often each answer and event happened (to show what the run reached).
        self.seen: Counter[str] = Counter()
        self._step = 0
        # Every member id the machine has handed out, in order (a dict keeps the order).
        self.handed_out: dict[str, None] = {}
        self._names = itertools.count(1)
        self._instances = itertools.count(1)

    # -- the run ------------------------------------------------------------------------

    def run(self) -> list[str]:
        """The trace of the run; SimulationFailure at the first broken rule."""
        try:
            self.log(
                f"seed {self.seed}: initial delay {self.config.initial_rebalance_delay_ms} ms, "
                f"new member timeout {self.config.new_member_join_timeout_ms} ms, max size "
                f"{self.config.max_group_size}, groups {self.group_ids}"
            )
            for group_id in self.group_ids:
                for _ in range(self.rng.randint(1, 3)):
                    self.new_client(group_id)
            for step in range(1, self.steps + 1):
                self._step = step
                self.rng.choices(OPERATIONS, WEIGHTS)[0](self)
                self._after_step()
            self._step = self.steps + 1
            self._settle()
            if self.rng.random() < 0.25:
                self._shut_down()
            else:
                self._quiesce()
            self._check_answered(self.requests)
        except Violation as violation:
            raise SimulationFailure(self.seed, str(violation), self.trace) from violation
        except Exception as error:
            problem = f"the machine raised {error!r}"
            raise SimulationFailure(self.seed, problem, self.trace) from error
        return self.trace

    def log(self, text: str) -> None:
        self.trace.append(f"{self._step:>4} t={self.clock.now - START_MS:>8} {text}")

    def _after_step(self) -> None:
        self.checker.after_step(self.machine, self.clock.now)

    # -- clients ------------------------------------------------------------------------

    def new_client(self, group_id: str, instance_id: str | None = None) -> Client | None:
        """A new client process; `instance_id` given: it replaces that static member."""
        if sum(c.group_id == group_id for c in self.clients) >= CLIENTS_PER_GROUP_MAX:
            return None
        rng = self.rng
        if instance_id is None and rng.random() < 0.35:
            instance_id = f"{STATIC_PREFIX}{next(self._instances)}"
        session_ms = rng.choice(SESSION_CHOICES_MS)
        if rng.random() < 0.03:
            session_ms = 1_000  # below group.min.session.timeout.ms
        client = Client(
            name=f"c{next(self._names)}",
            group_id=group_id,
            instance_id=instance_id,
            api_version=rng.choice((5, 9) if instance_id else (3, 4, 9)),
            protocol_type="consumer" if rng.random() < 0.97 else "connect",
            protocols=self.random_protocols(),
            session_ms=session_ms,
            rebalance_ms=max(session_ms, rng.choice(REBALANCE_CHOICES_MS)),
        )
        self.clients.append(client)
        self.log(
            f"{client.name} starts in {group_id} (instance {instance_id}, v{client.api_version}, "
            f"session {session_ms} ms, rebalance {client.rebalance_ms} ms, "
            f"{[name for name, _ in client.protocols]})"
        )
        return client

    def random_protocols(self) -> list[tuple[str, bytes]]:
        topics = tuple(t for t in TOPICS if self.rng.random() < 0.6) or TOPICS[:1]
        return protocols(self.rng.choice(PROTOCOL_CHOICES), topics)

    def pick_client(self) -> Client | None:
        """Mostly a client that is still running; now and then a fenced or closed one
        whose old requests are still on the wire."""
        active = [c for c in self.clients if c.active]
        pool = active if active and self.rng.random() < 0.9 else self.clients
        return self.rng.choice(pool) if pool else None

    def _request(
        self, kind: str, client: Client, request: JoinRequest | SyncRequest, own: bool
    ) -> Waiter:
        """A waiter that records and checks the request's answers; the client acts on
        them only if the request is `own` (not a forged or misdirected copy)."""
        record = Request(len(self.requests) + 1, kind, client, request)
        self.requests.append(record)
        if own and kind == "join":
            client.last_join = record
        elif own:
            client.last_sync = record

        def answer(response: dict[str, Any]) -> None:
            if record.answers:
                raise Violation(
                    f"{record.label} was answered twice: {_code(record.answers[0])} then "
                    f"{_code(response)}"
                )
            record.answers.append(response)
            self.log(f"  -> {record.label} {_describe(kind, response)}")
            self.seen[f"{kind}:{_code(response)}"] += 1
            member_id = response.get("member_id")
            if member_id and member_id not in self.handed_out:
                self.handed_out[member_id] = None
            if response["error_code"] is ErrorCode.none and response.get("members"):
                self.seen["generation formed"] += 1
            if isinstance(request, JoinRequest):
                self.checker.on_join_response(
                    request, response, self.config.new_member_join_timeout_ms
                )
                if client.last_join is record:
                    client.on_join_answer(response)
            else:
                self.checker.on_sync_response(request, response)
                if client.last_sync is record:
                    client.on_sync_answer(request, response)

        return answer

    # -- requests -----------------------------------------------------------------------

    def join(self, client: Client, member_id: str, own: bool = True) -> None:
        request = JoinRequest(
            group_id=client.group_id,
            member_id=member_id,
            protocol_type=client.protocol_type,
            protocols=list(client.protocols),
            session_timeout_ms=client.session_ms,
            rebalance_timeout_ms=client.rebalance_ms,
            group_instance_id=client.instance_id,
            client_id=client.name,
            client_host="/127.0.0.1",
            api_version=client.api_version,
        )
        waiter = self._request("join", client, request, own)
        self.log(f"{client.name} JoinGroup {client.group_id} member '{member_id}'")
        self.machine.join(request, waiter)
        group = self.machine.group(client.group_id)
        if (
            client.instance_id is not None
            and not member_id
            and group is not None
            and group.state is GroupState.STABLE
            and client.last_join is not None
            and [_code(a) for a in client.last_join.answers] == ["none"]
        ):
            self.seen["static member kept its assignment without a rebalance"] += 1

    def sync(
        self, client: Client, generation: int, own: bool = True, member_id: str | None = None
    ) -> None:
        rng = self.rng
        member_id = client.member_id if member_id is None else member_id
        assignments: dict[str, bytes] = {}
        if client.leader and not client.skip_assignment:
            for assignee in client.members:
                nonce = rng.randrange(1_000_000)
                assignments[assignee] = f"{generation}/{assignee}/{nonce}".encode()
        elif rng.random() < 0.1:
            assignments = {member_id: b"from a follower, to be ignored"}
        protocol_name = client.protocol_name if rng.random() < 0.7 else None
        if rng.random() < 0.03:
            protocol_name = "bogus"
        request = SyncRequest(
            group_id=client.group_id,
            generation_id=generation,
            member_id=member_id,
            assignments=assignments,
            group_instance_id=client.instance_id,
            protocol_type=client.protocol_type if rng.random() < 0.7 else None,
            protocol_name=protocol_name,
        )
        waiter = self._request("sync", client, request, own)
        self.log(
            f"{client.name} SyncGroup {client.group_id} member '{member_id}' gen "
            f"{generation} ({len(assignments)} assignments)"
        )
        self.checker.sync_in_flight = request
        try:
            self.machine.sync(request, waiter)
        finally:
            self.checker.sync_in_flight = None

    def heartbeat(self, client: Client, generation: int, member_id: str | None = None) -> None:
        own = member_id is None or member_id == client.member_id
        group_id = client.group_id
        member_id = client.member_id if member_id is None else member_id
        view = GroupView.of(self.machine.group(group_id))
        code = self.machine.heartbeat(group_id, member_id, generation, client.instance_id)
        self.log(f"{client.name} Heartbeat member '{member_id}' gen {generation} -> {code.name}")
        if own:
            client.next_heartbeat_ms = self.clock.now + client.session_ms // 3
        self.seen[f"heartbeat:{code.name}"] += 1
        self.checker.on_heartbeat(view, group_id, member_id, generation, client.instance_id, code)
        if own and generation == client.generation:
            client.on_heartbeat_answer(code)

    def generation_of(self, client: Client) -> int:
        """The client's generation, now and then off by one (a stale or confused client)."""
        if self.rng.random() < 0.05:
            return client.generation + self.rng.choice((-1, 1))
        return client.generation

    def commit(
        self, group_id: str, member_id: str, instance_id: str | None, generation: int
    ) -> None:
        version = self.rng.randint(1, 9)
        view = GroupView.of(self.machine.group(group_id))
        answer = self.machine.validate_offset_commit(
            group_id, member_id, instance_id, generation, version
        )
        said = "accepted" if answer is None else answer.name
        self.seen[f"commit:{said}"] += 1
        self.log(
            f"OffsetCommit v{version} {group_id} member '{member_id}' gen {generation} -> {said}"
        )
        self.checker.on_commit(view, member_id, instance_id, generation, version, answer)

    def remove_group(self, group_id: str) -> None:
        self.machine.remove_group(group_id)
        self.checker.forget_group(group_id)
        self.log(f"group {group_id} removed")
        self.seen["group removed"] += 1
        if self.machine.group(group_id) is not None:
            raise Violation(f"group {group_id} is still there after its removal")

    # -- time ---------------------------------------------------------------------------

    def advance(self, ms: int) -> None:
        """Move the clock by `ms`, running each batch of timers when it falls due."""
        target = self.clock.now + ms
        while True:
            deadline = self.machine.next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.now = max(self.clock.now, deadline)
            self.checker.timers_at_ms = self.clock.now
            try:
                fired = self.machine.fire_due_timers()
            finally:
                self.checker.timers_at_ms = None
            self.log(f"{fired} timer(s) fired")
            self._after_step()
        self.clock.now = target

    # -- the end ------------------------------------------------------------------------

    def _settle(self) -> None:
        """Clients follow the protocol (rejoin, sync, heartbeat every second) until every
        group that has a running client is Stable with exactly those clients, each holding
        its assignment of the current generation."""
        self.log("settle: every running client follows the protocol")
        for _ in range(SETTLE_ROUNDS_MAX):
            if self._settled():
                break
            for client in [c for c in self.clients if c.active]:
                if self.natural_action(client, heartbeat_when_due=True):
                    self._after_step()
            self.advance(1_000)
        else:
            waiting = [
                r.label
                for c in self.clients
                if c.active
                for r in (c.last_join, c.last_sync)
                if r is not None and not r.answers
            ]
            groups = [
                f"{g.group_id} {g.state.value} gen {g.generation_id}"
                for g in self.machine.groups.values()
            ]
            raise Violation(
                f"the groups did not settle within {SETTLE_ROUNDS_MAX} s (never answered: "
                f"{waiting}; groups: {groups})"
            )
        self.seen["settled"] += 1
        settled = {c.group_id for c in self.clients if c.active}
        for group_id in sorted(settled):
            group = self.machine.groups[group_id]
            self.log(
                f"settled: {group_id} generation {group.generation_id}, leader "
                f"{group.leader_id}, members {list(group.members)}"
            )
        self._check_answered(r for r in self.requests if r.request.group_id in settled)
        self._stay_settled(sorted(settled))

    def _stay_settled(self, group_ids: list[str]) -> None:
        """Members that heartbeat (or commit offsets) every third of their session keep
        their generation: for longer than any session timeout, nothing changes."""
        before = {
            g: (self.machine.groups[g].generation_id, set(self.machine.groups[g].members))
            for g in group_ids
        }
        running = [c for c in self.clients if c.active]
        if not running:
            return
        end = self.clock.now + max(c.session_ms for c in running) + 1
        while self.clock.now < end:
            for client in running:
                if self.clock.now < client.next_heartbeat_ms:
                    continue
                if self.rng.random() < 0.3:
                    self.commit(
                        client.group_id, client.member_id, client.instance_id, client.generation
                    )
                    client.next_heartbeat_ms = self.clock.now + client.session_ms // 3
                else:
                    self.heartbeat(client, client.generation)
                self._after_step()
            due = min(c.next_heartbeat_ms for c in running)
            self.advance(max(1, min(due, end) - self.clock.now))
            for group_id, (generation, members) in before.items():
                group = self.machine.group(group_id)
                if (
                    group is None
                    or group.state is not GroupState.STABLE
                    or (group.generation_id, set(group.members)) != (generation, members)
                ):
                    raise Violation(
                        f"settled group {group_id} (generation {generation}) changed although "
                        "every member kept its session alive"
                    )

    def _settled(self) -> bool:
        for group_id in self.group_ids:
            running = [c for c in self.clients if c.group_id == group_id and c.active]
            if not running:
                continue
            group = self.machine.group(group_id)
            if group is None or group.state is not GroupState.STABLE:
                return False
            if set(group.members) != {c.member_id for c in running}:
                return False
            for client in running:
                if (
                    client.waiting()
                    or client.needs_join
                    or client.needs_sync
                    or client.synced_generation != group.generation_id
                ):
                    return False
        return True

    def natural_action(self, client: Client, heartbeat_when_due: bool = False) -> bool:
        """What a Kafka consumer does next (True if it sent something): rejoin, sync, or
        heartbeat (if `heartbeat_when_due`, only once a third of its session passed)."""
        if client.waiting():
            return False
        if client.needs_join:
            self.join(client, client.member_id)
        elif client.needs_sync:
            self.sync(client, client.generation)
        elif client.member_id and (
            not heartbeat_when_due or self.clock.now >= client.next_heartbeat_ms
        ):
            self.heartbeat(client, client.generation)
        else:
            return False
        return True

    def _quiesce(self) -> None:
        self.log("quiesce: every client goes away")
        for client in self.clients:
            client.stopped = True
        for _ in range(QUIESCE_BATCHES_MAX):
            deadline = self.machine.next_deadline()
            if deadline is None:
                break
            self.advance(max(0, deadline - self.clock.now))
        else:
            raise Violation("timers keep firing after every client went away")
        self.seen["quiesced"] += 1
        for group_id, group in self.machine.groups.items():
            if group.state is not GroupState.EMPTY or group.members or group.pending_join:
                raise Violation(
                    f"group {group_id} is {group.state.value} with members "
                    f"{[*group.members, *sorted(group.pending_join)]} after every client went away"
                )

    def _shut_down(self) -> None:
        self.log("the coordinator shuts down")
        self.seen["shutdown"] += 1
        self.machine.shutdown()
        self._after_step()
        if self.machine.groups or self.machine.next_deadline() is not None:
            raise Violation("groups or timers are left after shutdown")

    def _check_answered(self, requests: Iterable[Request]) -> None:
        for record in requests:
            if not record.answers:
                raise Violation(f"{record.label} was never answered")


def _code(response: dict[str, Any]) -> str:
    code = response["error_code"]
    return code.name if isinstance(code, ErrorCode) else repr(code)


def _describe(kind: str, response: dict[str, Any]) -> str:
    code = _code(response)
    if response["error_code"] is not ErrorCode.none:
        if kind == "join":
            return f"{code} member '{response['member_id']}'"
        return code
    if kind == "join":
        return (
            f"ok member {response['member_id']} gen {response['generation_id']} leader "
            f"{response['leader']} protocol {response['protocol_name']} members "
            f"{[m['member_id'] for m in response['members']]}"
        )
    return f"ok assignment {response['assignment']!r}"


def run_seed(seed: int, machine_factory: MachineFactory = GroupStateMachine) -> list[str]:
    return GroupSimulation(seed, machine_factory).run()


def first_failure(
    seeds: Iterable[int], machine_factory: MachineFactory = GroupStateMachine
) -> SimulationFailure | None:
    for seed in seeds:
        try:
            run_seed(seed, machine_factory)
        except SimulationFailure as failure:
            return failure
    return None
