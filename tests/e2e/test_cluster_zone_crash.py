"""Zone writes under kill -9 (RFC 0004 §7, "Zone writes as built", step 4): broker 1 in
zone a stands in for broker 2's partitions (zone b) for an idempotent acks=all producer
of zone a, bootstrapped on both.

Broker 1 is killed -9 while the producer writes broker 2's partitions through it, so
requests die between its PUT and broker 2's answer, or after broker 2 appended and before
the client heard. Once broker 1's lease lapses Metadata names the real leader, the
client's retries go there, and every record is acknowledged and stored exactly once, at
its acknowledged offset, offsets contiguous (broker 2 recognises a handed-over batch the
client sends again by its producer sequence, as any retried batch).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cluster_failover import Acks, broker, create, fixture, read_back
from tests.e2e.test_cluster_zone_produce import metadata_leader
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

TOPIC = "zoned"  # as test_cluster_zone_produce.metadata_leader reads
ZONE_A = "app,contextplane_az=a"
RECORDS = 600


def test_a_proxy_killed_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    proxy = {"zone.produce.proxy.enable": "true"}
    one = broker(tmp_path / "one", 1, url, objects, **proxy, **{"broker.rack": "a"}).start()
    two = broker(tmp_path / "two", 2, url, objects, **proxy, **{"broker.rack": "b"}).start()
    try:
        leaders = create(one.bootstrap, TOPIC, 4, url)
        on_two = sorted(p for p, node in leaders.items() if node == 2)
        for p in on_two:
            wait_until(lambda p=p: metadata_leader(one.bootstrap, p) == 2, 15, "leaders known")
        acks = Acks(f"{one.bootstrap},{two.bootstrap}", **{"client.id": ZONE_A})
        for i in range(RECORDS):
            acks.send(TOPIC, on_two[i % len(on_two)], f"r{i}".encode())
            if i == RECORDS // 3:
                acks.producer.flush(30)  # some through the proxy for sure
                assert len(acks.acked) > 0
            if i == RECORDS // 2:
                one.kill9()
        acks.flush(120)
        assert not acks.errors
        assert len(acks.acked) == RECORDS
        read = read_back(two.bootstrap, TOPIC, on_two, RECORDS)
        assert read == acks.acked, "a record is missing, duplicated or moved"
        for p in on_two:
            offsets = sorted(offset for (partition, offset) in read if partition == p)
            assert offsets == list(range(len(offsets)))
        assert sorted(read.values()) == sorted(f"r{i}".encode() for i in range(RECORDS))
    finally:
        two.stop()
        one.stop()


def test_a_leader_killed_mid_hand_over_loses_and_duplicates_nothing(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Broker 2, the leader, is killed -9 while broker 1 hands it the producer's
    requests (some appended and durable there, their answers never sent), and started
    again: its partitions come back with their producer state, the client's retries
    through broker 1 are recognised, and every record is stored once at its offset."""
    url, objects = fixture(tmp_path, postgres_server)
    proxy = {"zone.produce.proxy.enable": "true"}
    one = broker(tmp_path / "one", 1, url, objects, **proxy, **{"broker.rack": "a"}).start()
    two = broker(tmp_path / "two", 2, url, objects, **proxy, **{"broker.rack": "b"}).start()
    try:
        leaders = create(one.bootstrap, TOPIC, 4, url)
        on_two = sorted(p for p, node in leaders.items() if node == 2)
        for p in on_two:
            wait_until(lambda p=p: metadata_leader(one.bootstrap, p) == 2, 15, "leaders known")
        acks = Acks(one.bootstrap, **{"client.id": ZONE_A})
        for i in range(RECORDS):
            acks.send(TOPIC, on_two[i % len(on_two)], f"r{i}".encode())
            if i == RECORDS // 3:
                acks.producer.flush(30)
                assert len(acks.acked) > 0
            if i == RECORDS // 2:
                two.kill9()
                two.start()
        acks.flush(120)
        assert not acks.errors
        assert len(acks.acked) == RECORDS
        read = read_back(one.bootstrap, TOPIC, on_two, RECORDS)
        assert read == acks.acked, "a record is missing, duplicated or moved"
        for p in on_two:
            offsets = sorted(offset for (partition, offset) in read if partition == p)
            assert offsets == list(range(len(offsets)))
    finally:
        two.stop()
        one.stop()
