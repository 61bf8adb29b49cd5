"""The continuous balancer (RFC 0004 §6, AutoMQ's AutoBalancer): while this broker holds
the controller, every `autobalancer.controller.anomaly.detect.interval.ms` it reads the
brokers' published loads, who leads what and the moves in flight from the shared store,
decides one round (cluster/autobalance_round.py) and writes its moves as the controller's
targets (`Controller.move`, reason `rebalance`: the path AlterPartitionReassignments
takes). One log line a round says what moved and why; /metrics counts the rounds by
outcome and the partitions moved (`BrokerStats.balancer_round`).

What it remembers is its own, in memory: since when the brokers (node id and
incarnation) are the ones it sees, and which partitions moved lately (its own moves, any
listed in flight, any whose leader changed since the last round). A new controller starts
with neither, so it waits one cool-down before its first move.
"""

from __future__ import annotations

import asyncio
import logging

from contextplane.broker.stats import BrokerStats
from contextplane.clock import Clock
from contextplane.cluster.autobalance_round import Limits, Round, decide
from contextplane.cluster.balance_plan import LEAVING_STATES, Led, PartitionKey, measured
from contextplane.cluster.controller import Controller
from contextplane.cluster.registry import Registry
from contextplane.metadata.store import MetadataStore
from contextplane.settings_autobalancer import AutoBalancerFields
from contextplane.tasks import cancel_and_wait, repeat_every

log = logging.getLogger(__name__)


class AutoBalancer:
    def __init__(
        self,
        metadata: MetadataStore,
        registry: Registry,
        controller: Controller,
        settings: AutoBalancerFields,
        clock: Clock,
        stats: BrokerStats,
    ) -> None:
        self._metadata = metadata
        self._registry = registry
        self._controller = controller
        self._clock = clock
        self._stats = stats
        self._interval_s = settings.autobalancer_controller_anomaly_detect_interval_ms / 1000
        self._cooldown_ms = settings.autobalancer_controller_cooldown_ms
        self._limits = Limits(
            settings.autobalancer_controller_load_distribution_detect_avg_deviation,
            settings.autobalancer_controller_load_distribution_detect_threshold,
            settings.autobalancer_controller_execution_steps,
        )
        self._members: frozenset[tuple[int, int]] | None = None
        self._members_since_ms = 0
        self._moved_ms: dict[PartitionKey, int] = {}  # partition -> when it last moved
        # The load its source measured when this balancer moved it: the target's average
        # starts from zero, so until the cool-down ends this is the better estimate.
        self._moved_load: dict[PartitionKey, float] = {}
        self._leaders: dict[PartitionKey, int] = {}  # as the last round read them
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="controller-autobalancer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        await repeat_every(self._interval_s, self._interval, "balancer round", log)

    async def _interval(self) -> None:
        if not self._registry.is_controller:
            self._members, self._moved_ms, self._moved_load = None, {}, {}  # afresh
            self._leaders = {}
            return
        await self.round()

    async def round(self) -> Round:
        """Decide one round and write its moves."""
        now = self._clock.monotonic_ms()
        members = frozenset((b.node_id, b.incarnation) for b in self._registry.brokers)
        if members != self._members:
            self._members, self._members_since_ms = members, now
        in_flight = await self._metadata.reassignments()
        rows = await self._metadata.partitions()
        leaders = {(r.topic, r.partition): r.leader_node for r in rows}
        # A move seen in flight, or done since the last round (an operator's, a drain's,
        # a failover's), counts as recent as the balancer's own.
        changed = [k for k, node in leaders.items() if self._leaders.get(k, node) != node]
        for key in (*((m.topic, m.partition) for m in in_flight), *changed):
            self._moved_ms[key] = now
        self._leaders = leaders
        self._moved_ms = {
            key: at for key, at in self._moved_ms.items() if now - at < self._cooldown_ms
        }
        self._moved_load = {k: v for k, v in self._moved_load.items() if k in self._moved_ms}
        racks = {b.node_id: b.rack for b in self._registry.brokers}
        brokers, loads = measured(
            [
                (node, racks.get(node), state in LEAVING_STATES, document)
                for node, state, document in await self._metadata.broker_loads()
            ]
        )
        for key, load in self._moved_load.items():
            loads[key] = max(loads.get(key, 0.0), load)
        streams = {(r.topic, r.partition): r.stream_id for r in rows}
        decided = decide(
            brokers,
            [
                Led((r.topic, r.partition), r.leader_node, loads.get((r.topic, r.partition), 0.0))
                for r in rows
                if r.leader_node >= 0
            ],
            self._limits,
            settled=now - self._members_since_ms >= self._cooldown_ms,
            in_flight=len(in_flight),
            recent=self._moved_ms.keys(),
        )
        self._stats.balancer_round(len(decided.moves))
        if decided.moves:
            await self._controller.move(
                {streams[m.key]: m.target for m in decided.moves}, reason="rebalance"
            )
            for move in decided.moves:
                self._moved_ms[move.key] = now
                self._moved_load[move.key] = move.load
            log.info(
                "balancer: %d moves (%s): %s",
                len(decided.moves),
                decided.reason,
                ", ".join(
                    f"{m.key[0]}-{m.key[1]} {m.source}->{m.target} ({m.load:.0f} B/s)"
                    for m in decided.moves
                ),
            )
        else:
            log.info("balancer: no move (%s)", decided.reason)
        return decided
