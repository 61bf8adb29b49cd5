"""A deterministic simulation of the classic group state machine.

One seed is one run: a `random.Random(seed)` picks the coordinator's settings, the groups
and clients, then up to `STEPS_MAX` random operations (joins with and without member ids, static
members and their replacement, SyncGroup, Heartbeat, LeaveGroup, offset commit
validation, group deletion, and virtual time moving on so that sessions, join phases and
sync deadlines expire). Then the clients behave until every group settles, and finally
either every client goes away and the timers run out, or the coordinator shuts down.

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
    TOPICS,
    Client,
    Request,
    protocols,
)

MachineFactory = Callable[[Callable[[], int], CoordinatorConfig], GroupStateMachine]

START_MS = 1_000_000
# Random operations per seed: short runs settle from many different states, long ones
# reach deep generations.
STEPS_MIN, STEPS_MAX = 20, 160
CLIENTS_PER_GROUP_MAX = 6
SESSION_CHOICES_MS = (6_000, 10_000, 30_000)
REBALANCE_CHOICES_MS = (6_000, 20_000, 60_000)
# Rounds of well-behaved clients (one heartbeat interval each) before a group must settle.
SETTLE_ROUNDS_MAX = 1_000
# How often settled clients heartbeat (below the smallest session timeout they may have).
STABLE_HEARTBEAT_INTERVAL_MS = 2_000
# Timer batches after every client left before every timer must have run out.
QUIESCE_BATCHES_MAX = 2_000
# A group no client uses: only administrative offset commits reach it.
ADMIN_GROUP = "gx"


class VirtualClock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


class GroupSimulation:
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
        self.checker = GroupChecker()
        self.steps = rng.randint(STEPS_MIN, STEPS_MAX) if steps is None else steps
        self.group_ids = [f"g{n}" for n in range(rng.choice((1, 1, 2)))]
        self.clients: list[Client] = []
        self.requests: list[Request] = []
        self.trace: list[str] = []
        # How often each answer and event happened (to show what the run reached).
        self.seen: Counter[str] = Counter()
        self._step = 0
        # Every member id the machine has handed out, in order (a dict keeps the order).
        self._handed_out: dict[str, None] = {}
        self._names = itertools.count(1)
        self._instances = itertools.count(1)
        # (weight, operation): how often each random operation is picked.
        weighted: list[tuple[float, Callable[[], None]]] = [
            (12, self._op_next_move),
            (5, self._op_join),
            (4, self._op_sync),
            (4, self._op_heartbeat),
            (3, self._op_commit),
            (1, self._op_leave),
            (0.5, self._op_admin_leave),
            (1, self._op_replace_static),
            (1, self._op_new_client),
            (1, self._op_restart),
            (0.5, self._op_change_subscription),
            (7, self._op_advance_a_little),
            (1.5, self._op_advance_a_lot),
            (0.3, self._op_delete_group),
            (0.3, self._op_cleanup),
            (0.3, self._op_bad_request),
            (1, self._op_stale_request),
        ]
        self._weights = [weight for weight, _ in weighted]
        self._operations = [operation for _, operation in weighted]

    # -- the run ------------------------------------------------------------------------

    def run(self) -> list[str]:
        """The trace of the run; SimulationFailure at the first broken rule."""
        try:
            self._log(
                f"seed {self.seed}: initial delay {self.config.initial_rebalance_delay_ms} ms, "
                f"new member timeout {self.config.new_member_join_timeout_ms} ms, max size "
                f"{self.config.max_group_size}, groups {self.group_ids}"
            )
            for group_id in self.group_ids:
                for _ in range(self.rng.randint(1, 3)):
                    self._new_client(group_id)
            for step in range(1, self.steps + 1):
                self._step = step
                self.rng.choices(self._operations, self._weights)[0]()
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

    def _log(self, text: str) -> None:
        self.trace.append(f"{self._step:>4} t={self.clock.now - START_MS:>8} {text}")

    def _after_step(self) -> None:
        self.checker.after_step(self.machine)

    # -- clients ------------------------------------------------------------------------

    def _new_client(
        self, group_id: str, instance_id: str | None = None, static: bool | None = None
    ) -> Client | None:
        if sum(c.group_id == group_id for c in self.clients) >= CLIENTS_PER_GROUP_MAX:
            return None
        rng = self.rng
        if instance_id is None and (rng.random() < 0.35 if static is None else static):
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
            protocols=self._random_protocols(),
            session_ms=session_ms,
            rebalance_ms=max(session_ms, rng.choice(REBALANCE_CHOICES_MS)),
        )
        self.clients.append(client)
        self._log(
            f"{client.name} starts in {group_id} (instance {instance_id}, v{client.api_version}, "
            f"session {session_ms} ms, rebalance {client.rebalance_ms} ms, "
            f"{[name for name, _ in client.protocols]})"
        )
        return client

    def _random_protocols(self) -> list[tuple[str, bytes]]:
        topics = tuple(t for t in TOPICS if self.rng.random() < 0.6) or TOPICS[:1]
        return protocols(self.rng.choice(PROTOCOL_CHOICES), topics)

    def _pick_client(self) -> Client | None:
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
            self._log(f"  -> {record.label} {_describe(kind, response)}")
            self.seen[f"{kind}:{_code(response)}"] += 1
            member_id = response.get("member_id")
            if member_id and member_id not in self._handed_out:
                self._handed_out[member_id] = None
            if response["error_code"] is ErrorCode.none and response.get("members"):
                self.seen["generation formed"] += 1
            if isinstance(request, JoinRequest):
                self.checker.on_join_response(request, response)
                if client.last_join is record:
                    client.on_join_answer(response)
            else:
                self.checker.on_sync_response(request, response)
                if client.last_sync is record:
                    client.on_sync_answer(request, response)

        return answer

    # -- requests -----------------------------------------------------------------------

    def _join(self, client: Client, member_id: str, own: bool = True) -> None:
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
        self._log(f"{client.name} JoinGroup {client.group_id} member '{member_id}'")
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

    def _sync(
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
        self._log(
            f"{client.name} SyncGroup {client.group_id} member '{member_id}' gen "
            f"{generation} ({len(assignments)} assignments)"
        )
        self.checker.sync_in_flight = request
        try:
            self.machine.sync(request, waiter)
        finally:
            self.checker.sync_in_flight = None

    def _heartbeat(self, client: Client, generation: int, member_id: str | None = None) -> None:
        own = member_id is None or member_id == client.member_id
        group_id = client.group_id
        member_id = client.member_id if member_id is None else member_id
        view = GroupView.of(self.machine.group(group_id))
        code = self.machine.heartbeat(group_id, member_id, generation, client.instance_id)
        self._log(f"{client.name} Heartbeat member '{member_id}' gen {generation} -> {code.name}")
        self.seen[f"heartbeat:{code.name}"] += 1
        self.checker.on_heartbeat(view, group_id, member_id, generation, client.instance_id, code)
        if own and generation == client.generation:
            client.on_heartbeat_answer(code)

    def _generation_of(self, client: Client) -> int:
        """The client's generation, now and then off by one (a stale or confused client)."""
        if self.rng.random() < 0.05:
            return client.generation + self.rng.choice((-1, 1))
        return client.generation

    # -- random operations --------------------------------------------------------------

    def _op_next_move(self) -> None:
        """A client does what a Kafka consumer would do next."""
        client = self._pick_client()
        if client is not None:
            self._natural_action(client)

    def _op_join(self) -> None:
        client = self._pick_client()
        if client is None:
            return
        if self.rng.random() < 0.03:
            self._join(client, f"ghost-{self.rng.randrange(1000)}", own=False)
        else:
            self._join(client, client.member_id)

    def _op_stale_request(self) -> None:
        """A request with a member id the client does not hold: an id that was handed out
        earlier in this run (perhaps to another client, perhaps long gone)."""
        client = self._pick_client()
        if client is None or not self._handed_out:
            return
        member_id = self.rng.choice(list(self._handed_out))
        if member_id == client.member_id:
            return
        kind = self.rng.randrange(3)
        if kind == 0:
            self._join(client, member_id, own=False)
        elif kind == 1:
            self._sync(client, self._generation_of(client), own=False, member_id=member_id)
        else:
            self._heartbeat(client, self._generation_of(client), member_id=member_id)

    def _op_sync(self) -> None:
        client = self._pick_client()
        if client is not None:
            self._sync(client, self._generation_of(client))

    def _op_heartbeat(self) -> None:
        client = self._pick_client()
        if client is not None:
            self._heartbeat(client, self._generation_of(client))

    def _op_commit(self) -> None:
        client = self._pick_client()
        if client is None or self.rng.random() < 0.2:
            # An administrative commit: no member, no generation.
            self._commit(self.rng.choice([*self.group_ids, ADMIN_GROUP]), "", None, -1)
        else:
            self._commit(
                client.group_id,
                client.member_id,
                client.instance_id,
                self._generation_of(client),
            )

    def _commit(
        self, group_id: str, member_id: str, instance_id: str | None, generation: int
    ) -> None:
        version = self.rng.randint(1, 9)
        view = GroupView.of(self.machine.group(group_id))
        answer = self.machine.validate_offset_commit(
            group_id, member_id, instance_id, generation, version
        )
        said = "accepted" if answer is None else answer.name
        self.seen[f"commit:{said}"] += 1
        self._log(
            f"OffsetCommit v{version} {group_id} member '{member_id}' gen {generation} -> {said}"
        )
        self.checker.on_commit(view, member_id, instance_id, generation, version, answer)

    def _op_leave(self) -> None:
        client = self._pick_client()
        if client is None:
            return
        leaving = [client]
        others = [c for c in self.clients if c.group_id == client.group_id and c is not client]
        if others and self.rng.random() < 0.3:
            leaving.append(self.rng.choice(others))
        members = [(c.member_id, c.instance_id) for c in leaving]
        code, entries = self.machine.leave(client.group_id, members)
        self._log(f"LeaveGroup {client.group_id} {members} -> {code.name} {_codes(entries)}")
        if code is not ErrorCode.none or len(entries) != len(members):
            raise Violation(f"LeaveGroup answered {code.name} with {len(entries)} entries")
        self._check_left(client.group_id, entries)
        for leaver in leaving:
            leaver.forget_membership()
            leaver.stopped = True

    def _op_admin_leave(self) -> None:
        static = [c for c in self.clients if c.instance_id is not None]
        if not static:
            return
        target = self.rng.choice(static)
        group = self.machine.group(target.group_id)
        known = group is not None and target.instance_id in group.static_members
        code, entries = self.machine.leave(target.group_id, [("", target.instance_id)])
        self._log(f"admin removes {target.instance_id} from {target.group_id} -> {_codes(entries)}")
        expected = ErrorCode.none if known else ErrorCode.unknown_member_id
        if code is not ErrorCode.none or [e["error_code"] for e in entries] != [expected]:
            raise Violation(f"removing static member {target.instance_id} answered {entries}")
        self._check_left(target.group_id, entries)

    def _check_left(self, group_id: str, entries: list[dict[str, Any]]) -> None:
        group = self.machine.group(group_id)
        for entry in entries:
            if entry["error_code"] is not ErrorCode.none or group is None:
                continue
            if entry["member_id"] in group.members or (
                entry["group_instance_id"] in group.static_members
            ):
                raise Violation(f"LeaveGroup said {entry} left, but it is still a member")

    def _op_replace_static(self) -> None:
        static = [c for c in self.clients if c.instance_id is not None]
        if static:
            old = self.rng.choice(static)
            self._new_client(old.group_id, instance_id=old.instance_id)

    def _op_new_client(self) -> None:
        self._new_client(self.rng.choice(self.group_ids))

    def _op_restart(self) -> None:
        gone = [c for c in self.clients if not c.active]
        if gone:
            client = self.rng.choice(gone)
            client.restart()
            self._log(f"{client.name} restarts")

    def _op_change_subscription(self) -> None:
        client = self._pick_client()
        if client is not None:
            client.protocols = self._random_protocols()
            client.needs_join = True
            self._log(f"{client.name} subscribes anew: {[n for n, _ in client.protocols]}")

    def _op_advance_a_little(self) -> None:
        self._advance(self.rng.randint(1, 2_500))

    def _op_advance_a_lot(self) -> None:
        config = self.config
        self._advance(
            self.rng.choice(
                (
                    max(SESSION_CHOICES_MS) + 1,
                    max(REBALANCE_CHOICES_MS) + 1,
                    config.initial_rebalance_delay_ms + 1,
                    config.new_member_join_timeout_ms + 1,
                )
            )
        )

    def _op_delete_group(self) -> None:
        group_id = self.rng.choice([*self.group_ids, ADMIN_GROUP])
        has_offsets = self.rng.random() < 0.5
        group = self.machine.group(group_id)
        error = self.machine.validate_delete_group(group_id, has_offsets)
        self._log(f"DeleteGroups {group_id} -> {'allowed' if error is None else error.name}")
        if error is None and group is not None and group.state is not GroupState.EMPTY:
            raise Violation(f"deleting group {group_id} in state {group.state.value} was allowed")
        if error is None:
            self._remove_group(group_id)

    def _op_cleanup(self) -> None:
        for group_id in self.machine.removable_empty_groups():
            group = self.machine.groups[group_id]
            if group.state is not GroupState.EMPTY or group.members or group.pending_join:
                raise Violation(f"cleanup offered group {group_id}, which is in use")
            self._remove_group(group_id)

    def _remove_group(self, group_id: str) -> None:
        self.machine.remove_group(group_id)
        self.checker.forget_group(group_id)
        self._log(f"group {group_id} removed")
        self.seen["group removed"] += 1
        if self.machine.group(group_id) is not None:
            raise Violation(f"group {group_id} is still there after its removal")

    def _op_bad_request(self) -> None:
        """Requests the machine must refuse at once: no group id, or a member id for a
        group the coordinator does not have."""
        client = self._pick_client()
        if client is None:
            return
        group_id = client.group_id
        try:
            client.group_id = self.rng.choice(("", "never-created"))
            self._join(client, client.member_id or "ghost-1", own=False)
            self._sync(client, client.generation, own=False)
        finally:
            client.group_id = group_id
        join, sync = self.requests[-2:]
        if not join.request.group_id:
            expected = [ErrorCode.invalid_group_id, ErrorCode.invalid_group_id]
        elif self.config.session_timeout_ms_min <= client.session_ms:
            expected = [ErrorCode.unknown_member_id, ErrorCode.unknown_member_id]
        else:
            expected = [ErrorCode.invalid_session_timeout, ErrorCode.unknown_member_id]
        for record, code in zip((join, sync), expected, strict=True):
            answers = [a["error_code"] for a in record.answers]
            if answers != [code]:
                raise Violation(f"{record.label} should be refused at once with {code.name}")

    # -- time ---------------------------------------------------------------------------

    def _advance(self, ms: int) -> None:
        """Move the clock by `ms`, running each batch of timers when it falls due."""
        target = self.clock.now + ms
        while True:
            deadline = self.machine.next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.now = max(self.clock.now, deadline)
            fired = self.machine.fire_due_timers()
            self._log(f"{fired} timer(s) fired")
            self._after_step()
        self.clock.now = target

    # -- the end ------------------------------------------------------------------------

    def _settle(self) -> None:
        """Clients follow the protocol (rejoin, sync, heartbeat every second) until every
        group that has a running client is Stable with exactly those clients, each holding
        its assignment of the current generation."""
        self._log("settle: every running client follows the protocol")
        for _ in range(SETTLE_ROUNDS_MAX):
            if self._settled():
                break
            for client in [c for c in self.clients if c.active]:
                self._natural_action(client)
                self._after_step()
            self._advance(1_000)
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
            self._log(
                f"settled: {group_id} generation {group.generation_id}, leader "
                f"{group.leader_id}, members {list(group.members)}"
            )
        self._check_answered(r for r in self.requests if r.request.group_id in settled)
        self._stay_settled(sorted(settled))

    def _stay_settled(self, group_ids: list[str]) -> None:
        """Members that heartbeat (or commit offsets) in time keep their generation: for
        longer than any session timeout, nothing changes."""
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
                if self.rng.random() < 0.3:
                    self._commit(
                        client.group_id, client.member_id, client.instance_id, client.generation
                    )
                else:
                    self._heartbeat(client, client.generation)
                self._after_step()
            self._advance(STABLE_HEARTBEAT_INTERVAL_MS)
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

    def _natural_action(self, client: Client) -> None:
        if client.waiting():
            return
        if client.needs_join:
            self._join(client, client.member_id)
        elif client.needs_sync:
            self._sync(client, client.generation)
        elif client.member_id:
            self._heartbeat(client, client.generation)

    def _quiesce(self) -> None:
        self._log("quiesce: every client goes away")
        for client in self.clients:
            client.stopped = True
        for _ in range(QUIESCE_BATCHES_MAX):
            deadline = self.machine.next_deadline()
            if deadline is None:
                break
            self._advance(max(0, deadline - self.clock.now))
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
        self._log("the coordinator shuts down")
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


def _codes(entries: list[dict[str, Any]]) -> list[str]:
    return [_code(e) for e in entries]


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
