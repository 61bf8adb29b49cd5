"""Dynamic broker configs over the metadata store of each engine (migration 0017) and
their precedence on the broker's settings: per broker over cluster default over static,
a deleted one giving back the static value, and a stored value this version refuses
skipped (as Kafka skips it) without losing the others."""

from __future__ import annotations

import asyncio

from contextplane.broker.dynamic_configs import DynamicBrokerConfigs
from contextplane.errors import KafkaError
from contextplane.metadata.store import open_metadata_store
from contextplane.settings import load_settings


def test_stored_per_resource_replaced_whole_and_kept_by_reopening(metadata_url: str) -> None:
    async def run() -> None:
        store = open_metadata_store(metadata_url)
        await store.open()
        assert await store.broker_configs() == {}
        assert (await store.register_broker(1, 1, None, (), 60_000)).registered

        async def generation() -> int:
            beat = await store.cluster_heartbeat(1, 1, 60_000, -1)
            assert beat is not None
            return beat.topics_generation

        before = await generation()
        await store.set_broker_configs("", {"log.retention.ms": "5000", "custom": "x"})
        await store.set_broker_configs("1", {"message.max.bytes": "2000"})
        await store.set_broker_configs("1", {"log.retention.bytes": "4096"})
        # Each write moves generation.topics: other brokers read the configs again.
        assert await generation() == before + 3
        await store.close()
        store = open_metadata_store(metadata_url)
        await store.open()
        assert await store.broker_configs() == {
            "": {"log.retention.ms": "5000", "custom": "x"},
            "1": {"log.retention.bytes": "4096"},
        }
        await store.set_broker_configs("", {})
        assert await store.broker_configs() == {"1": {"log.retention.bytes": "4096"}}
        await store.close()

    asyncio.run(run())


def test_precedence_and_the_static_value_back_after_a_delete(metadata_url: str) -> None:
    settings = load_settings(overrides={"log.retention.hours": "100", "node.id": "1"})
    static_ms = 100 * 3600 * 1000

    async def run() -> None:
        store = open_metadata_store(metadata_url)
        await store.open()
        # Stored by an older version or by hand: refused now, skipped when loaded.
        await store.set_broker_configs("1", {"log.retention.ms": "soon"})
        await store.set_broker_configs("2", {"message.max.bytes": "10"})  # another broker's
        dynamic = DynamicBrokerConfigs(store, settings)
        await dynamic.load()
        assert settings.retention_ms == static_ms
        assert settings.message_max_bytes == 1048588

        await dynamic.set("", {"log.retention.ms": "5000"}, validate_only=False)
        assert settings.retention_ms == 5000
        await dynamic.set("1", {"log.retention.ms": "1000"}, validate_only=False)
        assert settings.retention_ms == 1000
        await dynamic.set("1", {}, validate_only=False)
        assert settings.retention_ms == 5000
        await dynamic.set("", {}, validate_only=False)
        assert settings.retention_ms == static_ms
        try:
            await dynamic.set("", {"log.segment.bytes": "1000"}, validate_only=False)
        except KafkaError as exc:
            assert exc.message == (
                "Invalid value 1000 for configuration log.segment.bytes: "
                "Value must be at least 1048576"
            )
        else:
            raise AssertionError("a segment below Kafka's floor was taken")
        await store.close()

    asyncio.run(run())
