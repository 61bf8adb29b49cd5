"""The controller's decisions as writes (RFC 0004 §2, §6): made only by the broker
holding the controller's lease, each fenced in its transaction by the controller epoch
it holds, so a controller paused past its lease writes nothing.

Slice 1 has one decision, a planned move: new targets for partitions, which their
leaders hand over and their targets claim (cluster/reconciler.py). Operator commands
(AlterPartitionReassignments, `contextplane partitions move`) are built on it later.
"""

from __future__ import annotations

from contextplane.cluster.registry import Registry
from contextplane.metadata.store import MetadataStore


class NotController(RuntimeError):
    """This broker does not hold the controller (or lost it before the write)."""


class Controller:
    def __init__(self, metadata: MetadataStore, registry: Registry) -> None:
        self._metadata = metadata
        self._registry = registry

    async def move(self, moves: dict[int, int], reason: str = "operator") -> None:
        """Target each stream at its node (stream id -> node id); every target must be a
        live broker. Returns once the targets are written; the moves complete as the
        brokers reconcile."""
        registry = self._registry
        if not registry.is_controller:
            raise NotController(f"node {registry.controller.node_id} is the controller")
        dead = sorted({node for node in moves.values() if node not in registry.live_ids})
        if dead:
            raise ValueError(f"no live broker {', '.join(map(str, dead))} to move to")
        if not await self._metadata.move_partitions(registry.controller, moves, reason):
            raise NotController(
                f"the controller epoch {registry.controller.epoch} was fenced by a newer one"
            )
