"""Who leads a partition, as this broker knows it: what Metadata lists and what a
NOT_LEADER_OR_FOLLOWER answer names (KIP-951).

The leader is this broker at its epoch for a partition it leads; for another, the node
and epoch the metadata store held when this broker last read the partition (the storage
engine's `led_elsewhere` mirror: filled at start and when a topic is created or grown
here, refreshed by the reconciler at each assignment generation), while that node's
lease is live in the registry and its endpoints are bound (a broker between its
registration and its listeners' binding cannot be dialled: Kafka's answer for a leader
not in the brokers list); otherwise none, (-1, -1). Never a guess: a client moves
to a leader it is told about only if the epoch is newer than the one it knows, so an
invented epoch would send it astray. Read at each call, so the answer follows the
mirror and the registry as soon as either changes. Metadata lists a partition without
a live leader with its stored epoch (`listed`); NOT_LEADER_OR_FOLLOWER names (-1, -1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contextplane.broker.replica_selector import rack_nodes, rendezvous

if TYPE_CHECKING:
    from contextplane.cluster.registry import Registry
    from contextplane.storage.engine import StorageEngine

NO_LEADER = (-1, -1)


class Leaders:
    def __init__(
        self,
        log: StorageEngine,
        registry: Registry,
        node_id: int,
        rack: str | None = None,
        rack_aware: bool = False,
    ) -> None:
        self._log = log
        self._registry = registry
        self._node_id = node_id
        self._rack = rack  # broker.rack
        self._rack_aware = rack_aware and rack is not None  # replica.selector.class

    def of(self, topic: str, index: int) -> tuple[int, int]:
        """(node, leader epoch) of the partition's leader; (-1, -1) when no live broker is
        known to lead it (fenced away from here, not yet opened, or its broker gone)."""
        partition = self._log.partitions.get((topic, index))
        if partition is not None:
            return self._node_id, partition.leader_epoch
        elsewhere = self._log.led_elsewhere.get((topic, index))
        if elsewhere is not None and elsewhere[0] in self._registry.reachable_ids:
            return elsewhere
        return NO_LEADER

    def listed(self, topic: str, index: int) -> tuple[int, int]:
        """(node, leader epoch) as Metadata and DescribeTopicPartitions list the partition:
        its live leader, else -1 with the epoch the metadata store last held for it, as
        Kafka lists its image's leaderEpoch beside NO_LEADER_ID: a client compares it with
        the epoch it knows, so it must not fall back to -1 while the partition has none.
        (-1, -1) only for a partition this broker has not read yet."""
        leader = self.of(topic, index)
        if leader[0] != -1:
            return leader
        elsewhere = self._log.led_elsewhere.get((topic, index))
        return NO_LEADER if elsewhere is None else (-1, elsewhere[1])

    def replica(self, topic: str, index: int) -> int:
        """The node holding the partition (one replica): its leader, or the broker the
        metadata store last named even while that broker is gone (Kafka lists a fenced
        broker's replicas, as offline); this broker when none is known."""
        if (topic, index) in self._log.partitions:
            return self._node_id
        elsewhere = self._log.led_elsewhere.get((topic, index))
        if elsewhere is not None and elsewhere[0] != -1:
            return elsewhere[0]
        return self._node_id

    def read_replicas(self, topic: str, index: int) -> tuple[int, ...]:
        """With the rack-aware replica selector, the brokers a leader may send consumers
        of other racks to (KIP-392): one live broker per rack other than the leader's,
        chosen as the leader chooses (replica_selector.py). Metadata lists them among the
        partition's replicas, since the Java client follows a PreferredReadReplica only to
        a broker listed there (`Cluster.nodeIfOnline`); none without a live leader."""
        if not self._rack_aware:
            return ()
        leader = self.of(topic, index)[0]
        if leader == -1:
            return ()
        brokers = self._registry.brokers
        racks = {b.rack for b in brokers if b.rack and b.node_id in self._registry.reachable_ids}
        if self._rack is not None:
            racks.add(self._rack)
        leader_rack = self._rack if leader == self._node_id else None
        for broker in brokers:
            if broker.node_id == leader:
                leader_rack = broker.rack
        chosen = (
            rendezvous(topic, index, rack_nodes(self._registry, self._node_id, self._rack, rack))
            for rack in racks
            if rack != leader_rack
        )
        return tuple(sorted(node for node in chosen if node not in (-1, leader)))

    def is_offline(self, node: int) -> bool:
        """The node is not a live broker (its lease lapsed or it stopped) or not yet
        bound."""
        return node != self._node_id and node not in self._registry.reachable_ids
