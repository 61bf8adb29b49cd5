"""Partitioned context instances' pure parts: Kafka's murmur2 (its own test vectors, from
`UtilsTest`), the partition an entity keyed by its id lands in, the co-partitioning
check; and the store dropping a partition's rows (a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.services.context.freshness import Position
from contextplane.services.context.partitions import co_partitioned, entity_partition, murmur2
from contextplane.services.context.store import LocalStore


def test_murmur2_matches_kafkas_vectors() -> None:
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_an_entity_lands_where_the_default_partitioner_puts_its_key() -> None:
    # toPositive(murmur2(key)) % n, as Kafka's BuiltInPartitioner for a keyed record.
    assert entity_partition("foobar", 4) == (-790332482 & 0x7FFFFFFF) % 4
    assert {entity_partition(f"acct-{n}", 4) for n in range(40)} == {0, 1, 2, 3}


def test_co_partitioning_names_each_topic_and_count() -> None:
    assert co_partitioned({"crm.accounts": 4, "support.tickets": 4}) == 4
    with pytest.raises(ValueError, match="crm.accounts has 4, support.tickets has 2"):
        co_partitioned({"crm.accounts": 4, "support.tickets": 2})


def test_dropping_a_partition_forgets_its_entities_positions_and_read_position(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "context.db")
    try:
        store.commit(
            {("account", "a"): b"{}", ("account", "b"): b"{}"},
            {("crm.accounts", 1): Position(3, None), ("crm.accounts", 2): Position(5, None)},
            None,
            {("account", "a"): 0, ("account", "b"): 0},
            {("account", "a"): 1, ("account", "b"): 2},
            {1: 4, 2: 6},
        )
        assert store.entity_located("account", "b")[1] == (2, 0)
        store.drop_partitions({1})
        assert store.entity("account", "a")[0] is None
        assert store.entity("account", "b")[0] == b"{}"
        assert store.positions() == {("crm.accounts", 2): Position(5, None)}
        assert (store.changelog_position(1), store.changelog_position(2)) == (0, 6)
    finally:
        store.close()
