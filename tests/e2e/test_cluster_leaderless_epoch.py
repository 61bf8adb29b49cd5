"""A partition without a live leader keeps its leader epoch in Metadata and
DescribeTopicPartitions, as Kafka lists it: leader -1 beside the stored epoch, never
-1 (clients compare the epoch with the one they know to tell stale metadata apart); a
Produce there is NOT_LEADER_OR_FOLLOWER naming the same (KIP-951's current leader).

Two broker processes on one PostgreSQL. Broker 2 uploads nothing by itself, so what it
acknowledges stays in its WAL; it is restarted once in place (its partitions reopened at
the next epoch, so the epoch listed is not the first one by chance), written to, and killed -9.
Its written partitions are then dirty: offline, not claimed by broker 1, for as long as
the test asks broker 1 about them (test_cluster_failover.py checks they stay so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.wire import Rec, encode_batch
from tests.e2e.test_cluster_failover import (
    LEADER_NOT_AVAILABLE,
    Acks,
    broker,
    broker_state,
    create,
    fixture,
    metadata_partitions,
    stored,
)
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

DESCRIBE_TOPIC_PARTITIONS = 75
PRODUCE, NOT_LEADER_OR_FOLLOWER = 0, 6
TOPIC = "le"


def described(bootstrap: str) -> list[Any]:
    """TOPIC's partitions as the broker at `bootstrap` answers DescribeTopicPartitions v0."""
    with RawClient(bootstrap) as raw:
        answer = raw.request(
            DESCRIBE_TOPIC_PARTITIONS,
            0,
            topics=[{"name": TOPIC}],
            response_partition_limit=2000,
            cursor=None,
        )
    (topic,) = answer.topics
    return list(topic.partitions)


def produced(bootstrap: str, partition: int) -> Any:
    """One record to TOPIC's `partition` with Produce v11; that partition's answer."""
    with RawClient(bootstrap) as raw:
        answer = raw.request(
            PRODUCE, 11, transactional_id=None, acks=-1, timeout=5_000,
            topic_data=[{"name": TOPIC, "partition_data": [
                {"index": partition, "records": encode_batch([Rec(b"x")])}]}],
        )  # fmt: skip
    return answer.responses[0].partition_responses[0]


def listed(partitions: list[Any]) -> dict[int, tuple[int, int, int]]:
    """partition -> (leader id, leader epoch, error code)."""
    return {p.partition_index: (p.leader_id, p.leader_epoch, p.error_code) for p in partitions}


def test_a_partition_whose_leader_is_gone_is_listed_with_its_stored_epoch(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(
        tmp_path / "two", 2, url, objects,
        **{
            "upload.interval.ms": "3600000",
            "upload.bytes": "1000000000",
            "controlled.shutdown.enable": "false",  # a stop hands nothing over
        },
    ).start()  # fmt: skip
    try:
        leaders = create(one.bootstrap, TOPIC, 8, url)
        on_two = sorted(p for p, leader in leaders.items() if leader == 2)
        # Restarted in place: its partitions reopened there at the next epoch.
        two.stop()
        two.start()
        wait_until(
            lambda: all(stored(url, TOPIC)[p]["leader"] == 2 for p in on_two),
            30,
            "broker 2 leads its partitions again",
        )
        rows = stored(url, TOPIC)
        epochs = {p: rows[p]["epoch"] for p in on_two}
        assert all(epoch > 1 for epoch in epochs.values()), epochs
        wait_until(
            lambda: all(
                listed(metadata_partitions(one.bootstrap, TOPIC))[p] == (2, epochs[p], 0)
                for p in on_two
            ),
            15,
            "broker 1 lists broker 2 leading at the new epochs",
        )
        acks = Acks(one.bootstrap)
        for i in range(10 * len(on_two)):
            acks.send(TOPIC, on_two[i % len(on_two)], f"r{i}".encode())
        acks.flush()
        rows = stored(url, TOPIC)
        assert all(rows[p]["dirty"] == epochs[p] for p in on_two), rows

        two.kill9()
        wait_until(lambda: broker_state(url, 2) == "expired", 30, "broker 2's lease lapsed")
        wait_until(
            lambda: all(
                listed(metadata_partitions(one.bootstrap, TOPIC))[p][0] == -1 for p in on_two
            ),
            15,
            "broker 1 lists broker 2's partitions without a leader",
        )
        rows = stored(url, TOPIC)
        for p in on_two:  # offline: still broker 2's at its epoch, not led elsewhere
            assert (rows[p]["leader"], rows[p]["epoch"]) == (2, epochs[p]), rows[p]
        # Metadata v12: LEADER_NOT_AVAILABLE, no leader, the stored epoch.
        metadata = listed(metadata_partitions(one.bootstrap, TOPIC))
        # DescribeTopicPartitions: the same leader and epoch, and no partition error.
        describe = listed(described(one.bootstrap))
        for p in on_two:
            assert metadata[p] == (-1, epochs[p], LEADER_NOT_AVAILABLE), (p, metadata[p])
            assert describe[p] == (-1, epochs[p], 0), (p, describe[p])
        for p in set(range(8)) - set(on_two):  # broker 1's own, unaffected
            assert metadata[p] == describe[p] == (1, rows[p]["epoch"], 0), (p, metadata[p])
        # A Produce there (KIP-951): NOT_LEADER_OR_FOLLOWER naming no leader at that epoch.
        for p in on_two:
            answer = produced(one.bootstrap, p)
            assert answer.error_code == NOT_LEADER_OR_FOLLOWER, answer
            leader = answer.current_leader
            assert (leader.leader_id, leader.leader_epoch) == (-1, epochs[p]), (p, leader)
    finally:
        one.stop()
        two.stop()
