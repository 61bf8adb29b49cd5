"""Share groups' dead-letter records (KIP-1191): which archives are undeliverable, and the
DLQ record's encoding (Kafka's `__dlq.errors.*` context headers, the copied key and
value), and that the coordinator stores an archive only after its copy."""

from __future__ import annotations

import asyncio
from pathlib import Path

from contextplane.broker.share_dead_letters import (
    EXCEEDED_MESSAGE,
    REJECTED_MESSAGE,
    Original,
    context_headers,
    dead_letter_batch,
    dead_letter_record,
)
from contextplane.coordinators.share_coordinator import ShareConfig, ShareCoordinator
from contextplane.coordinators.share_partition import AckType, SharePartition, Undeliverable
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.record_codec import read_records, zigzag_varint
from contextplane.settings import Settings
from tests.support.metadata import open_store

LOCK_MS = 30_000
KEY = ("g", "t", 0)


def _headers(encoded: bytes) -> list[tuple[bytes, bytes]]:
    """Decode an encoded header block (count, then key/value pairs)."""
    count, at = zigzag_varint(encoded, 0)
    out = []
    for _ in range(count):
        length, at = zigzag_varint(encoded, at)
        key = encoded[at : at + length]
        at += length
        length, at = zigzag_varint(encoded, at)
        out.append((key, encoded[at : at + length]))
        at += length
    assert at == len(encoded)
    return out


def test_reject_and_the_delivery_limit_are_undeliverable_gap_and_accept_are_not() -> None:
    p = SharePartition(0, 2, 100, LOCK_MS)
    p.acquire("a", range(0, 4), 4, now_ms=0)
    acks = [(0, 3, (AckType.ACCEPT, AckType.REJECT, AckType.GAP, AckType.RELEASE))]
    assert p.acknowledge("a", acks, 0) == ErrorCode.none
    assert p.take_undeliverable() == [Undeliverable(1, 1, True)]
    assert p.take_undeliverable() == []  # taken once
    # Offset 3, released on its first delivery, is archived when its second lock expires.
    p.acquire("b", [3], 1, now_ms=0)
    assert p.expire_locks(LOCK_MS)
    assert p.take_undeliverable() == [Undeliverable(3, 2, False)]
    assert p.start_offset == 4


def test_a_departed_members_records_past_the_limit_are_undeliverable() -> None:
    p = SharePartition(0, 2, 100, LOCK_MS)
    for _ in range(2):
        p.acquire("a", [7], 1, now_ms=0)
        p.release_member("a")
    assert p.take_undeliverable() == [Undeliverable(7, 2, False)]


def test_context_headers_are_kafkas_keys_and_text_values() -> None:
    assert context_headers("orders", 3, "workers", Undeliverable(41, 5, False)) == [
        (b"__dlq.errors.topic", b"orders"),
        (b"__dlq.errors.partition", b"3"),
        (b"__dlq.errors.offset", b"41"),
        (b"__dlq.errors.group", b"workers"),
        (b"__dlq.errors.delivery.count", b"5"),
        (b"__dlq.errors.message", EXCEEDED_MESSAGE.encode()),
    ]
    rejected = context_headers("t", 0, "g", Undeliverable(0, 1, True))
    assert rejected[-1] == (b"__dlq.errors.message", REJECTED_MESSAGE.encode())


def test_a_copied_record_keeps_its_key_and_value_and_carries_the_context_headers() -> None:
    added = context_headers("orders", 0, "workers", Undeliverable(9, 1, True))
    copied = dead_letter_record(added, Original(b"k", b"v"), 0, 1_000)
    bare = dead_letter_record(added, None, 1, 1_000)
    batch = dead_letter_batch([copied, bare], 1_000)
    header, records = read_records(batch, 1 << 20)
    assert (header.producer_id, header.records_count, header.attributes) == (-1, 2, 0)
    first, second = records
    assert (first.key, first.value, first.timestamp, first.offset) == (b"k", b"v", 1_000, 0)
    assert _headers(first.headers) == added  # the original's headers are not copied (Kafka)
    assert (second.key, second.value, second.offset) == (None, None, 1)
    assert _headers(second.headers) == added


def test_the_archive_is_stored_only_after_its_copy_is_written(
    metadata_url: str, tmp_path: Path
) -> None:
    """The coordinator hands undeliverable records to its sink before it stores the state
    that archived them; a sink that fails leaves that state unstored and gets the same
    records again at the next save (so a crash in between repeats a copy, never loses one)."""

    async def run() -> None:
        store = await open_store(Settings(data_dir=tmp_path, metadata_url=metadata_url))
        coordinator = ShareCoordinator(store, ShareConfig())
        await coordinator.start(lambda _topic: 1)
        calls: list[list[Undeliverable]] = []
        stored_at_call: list[list[tuple[int, int, int, int]]] = []

        async def sink(taken: list[tuple[tuple[str, str, int], list[Undeliverable]]]) -> None:
            [(key, records)] = taken
            assert key == KEY
            calls.append(records)
            stored_at_call.append(
                [tuple(r) for p in await store.share_partitions() for r in p.runs]
            )
            if len(calls) == 1:
                raise OSError("the dead-letter topic's storage refused")

        coordinator.dead_letters = sink
        partition = coordinator.partition(KEY, 0)
        partition.acquire("a", range(3), 3, coordinator.now_ms())
        acks = [(0, 2, (AckType.ACCEPT, AckType.REJECT, AckType.ACCEPT))]
        assert partition.acknowledge("a", acks, coordinator.now_ms()) == ErrorCode.none
        assert not await coordinator.save()
        assert await store.share_partitions() == []  # nothing stored while the copy failed
        assert await coordinator.save()
        assert calls == [[Undeliverable(1, 1, True)]] * 2
        assert stored_at_call == [[], []]  # each call came before the archive was stored
        [stored] = await store.share_partitions()
        assert stored.start_offset == 3
        assert await coordinator.save()
        assert len(calls) == 2  # copied once written: not again
        await coordinator.stop()
        await store.close()

    asyncio.run(run())
