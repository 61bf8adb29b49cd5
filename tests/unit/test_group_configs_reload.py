"""Group configs (GROUP config resources) over the metadata store of each engine, as two
brokers hold them: a write through one moves `generation.topics` in its transaction, and
the other, reloading on that move, runs with the new values (the consumer group machine's
and a share group's), a group whose overrides were deleted falling back to the broker's."""

from __future__ import annotations

import asyncio

from contextplane.coordinators.consumer_group.machine import ConsumerGroupMachine
from contextplane.coordinators.group_configs import GroupConfigs
from contextplane.metadata.store import MetadataStore, open_metadata_store

RESET = "share.auto.offset.reset"
SESSION = "consumer.session.timeout.ms"


async def _generation(store: MetadataStore) -> int:
    beat = await store.cluster_heartbeat(1, 1, 60_000, -1)
    assert beat is not None
    return beat.topics_generation


def test_a_write_through_one_broker_is_seen_by_another_after_the_generation_moves(
    metadata_url: str,
) -> None:
    async def run() -> None:
        one_store, two_store = open_metadata_store(metadata_url), open_metadata_store(metadata_url)
        await one_store.open()
        await two_store.open()
        assert (await one_store.register_broker(1, 1, None, (), 60_000)).registered
        one_machine, two_machine = ConsumerGroupMachine(lambda: 0), ConsumerGroupMachine(lambda: 0)
        one, two = GroupConfigs(one_store, one_machine), GroupConfigs(two_store, two_machine)
        await one.load()
        await two.load()
        assert two.share_values("billing").offset_reset.strategy == "latest"

        seen = await _generation(one_store)
        await one.set("billing", {RESET: "earliest", SESSION: "50000"}, validate_only=False)
        await one.set("audit", {SESSION: "60000"}, validate_only=False)
        assert await _generation(two_store) == seen + 2  # what two's heartbeat reads
        await two.load()  # what two's reconciler does on that move
        assert two.get("billing") == {RESET: "earliest", SESSION: "50000"}
        assert two.share_values("billing").offset_reset.strategy == "earliest"
        assert two_machine.group_configs["billing"] == {SESSION: 50000}
        assert sorted(two.group_ids()) == ["audit", "billing"]

        await one.set("billing", {}, validate_only=False)  # deleted: the broker's values
        await one.set("audit", {SESSION: "55000"}, validate_only=False)
        assert await _generation(two_store) == seen + 4
        await two.load()
        assert two.get("billing") == {}
        assert two.share_values("billing").offset_reset.strategy == "latest"
        assert "billing" not in two_machine.group_configs
        assert two_machine.group_configs["audit"] == {SESSION: 55000}
        assert two.group_ids() == ["audit"]
        await one_store.close()
        await two_store.close()

    asyncio.run(run())
