"""The Kafka store's hand-over from its reader thread, without a cluster: a record whose
handling fails is skipped, and the records after it and the offsets writes wait on move on."""

from __future__ import annotations

import asyncio

from contextplane.services.schema_registry.store import KafkaStore


def test_a_record_whose_handling_fails_costs_nothing_else() -> None:
    async def main() -> None:
        store = KafkaStore("127.0.0.1:1")  # clients are created, never connected
        applied: list[bytes | None] = []

        def apply(key: bytes | None, value: bytes | None) -> None:
            if key == b"bad":
                raise RuntimeError("a fault in handling one record")
            applied.append(key)

        store._apply = apply
        store._loop = asyncio.get_running_loop()
        try:
            waiting = asyncio.ensure_future(store._until_applied(3, "a test write"))
            batch: list[tuple[bool, bytes | None, bytes | None, int]] = [
                (True, b"a", None, 0),
                (True, b"bad", None, 1),
                (True, b"c", None, 2),
            ]
            store._apply_batch(batch)
            await asyncio.wait_for(waiting, 5)
            assert applied == [b"a", b"c"]
            assert store._next_offset == 3
        finally:
            await store.close()

    asyncio.run(main())
