"""A topic created through another broker is served here at once, not a heartbeat later
(RFC 0004 slice 0, broker/topic_lookup.py): two brokers on one PostgreSQL with a 30 s
heartbeat, so nothing here passes by waiting for one, and broker 2's change notifications
(metadata/postgres_listener.py) stopped, so none passes by a notification either.

- broker 2 (in this process, so its lookup counter can be read) starts first and leads
  every `__consumer_offsets` shard; broker 1 joins and, once broker 2 lists it, creates
  a topic; right after, an OffsetCommit for that topic through broker 2 (the group's
  coordinator) succeeds, and so do Metadata and a Produce to a partition broker 2
  names the leader of;
- a flood of unknown topic names in Metadata costs at most the lookup's bounds of store
  reads, and a name found absent is not read again within a heartbeat;
- the same by topic id: right after broker 1 creates a topic, a Fetch v13+ naming it by
  id through broker 2 finds it (one store read; no UNKNOWN_TOPIC_ID), and once broker 2
  has claimed the partitions it leads, returns a record produced to one of them; an id
  no topic has is UNKNOWN_TOPIC_ID, read once within a heartbeat however often asked;
  a topic found by id that an ACL denies is TOPIC_AUTHORIZATION_FAILED (ids are resolved
  before the request is authorized); a flood of random ids costs at most the bounds'
  store reads.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from contextplane.broker import topic_lookup
from tests.support.broker import BrokerProcess
from tests.support.inprocess import InProcessBroker
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

PRODUCE, FETCH, METADATA, OFFSET_COMMIT, CREATE_TOPICS, DESCRIBE_CLUSTER = 0, 1, 3, 8, 19, 60
UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER = 3, 6
TOPIC_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_ID = 29, 100
RETRIABLE = {UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER}
# No handovers at the end: with a 30 s heartbeat and broker 2 deaf they would wait it out.
HEARTBEAT = {
    "broker.heartbeat.interval.ms": "30000",
    "broker.session.timeout.ms": "90000",
    "controlled.shutdown.enable": "false",
}
# ACLs enforced, everything allowed that no ACL names (the clients are anonymous).
AUTHORIZED = {
    **HEARTBEAT,
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}


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


def fetch_by_ids(raw: RawClient, wanted: dict[uuid.UUID, list[int]]) -> dict[Any, Any]:
    """(topic id, partition) -> its Fetch v16 answer (v13+ names topics by id alone)."""
    response = raw.request(
        FETCH,
        16,
        replica_id=-1,
        replica_state={"replica_id": -1, "replica_epoch": -1},
        max_wait=0,
        min_bytes=0,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[{"topic_id": topic_id, "partitions": [
            {"partition": p, "current_leader_epoch": -1, "fetch_offset": 0,
             "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}
            for p in partitions]} for topic_id, partitions in wanted.items()],
        forgotten_topics_data=[],
        rack_id="",
    )  # fmt: skip
    assert [t.topic_id for t in response.responses] == list(wanted)
    return {(t.topic_id, p.partition_index): p for t in response.responses for p in t.partitions}


def fetch_by_id(raw: RawClient, topic_id: uuid.UUID, partitions: list[int]) -> dict[int, Any]:
    """partition -> its Fetch answer, for one topic named by id."""
    return {p: answer for (_, p), answer in fetch_by_ids(raw, {topic_id: partitions}).items()}


def two_brokers(
    tmp_path: Path, url: str, settings: dict[str, str] = HEARTBEAT
) -> tuple[InProcessBroker, BrokerProcess]:
    """Broker 2 in this process, started first, and broker 1 in its own (not started)."""
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    two = InProcessBroker(
        tmp_path / "two",
        {"node.id": "2", "metadata.url": url, **settings},
        object_store=objects,
    ).start()
    one = BrokerProcess(
        tmp_path / "one",
        metadata_url=url,
        object_store=objects,
        settings={"node.id": "1", **settings},
    )
    return two, one


def started_lookup(one: BrokerProcess, two: InProcessBroker) -> topic_lookup.TopicLookup:
    """Start broker 1 and wait until broker 2 lists it; broker 2's topic lookup."""
    one.start()
    wait_until(lambda: listed(two.bootstrap) == [1, 2], 15, "broker 2 lists broker 1")
    assert two.broker is not None and two.broker.topics is not None
    lookup = two.broker.topics.lookup
    assert lookup is not None
    return lookup


def deaf(two: InProcessBroker) -> None:
    """Broker 2 hears of no change by notification (as while its LISTEN connection is
    down): only the lookup can bring a topic in before the heartbeat."""
    listener = two.broker.registry.listener if two.broker.registry is not None else None
    assert listener is not None
    two.call(listener.stop())


def test_a_topic_created_on_another_broker_is_served_before_the_next_heartbeat(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    two, one = two_brokers(tmp_path, postgres_server.create_database())
    try:
        lookup = started_lookup(one, two)
        before = lookup.lookups
        deaf(two)

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
            # Each found absent a moment ago (not always the first `read` names: a token
            # refilled while the rest were refused reads a later one).
            absent = [name for name in names if name in lookup._absent]
            assert len(absent) == read
            metadata(raw, absent)
            assert lookup.lookups - before == read
            for _ in range(3):
                assert {e for e, _ in metadata(raw, names).values()} == {3}
        elapsed = time.monotonic() - started
        assert lookup.lookups - before <= topic_lookup.RATE_PER_S * (elapsed + 1)
    finally:
        one.stop()
        two.stop()


def test_a_topic_created_on_another_broker_is_fetched_by_id_before_the_next_heartbeat(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    two, one = two_brokers(tmp_path, postgres_server.create_database(), AUTHORIZED)
    try:
        lookup = started_lookup(one, two)
        # Through broker 2, so it enforces the ACL before it hears of anything else.
        admin = AdminClient({"bootstrap.servers": two.bootstrap})
        denial = AclBinding(
            ResourceType.TOPIC,
            "denied",
            ResourcePatternType.LITERAL,
            "User:ANONYMOUS",
            "*",
            AclOperation.READ,
            AclPermissionType.DENY,
        )
        assert two.broker is not None and two.broker.registry is not None
        registry = two.broker.registry
        seen = registry.security_generation
        for future in admin.create_acls([denial]).values():
            future.result(20)
        # The heartbeat the ACL's notification woke has read the generations: no woken
        # heartbeat is still to come (it would see the topic created next).
        wait_until(lambda: registry.security_generation > seen, 15, "the ACL's change read")
        deaf(two)

        with RawClient(one.bootstrap) as raw:
            created = raw.request(
                CREATE_TOPICS,
                7,
                topics=[{"name": name, "num_partitions": 4, "replication_factor": 1,
                         "assignments": [], "configs": []} for name in ("by-id", "denied")],
                timeout_ms=30_000,
                validate_only=False,
            )  # fmt: skip
        assert [t.error_code for t in created.topics] == [0, 0]
        topic_id, denied_id = (t.topic_id for t in created.topics)
        partitions = [0, 1, 2, 3]

        # Known at once (the store was read for it): no UNKNOWN_TOPIC_ID; a partition is
        # served here, led elsewhere, or (for the moment its leader takes to open it)
        # UNKNOWN_TOPIC_OR_PARTITION, as by name. (Under load broker 2 sometimes holds
        # the topics before the Fetch, by a path not pinned down: then no read is owed.)
        assert two.broker is not None and two.broker.topics is not None
        table = two.broker.topics
        before = lookup.lookups
        owed = 0 if table.by_id(topic_id.bytes) is not None else 1
        with RawClient(two.bootstrap) as raw:
            answered = fetch_by_id(raw, topic_id, partitions)
        assert lookup.lookups == before + owed
        assert {p.error_code for p in answered.values()} <= RETRIABLE | {0}

        # The ids are resolved before the request is authorized: a topic found by its id
        # is denied as any other.
        before = lookup.lookups
        owed = 0 if table.by_id(denied_id.bytes) is not None else 1
        with RawClient(two.bootstrap) as raw:
            refused = fetch_by_id(raw, denied_id, partitions)
        assert lookup.lookups == before + owed
        assert {p.error_code for p in refused.values()} == {TOPIC_AUTHORIZATION_FAILED}

        # A record produced to a partition broker 2 leads comes back by id, once broker 2
        # has claimed it (its reconciler, woken by the topic found).
        taken: list[int] = []

        def produced() -> bool:
            with RawClient(two.bootstrap) as raw:
                response = raw.request(
                    PRODUCE,
                    13,
                    transactional_id=None,
                    acks=-1,
                    timeout_ms=30_000,
                    topic_data=[{"topic_id": topic_id, "partition_data": [
                        {"index": p, "records": record_batch([b"fetched-by-id"])}
                        for p in partitions]}],
                )  # fmt: skip
            codes = {
                p.index: p.error_code for t in response.responses for p in t.partition_responses
            }
            assert set(codes.values()) <= RETRIABLE | {0}
            taken.extend(p for p, code in codes.items() if code == 0)
            return bool(taken)

        wait_until(produced, 15, "broker 2 takes a record for a partition it leads")
        partition = taken[0]
        with RawClient(two.bootstrap) as raw:
            fetched = fetch_by_id(raw, topic_id, [partition])[partition]
        assert fetched.error_code == 0 and fetched.high_watermark == 1
        assert b"fetched-by-id" in bytes(fetched.records)

        # An id no topic has: UNKNOWN_TOPIC_ID, one store read, then remembered absent.
        nobody = uuid.uuid4()
        before = lookup.lookups
        with RawClient(two.bootstrap) as raw:
            for _ in range(3):
                assert fetch_by_id(raw, nobody, [0])[0].error_code == UNKNOWN_TOPIC_ID
        assert lookup.lookups == before + 1

        # A flood of random ids costs at most the bounds' store reads (shared with
        # names), each id read once within a heartbeat however often it is asked for.
        flood = {uuid.uuid4(): [0] for _ in range(2_000)}
        before = lookup.lookups
        started = time.monotonic()
        with RawClient(two.bootstrap) as raw:
            for _ in range(3):
                answers = fetch_by_ids(raw, flood)
                assert {p.error_code for p in answers.values()} == {UNKNOWN_TOPIC_ID}
            read = lookup.lookups - before
            assert read > 0
            absent = {i: [0] for i in flood if i.bytes in lookup._absent}  # just now
            assert len(absent) == read
            fetch_by_ids(raw, absent)
            assert lookup.lookups - before == read
        elapsed = time.monotonic() - started
        assert read <= topic_lookup.RATE_PER_S * (elapsed + 1)
    finally:
        one.stop()
        two.stop()
