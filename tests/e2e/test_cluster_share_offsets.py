"""DescribeShareGroupOffsets on two brokers: the share group's coordinator answers each
partition's lag from its high watermark, asked of the partition's leader (ListOffsets
over the inter-broker client, as Kafka's group coordinator) when another broker leads it."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer

from tests.e2e.test_cluster_failover import broker, create, fixture
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient

FIND_COORDINATOR, DESCRIBE_OFFSETS, ALTER_OFFSETS = 10, 90, 91
GROUP_KEY = 0
RECORDS, START = 10, 3


def test_lag_of_partitions_led_by_another_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects).start()
    try:
        leaders = create(one.bootstrap, "ledger", 4, url)
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all"})
        for partition in leaders:
            for i in range(RECORDS):
                producer.produce("ledger", value=f"{partition}-{i}".encode(), partition=partition)
        assert producer.flush(30) == 0
        with RawClient(one.bootstrap) as raw:
            found = raw.request(FIND_COORDINATOR, 3, key="auditors", key_type=GROUP_KEY)
        assert found.error_code == 0
        coordinator = {1: one, 2: two}[int(found.node_id)]
        partitions = sorted(leaders)
        with RawClient(coordinator.bootstrap) as raw:
            altered = raw.request(
                ALTER_OFFSETS,
                0,
                group_id="auditors",
                topics=[
                    {
                        "topic_name": "ledger",
                        "partitions": [
                            {"partition_index": p, "start_offset": START} for p in partitions
                        ],
                    }
                ],
            )
            assert altered.error_code == 0
            described = raw.request(
                DESCRIBE_OFFSETS,
                1,
                groups=[
                    {
                        "group_id": "auditors",
                        "topics": [{"topic_name": "ledger", "partitions": partitions}],
                    }
                ],
            )
        [group] = described.groups
        assert group.error_code == 0
        answers = {
            p.partition_index: (int(p.error_code), p.start_offset, p.lag)
            for t in group.topics
            for p in t.partitions
        }
        # Partitions led by the coordinator and by the other broker (`create` checks both).
        assert answers == dict.fromkeys(partitions, (0, START, RECORDS - START))
    finally:
        two.stop()
        one.stop()
