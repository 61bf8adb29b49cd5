"""`partition.move.timeout.ms` (RFC 0004 §6), on both engines: a source whose tail upload
does not finish within it (its object store stalled) abandons the handover: it serves
the partition again, the move stays recorded for failover (the target does not claim
it while the source's lease lives) and is not tried again for that target; once the
store is back the source's data uploads and a move elsewhere is handed over as usual."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.cluster.controller import Controller
from tests.unit.test_engine_recovery import batch
from tests.unit.test_reconciler import two_nodes


def test_a_source_that_cannot_upload_keeps_its_partition_until_failover(
    metadata_url: str, tmp_path: Path
) -> None:
    async def run() -> None:
        one, two, _bucket = await two_nodes(metadata_url, tmp_path, partition_move_timeout_ms=300)
        try:
            await one.topics.create("t", 2, {})
            await one.reconciler.reconcile()
            await two.reconciler.reconcile()
            moved = next(p for (_, p), log in one.engine.partitions.items() if log.stream_id % 2)
            log = one.engine.partitions[("t", moved)]
            await one.engine.append(log, batch(7, 0, 5, b"A")).durable

            objects = one.engine.objects
            objects.stall()  # type: ignore[attr-defined]
            controller = Controller(one.metadata, one.registry, 0.05)
            await controller.move({log.stream_id: 2})
            await one.reconciler.reconcile()  # the handover times out; no error
            assert not log.handing_over and one.engine.partition("t", moved) is log
            await one.engine.append(log, batch(7, 5, 5, b"B")).durable  # served again
            row = (await one.metadata.partitions("t"))[moved]
            assert (row.leader_node, row.target_node) == (1, 2)
            listed = [
                (m.topic, m.partition, m.source, m.target)
                for m in await one.metadata.reassignments()
            ]
            assert listed == [("t", moved, 1, 2)]
            # The target does not claim it while the source's lease lives.
            await two.reconciler.reconcile()
            assert ("t", moved) not in two.engine.partitions
            # Not tried again for the same target: no handover starts.
            one.registry.changed.set()
            await one.reconciler.reconcile()
            assert not log.handing_over

            # The store back, the operator moves it back here (the cancel's path) and then
            # to node 2 again: handed over as usual, nothing lost.
            objects.resume()  # type: ignore[attr-defined]
            await controller.move({log.stream_id: 1})
            await one.reconciler.reconcile()
            await controller.move({log.stream_id: 2})
            await one.reconciler.reconcile()
            await two.reconciler.reconcile()
            taken = two.engine.partition("t", moved)
            assert taken.next_offset == 10
        finally:
            await two.stop()
            await one.stop()

    asyncio.run(run())
