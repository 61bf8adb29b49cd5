"""The controller's decisions as writes (RFC 0004 §2, §6): made only by the broker
holding the controller's lease, each fenced in its transaction by the controller epoch
it holds, so a controller paused past its lease writes nothing.

Two decisions so far: a planned move (new targets for partitions, which their leaders
hand over and their targets claim, cluster/reconciler.py; AlterPartitionReassignments,
broker/handlers/reassignments.py, moves and cancels through it), and failover: each heartbeat
interval, brokers whose lease lapsed on the database's clock are marked expired and
their clean partitions retargeted over the live brokers by the placement function, in
one fenced transaction; their dirty partitions stay targeted at them, offline until they
return on their WAL (RFC 0004 §5), unless their WAL is an object WAL: then all of them go
to one live broker, which recovers them from it (§4, storage/wal_takeover.py). A
controller expires nobody until its heartbeats have reached the store for one session
timeout without a failed one (`Registry.may_expire_brokers`), counted from before it took
the controller over when it was steady then: a dead controller's partitions move one
session after its death, not two.

A third follows from a controlled shutdown (cluster/controlled_shutdown.py): each
interval, the partitions targeted at a broker marked `shutting_down` are retargeted over
the live brokers by the placement function, as a planned move (reason `shutdown`) that
the leaving broker hands over while it still serves. A controller that is itself
shutting down does this for itself: it keeps its lease until it has handed everything
over and deregisters, resigning then (`Registry.stop`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from contextplane.cluster.assignment_plan import Candidate, Placement
from contextplane.cluster.registry import Registry
from contextplane.failure_episode import FailureEpisode
from contextplane.metadata.records import BrokerRecord, Expiry
from contextplane.metadata.store import MetadataStore

log = logging.getLogger(__name__)


class NotController(RuntimeError):
    """This broker does not hold the controller (or lost it before the write)."""


class Controller:
    def __init__(
        self,
        metadata: MetadataStore,
        registry: Registry,
        interval_s: float,
        unclean_topics: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        """`unclean_topics()` names the topics with unclean.leader.election.enable=true."""
        self._metadata = metadata
        self._registry = registry
        self._unclean_topics = unclean_topics
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._episodes: dict[str, FailureEpisode] = {}  # per interval step

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="controller-failover")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if self._registry.is_controller:
                await self._tried(
                    "moving partitions off brokers shutting down", self.move_off_shutting_down
                )
            if self._registry.may_expire_brokers():
                await self._tried("expiring lapsed brokers", self.expire_brokers)

    async def _tried(self, what: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run one interval's step; a failure is tried again next interval and logged
        once until the step succeeds again (a store outage fails every interval)."""
        episode = self._episodes.get(what)
        if episode is None:
            episode = FailureEpisode(log, what, "trying again each interval")
            self._episodes[what] = episode
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - tried again next interval
            episode.failed(exc)
            return
        episode.worked()

    async def move_off_shutting_down(self) -> dict[int, int]:
        """Retarget every partition targeted at a broker shutting down over the live
        brokers (stream id -> node id moved to); nothing when none is live."""
        if not any(b.state == "shutting_down" for b in self._registry.brokers):
            return {}
        # Read again, not a heartbeat old: a broker stopped since is no target.
        brokers = await self._metadata.live_brokers()
        leaving = {b.node_id for b in brokers if b.state == "shutting_down"}
        live = _targets(brokers, frozenset())
        if not leaving or not live:
            return {}
        placement = Placement(live)
        _, rows = await self._metadata.assignment_changes(0)
        moves = {r.stream_id: placement(r.stream_id) for r in rows if r.target_node in leaving}
        if moves:
            try:
                await self.move(moves, "shutdown")
            except Exception as exc:
                log.warning("moving partitions off brokers shutting down failed (%r)", exc)
                raise
            log.info(
                "%d partitions moved off brokers shutting down (%s)",
                len(moves),
                ", ".join(map(str, sorted(leaving))),
            )
        return moves

    async def expire_brokers(self) -> list[Expiry]:
        """One failover pass: expire the brokers whose lease lapsed and retarget their
        clean partitions over the live ones (the caller checked the outage rule)."""
        registry = self._registry
        brokers = registry.brokers

        def placement(dead: frozenset[int]) -> Placement | None:
            # The list is a heartbeat old: a broker found dead in the transaction is out.
            left = _targets(brokers, dead)
            return Placement(left) if left else None

        try:
            expiries = await self._metadata.expire_brokers(
                registry.controller, placement, self._unclean_topics()
            )
        except Exception as exc:
            log.warning("failover pass failed (%r); retrying", exc)
            raise
        for expiry in expiries:
            if expiry.recoverer != -1:
                log.warning(
                    "node %d: lease lapsed, marked expired; %d partitions moved to live"
                    " brokers, its object WAL recovered by node %d",
                    expiry.node_id,
                    len(expiry.moved),
                    expiry.recoverer,
                )
                continue
            log.warning(
                "node %d: lease lapsed, marked expired; %d partitions moved to live brokers,"
                " %d dirty ones stay offline until it returns on its WAL (streams %s)",
                expiry.node_id,
                len(expiry.moved),
                len(expiry.offline),
                ", ".join(map(str, expiry.offline[:20])) or "none",
            )
        return expiries

    async def move(self, moves: dict[int, int], reason: str = "operator") -> None:
        """Target each stream at its node (stream id -> node id); every target must be a
        live broker, not one shutting down (it would hand the partition on again, or keep
        it offline once stopped). Returns once the targets are written; the moves
        complete as the brokers reconcile."""
        registry = self._registry
        if not registry.is_controller:
            raise NotController(f"node {registry.controller.node_id} is the controller")
        dead = sorted({node for node in moves.values() if node not in registry.live_ids})
        if dead:
            raise ValueError(f"no live broker {', '.join(map(str, dead))} to move to")
        leaving = {b.node_id for b in registry.brokers if b.state == "shutting_down"}
        stopping = sorted(leaving.intersection(moves.values()))
        if stopping:
            raise ValueError(f"broker {', '.join(map(str, stopping))} is shutting down")
        if not await self._metadata.move_partitions(registry.controller, moves, reason):
            raise NotController(
                f"the controller epoch {registry.controller.epoch} was fenced by a newer one"
            )

    async def cancel(self, streams: list[int]) -> dict[int, str]:
        """Cancel the moves of `streams` not handed over yet (their leader keeps them);
        per stream what was found (`metadata/sql_reassignments.py`)."""
        registry = self._registry
        if not registry.is_controller:
            raise NotController(f"node {registry.controller.node_id} is the controller")
        found = await self._metadata.cancel_reassignments(registry.controller, streams)
        if found is None:
            raise NotController(
                f"the controller epoch {registry.controller.epoch} was fenced by a newer one"
            )
        return found


def _targets(brokers: Sequence[BrokerRecord], dead: frozenset[int]) -> list[Candidate]:
    """Where failover and a shutdown's moves may put partitions: the live brokers, or,
    when every one left is draining, the draining ones (a drain steers placement; it
    must not leave the partitions of the last other broker offline while they run)."""
    alive = [b for b in brokers if b.node_id not in dead]
    live = [Candidate(b.node_id, b.rack) for b in alive if b.state == "live"]
    return live or [Candidate(b.node_id, b.rack) for b in alive if b.state == "draining"]
