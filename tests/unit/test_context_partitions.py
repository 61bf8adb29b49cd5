"""Partitioned context instances' pure parts: Kafka's murmur2 (its own test vectors, from
`UtilsTest`), the partition an entity keyed by its id lands in, the co-partitioning
check; and the store dropping a partition's rows (a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextplane.services.context.client import _followable
from contextplane.services.context.freshness import Position
from contextplane.services.context.partitions import (
    co_partitioned,
    entity_partition,
    murmur2,
    vouched_url,
)
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


def test_a_member_names_only_an_origin_on_its_own_address() -> None:
    assert vouched_url("http://127.0.0.1:8090/", "/127.0.0.1") == "http://127.0.0.1:8090"
    assert vouched_url("https://localhost:8443", "/127.0.0.1") == "https://localhost:8443"
    assert vouched_url("http://127.0.0.1:1", "/::ffff:127.0.0.1") == "http://127.0.0.1:1"
    for url in (
        "http://203.0.113.9:8090",  # another host
        "http://127.0.0.1:1@203.0.113.9",  # userinfo hiding it
        "http://127.0.0.1:1/elsewhere",
        "http://127.0.0.1:1?q",
        "http://127.0.0.1:1#f",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:1\n",
        " http://127.0.0.1:1",
        "ftp://127.0.0.1",
        "javascript:alert(1)",
        "http://\u00e9vil.example",
        "http://" + "a" * 300,
        "http://no_such_host_under.invalid",
    ):
        assert vouched_url(url, "/127.0.0.1") is None, url
    assert vouched_url("http://127.0.0.1:1", "not an address") is None


def test_the_sdk_follows_only_an_origin_and_never_downgrades() -> None:
    assert _followable("http://127.0.0.1:1/", "http://127.0.0.1:2") == "http://127.0.0.1:1"
    assert _followable("https://h:1", "http://127.0.0.1:2") == "https://h:1"
    assert _followable("http://h:1", "https://127.0.0.1:2") is None
    for url in (None, 5, "http://a@b", "http://h/x", "http://h?q", "file:///etc/passwd", "http://"):
        assert _followable(url, "http://127.0.0.1:2") is None, url
