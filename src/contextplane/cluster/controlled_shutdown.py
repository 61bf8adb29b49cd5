"""Controlled shutdown (RFC 0004 §6, Kafka's): a broker stopped cleanly while another
live broker shares its store first hands over what it leads, so clients move to the
new leaders at once instead of waiting for its lease to lapse.

It marks itself `shutting_down` (placement puts nothing there; unlike a drain the mark
is not kept across restarts), keeps serving while the controller retargets its
partitions (cluster/controller.py) and its reconciler hands each over, coordinator
shards included (cluster/reconciler.py), and returns once every partition it led has a
live leader elsewhere, no other broker is live any more (all of them stopping at
once), or `shutdown.timeout.ms` has passed: what is left stays its own, as after any
stop. A broker alone (or on SQLite) stops as before.
"""

from __future__ import annotations

import asyncio
import logging

from contextplane.clock import SystemClock
from contextplane.cluster.leadership import Leadership
from contextplane.cluster.registry import Registry
from contextplane.metadata.store import MetadataStore

log = logging.getLogger(__name__)

_POLL_S = 0.05  # how often leadership is looked at (local: cheap)


def applies(metadata: MetadataStore, registry: Registry, node_id: int) -> bool:
    """Whether a stop hands over first: a shared store, this incarnation registered, and
    another broker live (not draining or shutting down) to take the partitions."""
    return (
        metadata.shared
        and registry.incarnation >= 0
        and any(b.node_id != node_id and b.state == "live" for b in registry.brokers)
    )


async def hand_over(
    metadata: MetadataStore,
    registry: Registry,
    leadership: Leadership,
    node_id: int,
    timeout_ms: int,
) -> bool:
    """Mark this broker shutting down and wait until every partition it leads has a
    live leader on another broker, at most `timeout_ms`; True when all were."""
    clock = SystemClock()
    started = clock.monotonic_ms()
    since = registry.assignment_generation  # the handovers and claims come after it
    led = leadership.led()
    if not await metadata.begin_shutdown(node_id, registry.incarnation):
        return False
    registry.changed.set()  # the reconciler reads the rows again at once
    log.info("node %d: controlled shutdown, handing over %d partitions", node_id, len(led))
    while clock.monotonic_ms() - started < timeout_ms:
        if not leadership.led() and await _taken(metadata, since, led, node_id):
            log.info(
                "node %d: %d partitions handed over in %d ms",
                node_id,
                len(led),
                clock.monotonic_ms() - started,
            )
            return True
        if not applies(metadata, registry, node_id):
            # The others are shutting down too (a whole cluster stopped at once): none
            # is left to take the rest, which the next start claims as before.
            log.info(
                "node %d: no live broker left to hand over to; %d partitions still led",
                node_id,
                len(leadership.led()),
            )
            return False
        await asyncio.sleep(_POLL_S)
    log.warning(
        "node %d: controlled shutdown ran out of shutdown.timeout.ms (%d ms) still leading"
        " %d partitions; their targets claim them once it has stopped",
        node_id,
        timeout_ms,
        len(leadership.led()),
    )
    return False


async def _taken(metadata: MetadataStore, since: int, led: frozenset[int], node_id: int) -> bool:
    """Whether every stream of `led` has a live leader other than `node_id` (its row
    changed since generation `since`: released here, then claimed)."""
    _, rows = await metadata.assignment_changes(since)
    taken = {r.stream_id for r in rows if r.leader_node not in (-1, node_id) and r.leader_live}
    return led <= taken
