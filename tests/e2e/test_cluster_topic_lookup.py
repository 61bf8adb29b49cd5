"""A topic created through another broker is served here at once, not a heartbeat later
(RFC 0004 slice 0, broker/topic_lookup.py): two brokers on one PostgreSQL with a 5 s
heartbeat, so nothing here passes by waiting for one, and broker 2's change notifications
(metadata/postgres_listener.py) stopped, so none passes by a notification either.

- broker 2 (in this process, so its lookup counter can be read) starts first and leads
  every `__consumer_offsets` shard; broker 1 joins and, once broker 2 lists it, creates
  a topic; right after, an OffsetCommit for that topic through broker 2 (the group's
  coordinator) succeeds, and so do Metadata and a Produce to a partition broker 2
  names the leader of;
- a flood of unknown topic names in Metadata costs at most the lookup's bounds of store
  reads, and a name found absent is not read again within a heartbeat.
"""

from __future__ import annotations

import time
from pathlib import Path

from contextplane.broker import topic_lookup
from tests.support.broker import BrokerProcess
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

PRODUCE, METADATA, OFFSET_COMMIT, CREATE_TOPICS, DESCRIBE_CLUSTER = 0, 3, 8, 19, 60
HEARTBEAT = {"broker.heartbeat.interval.ms": "5000", "broker.session.timeout.ms": "20000"}


def listed(bootstrap: str) -> list[int]:
    with RawClient(bootstrap) as raw:
        cluster = raw.request(DESCRIBE_CLUSTER, 1, include_cluster_authorized_operations=False)
    return sorted(b.broker_id for b in cluster.brokers)


def metadata(raw: RawClient, names: list[str]) -> dict[str, tuple[int, dict[int, int]]]:
    """name -> (error code, partition -> leader) as the broker answers."""
    response = raw.request(
        METADATA, 12, topics=[{"name": n} for n in names], allow_auto_topic_creation=False
    )
    return {
        t.name: (t.error_code, {p.partition_index: p.leader_id for p in t.partitions})
        for t in response.topics
    }


def test_a_topic_created_on_another_broker_is_served_before_the_next_heartbeat(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    two = InProcessBroker(
        tmp_path / "two",
        {"node.id": "2", "metadata.url": url, **HEARTBEAT},
        object_store=objects,
    ).start()
    one = BrokerProcess(
        tmp_path / "one",
        metadata_url=url,
        object_store=objects,
        settings={"node.id": "1", **HEARTBEAT},
    )
    try:
        one.start()
        wait_until(lambda: listed(two.bootstrap) == [1, 2], 15, "broker 2 lists broker 1")
        assert two.broker is not None and two.broker.topics is not None
        lookup = two.broker.topics.lookup
        assert lookup is not None
        before = lookup.lookups
        # Broker 2 hears of no change by notification (as while its LISTEN connection is
        # down): only the lookup can bring the topic in before the heartbeat.
        listener = two.broker.registry.listener if two.broker.registry is not None else None
        assert listener is not None
        two.call(listener.stop())

        with RawClient(one.bootstrap) as raw:
            created = raw.request(
                CREATE_TOPICS,
                4,
                topics=[{"name": "fresh", "num_partitions": 2, "replication_factor": 1,
                         "assignments": [], "configs": []}],
                timeout_ms=30_000,
                validate_only=False,
            )  # fmt: skip
        assert [t.error_code for t in created.topics] == [0]
        with RawClient(two.bootstrap) as raw:
            committed = raw.request(
                OFFSET_COMMIT,
                8,
                group_id="simple",  # broker 2 coordinates every group: it leads all shards
                generation_id_or_member_epoch=-1,
                member_id="",
                group_instance_id=None,
                topics=[{"name": "fresh", "partitions": [
                    {"partition_index": 0, "committed_offset": 7,
                     "committed_leader_epoch": -1, "committed_metadata": ""}]}],
            )  # fmt: skip
            assert [p.error_code for t in committed.topics for p in t.partitions] == [0]
            # The store was read for it: no heartbeat brought the topic in meanwhile.
            assert lookup.lookups == before + 1
            error, leaders = metadata(raw, ["fresh"])["fresh"]
            assert error == 0 and sorted(leaders) == [0, 1]

        # A Produce to a partition through the broker Metadata names its leader.
        with RawClient(one.bootstrap) as raw:
            one_leads = metadata(raw, ["fresh"])["fresh"][1]
        partition, leader = min(one_leads.items())
        target = one if leader == 1 else two
        with RawClient(target.bootstrap) as raw:
            produced = raw.request(
                PRODUCE,
                9,
                transactional_id=None,
                acks=-1,
                timeout_ms=30_000,
                topic_data=[{"name": "fresh", "partition_data": [
                    {"index": partition, "records": record_batch([b"v"])}]}],
            )  # fmt: skip
        assert [p.error_code for t in produced.responses for p in t.partition_responses] == [0]

        # A flood of unknown names: at most the bounds' store reads, each name read once
        # within a heartbeat however often it is asked for.
        names = [f"nothing-{n}" for n in range(2_000)]
        before = lookup.lookups
        started = time.monotonic()
        with RawClient(two.bootstrap) as raw:
            assert {e for e, _ in metadata(raw, names).values()} == {
                3
            }  # UNKNOWN_TOPIC_OR_PARTITION
            read = lookup.lookups - before
            assert read > 0
            metadata(raw, names[:read])  # each found absent a moment ago
            assert lookup.lookups - before == read
            for _ in range(3):
                assert {e for e, _ in metadata(raw, names).values()} == {3}
        elapsed = time.monotonic() - started
        assert lookup.lookups - before <= topic_lookup.RATE_PER_S * (elapsed + 1)
    finally:
        one.stop()
        two.stop()
