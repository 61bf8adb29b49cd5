"""The transaction APIs at the versions Apache Kafka 4.4 advertises, on the wire.

AddPartitionsToTxn v4-5 is the brokers' batched form: several transactions per request,
VerifyOnly answering per partition whether it is already in the transaction (NONE, or
TRANSACTION_ABORTABLE) without adding it, the producer's errors for every partition,
and CLUSTER_ACTION on the cluster instead of the client's ACLs. TxnOffsetCommit v6
(KIP-1319) names topics by id: an unknown id is UNKNOWN_TOPIC_ID for its partitions,
the response echoes the ids, and a generation for an unknown group is
GROUP_ID_NOT_FOUND (ILLEGAL_GENERATION before v6)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

CREATE_TOPICS, INIT_PRODUCER_ID, ADD_PARTITIONS, END_TXN = 19, 22, 24, 26
TXN_OFFSET_COMMIT, OFFSET_FETCH, CREATE_ACLS, DESCRIBE_ACLS = 28, 9, 30, 29
ADD_OFFSETS = 25
TIMEOUT_S = 30  # liveness bound


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("txnversions") / "broker"
    running = InProcessBroker(data, settings={"group.initial.rebalance.delay.ms": "0"}).start()
    yield running
    running.stop()


@pytest.fixture
def client(broker: InProcessBroker) -> Iterator[RawClient]:
    with RawClient(broker.bootstrap) as raw:
        yield raw


def create_topic(client: RawClient, partitions: int = 2) -> tuple[str, uuid.UUID]:
    name = f"tv-{uuid.uuid4().hex[:8]}"
    created = client.request(
        CREATE_TOPICS,
        7,
        topics=[
            {
                "name": name,
                "num_partitions": partitions,
                "replication_factor": 1,
                "assignments": [],
                "configs": [],
            }
        ],
        timeout=5000,
        validate_only=False,
    )
    assert created.topics[0].error_code == ErrorCode.none
    return name, created.topics[0].topic_id


def init_producer(client: RawClient, tid: str) -> tuple[int, int]:
    answer = client.request(
        INIT_PRODUCER_ID,
        5,
        transactional_id=tid,
        transaction_timeout=60000,
        producer_id=-1,
        producer_epoch=-1,
    )
    assert answer.error_code == ErrorCode.none
    return answer.producer_id, answer.producer_epoch


def add_v3(client: RawClient, tid: str, pid: int, epoch: int, topic: str, *parts: int) -> None:
    answer = client.request(
        ADD_PARTITIONS,
        3,
        v3_and_below_transactional_id=tid,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[{"name": topic, "partitions": list(parts)}],
    )
    codes = {
        p.partition_error_code
        for t in answer.results_by_topic_v3_and_below
        for p in t.results_by_partition
    }
    assert codes == {ErrorCode.none}


def transaction(
    tid: str, pid: int, epoch: int, verify_only: bool, topics: dict[str, list[int]]
) -> dict[str, Any]:
    return {
        "transactional_id": tid,
        "producer_id": pid,
        "producer_epoch": epoch,
        "verify_only": verify_only,
        "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
    }


def batch(client: RawClient, version: int, *transactions: dict[str, Any]) -> Any:
    return client.request(ADD_PARTITIONS, version, transactions=list(transactions))


def by_partition(result: Any) -> dict[tuple[str, int], ErrorCode]:
    return {
        (topic.name, p.partition_index): p.partition_error_code
        for topic in result.topic_results
        for p in topic.results_by_partition
    }


def results(answer: Any) -> dict[str, dict[tuple[str, int], ErrorCode]]:
    assert answer.error_code == ErrorCode.none
    return {r.transactional_id: by_partition(r) for r in answer.results_by_transaction}


@pytest.mark.parametrize("version", [4, 5])
def test_verify_only_answers_per_partition_without_adding(client: RawClient, version: int) -> None:
    topic, _ = create_topic(client)
    tid = f"verify-{uuid.uuid4().hex[:6]}"
    pid, epoch = init_producer(client, tid)
    add_v3(client, tid, pid, epoch, topic, 0)
    verify = transaction(tid, pid, epoch, True, {topic: [0, 1]})
    expected = {(topic, 0): ErrorCode.none, (topic, 1): ErrorCode.transaction_abortable}
    assert results(batch(client, version, verify)) == {tid: expected}
    # Verifying added nothing: partition 1 is still not in the transaction.
    assert results(batch(client, version, verify)) == {tid: expected}


@pytest.mark.parametrize("version", [4, 5])
def test_batch_adds_partitions_of_several_transactions(client: RawClient, version: int) -> None:
    topic, _ = create_topic(client)
    first, second = (f"batch-{uuid.uuid4().hex[:6]}" for _ in range(2))
    pid1, epoch1 = init_producer(client, first)
    pid2, epoch2 = init_producer(client, second)
    added = batch(
        client,
        version,
        transaction(first, pid1, epoch1, False, {topic: [0]}),
        transaction(second, pid2, epoch2, False, {topic: [0, 1]}),
    )
    assert results(added) == {
        first: {(topic, 0): ErrorCode.none},
        second: {(topic, 0): ErrorCode.none, (topic, 1): ErrorCode.none},
    }
    verified = batch(client, version, transaction(first, pid1, epoch1, True, {topic: [0, 1]}))
    assert results(verified) == {
        first: {(topic, 0): ErrorCode.none, (topic, 1): ErrorCode.transaction_abortable}
    }
    for tid, pid, epoch in ((first, pid1, epoch1), (second, pid2, epoch2)):
        ended = client.request(
            END_TXN, 4, transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=False
        )
        assert ended.error_code == ErrorCode.none


def test_producer_errors_answer_every_partition(client: RawClient) -> None:
    topic, _ = create_topic(client)
    tid = f"errors-{uuid.uuid4().hex[:6]}"
    pid, epoch = init_producer(client, tid)
    parts = {topic: [0, 1]}
    answer = batch(
        client,
        4,
        transaction(tid, pid, epoch + 1, True, parts),  # an epoch not the current one
        transaction("never-initialised", 12345, 0, True, parts),
        transaction("", pid, epoch, True, parts),
    )
    fenced = dict.fromkeys([(topic, 0), (topic, 1)], ErrorCode.producer_fenced)
    unmapped = dict.fromkeys(fenced, ErrorCode.invalid_producer_id_mapping)
    invalid = dict.fromkeys(fenced, ErrorCode.invalid_request)
    assert results(answer) == {tid: fenced, "never-initialised": unmapped, "": invalid}
    added = batch(client, 5, transaction(tid, pid, epoch + 1, False, parts))
    assert results(added) == {tid: fenced}


def test_unknown_partition_fails_its_transaction_only(client: RawClient) -> None:
    topic, _ = create_topic(client)
    bad, good = (f"unknown-{uuid.uuid4().hex[:6]}" for _ in range(2))
    pid1, epoch1 = init_producer(client, bad)
    pid2, epoch2 = init_producer(client, good)
    answer = batch(
        client,
        5,
        transaction(bad, pid1, epoch1, False, {topic: [0, 7], "no-such-topic": [0]}),
        transaction(good, pid2, epoch2, False, {topic: [1]}),
    )
    assert results(answer) == {
        bad: {
            (topic, 0): ErrorCode.operation_not_attempted,
            (topic, 7): ErrorCode.unknown_topic_or_partition,
            ("no-such-topic", 0): ErrorCode.unknown_topic_or_partition,
        },
        good: {(topic, 1): ErrorCode.none},
    }
    # The failed transaction added nothing.
    verified = batch(client, 4, transaction(bad, pid1, epoch1, True, {topic: [0]}))
    assert results(verified) == {bad: {(topic, 0): ErrorCode.transaction_abortable}}


def test_repeated_transactional_ids_keep_kafkas_answer_within_a_bound(client: RawClient) -> None:
    """Kafka answers each entry with the partitions of every entry of its id; answers
    naming more than 10,000 partitions in all (n entries of one id cost n² of them) are
    refused whole rather than computed."""
    topic, _ = create_topic(client)
    tid = f"repeat-{uuid.uuid4().hex[:6]}"
    pid, epoch = init_producer(client, tid)
    entries = [transaction(tid, pid, epoch, False, {topic: [p]}) for p in (0, 1, 1)]
    answer = batch(client, 5, *entries)
    assert answer.error_code == ErrorCode.none
    both = {(topic, 0): ErrorCode.none, (topic, 1): ErrorCode.none}
    assert [by_partition(r) for r in answer.results_by_transaction] == [both, both, both]
    flood = [transaction(tid, pid, epoch, True, {topic: list(range(60))})] * 200
    refused = batch(client, 4, *flood)
    assert refused.error_code == ErrorCode.invalid_request
    assert list(refused.results_by_transaction) == []


def offsets_entry(topic_id: uuid.UUID, *parts: int, offset: int = 5) -> dict[str, Any]:
    return {
        "topic_id": topic_id,
        "partitions": [
            {
                "partition_index": p,
                "committed_offset": offset,
                "committed_leader_epoch": -1,
                "committed_metadata": "m",
            }
            for p in parts
        ],
    }


def txn_offset_commit(
    client: RawClient,
    version: int,
    tid: str,
    pid: int,
    epoch: int,
    group: str,
    topics: list[dict[str, Any]],
    generation: int = -1,
) -> dict[Any, dict[int, ErrorCode]]:
    answer = client.request(
        TXN_OFFSET_COMMIT,
        version,
        transactional_id=tid,
        group_id=group,
        producer_id=pid,
        producer_epoch=epoch,
        generation_id=generation,
        member_id="",
        group_instance_id=None,
        topics=topics,
    )
    key = "topic_id" if version >= 6 else "name"
    return {
        getattr(t, key): {p.partition_index: p.error_code for p in t.partitions}
        for t in answer.topics
    }


def test_txn_offset_commit_v6_commits_by_topic_id(client: RawClient) -> None:
    topic, topic_id = create_topic(client)
    tid, group = f"toc-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    pid, epoch = init_producer(client, tid)
    unknown = uuid.uuid4()
    answer = txn_offset_commit(
        client,
        6,
        tid,
        pid,
        epoch,
        group,
        [offsets_entry(topic_id, 0, 1, offset=7), offsets_entry(unknown, 0)],
    )
    assert answer == {
        topic_id: {0: ErrorCode.none, 1: ErrorCode.none},
        unknown: {0: ErrorCode.unknown_topic_id},
    }
    # v6 added the group to the transaction (as v5 does): the commit makes them visible.
    ended = client.request(
        END_TXN, 5, transactional_id=tid, producer_id=pid, producer_epoch=epoch, committed=True
    )
    assert ended.error_code == ErrorCode.none

    def committed() -> dict[int, int] | None:
        fetched = client.request(
            OFFSET_FETCH,
            7,
            group_id=group,
            topics=[{"name": topic, "partition_indexes": [0, 1]}],
            require_stable=True,
        )
        found = {p.partition_index: p.committed_offset for p in fetched.topics[0].partitions}
        return found if found == {0: 7, 1: 7} else None

    wait_until(committed, TIMEOUT_S, "the transaction's offsets are committed")


@pytest.mark.parametrize("version", [3, 6])
def test_txn_offset_commit_metadata_above_the_bound_is_refused_per_partition(
    client: RawClient, version: int
) -> None:
    """offset.metadata.max.bytes (4096) holds for TxnOffsetCommit as for OffsetCommit."""
    topic, topic_id = create_topic(client)
    tid, group = f"meta-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    pid, epoch = init_producer(client, tid)
    if version < 5:
        added = client.request(
            ADD_OFFSETS, 3, transactional_id=tid, producer_id=pid, producer_epoch=epoch,
            group_id=group,
        )  # fmt: skip
        assert added.error_code == ErrorCode.none
    entry = offsets_entry(topic_id, 0, 1)
    entry["partitions"][1]["committed_metadata"] = "x" * 4097
    if version < 6:
        entry = {"name": topic, "partitions": entry["partitions"]}
    answer = txn_offset_commit(client, version, tid, pid, epoch, group, [entry])
    key = topic_id if version >= 6 else topic
    assert answer == {key: {0: ErrorCode.none, 1: ErrorCode.offset_metadata_too_large}}


@pytest.mark.parametrize(
    ("version", "expected"),
    [(6, ErrorCode.group_id_not_found), (5, ErrorCode.illegal_generation)],
)
def test_generation_for_an_unknown_group(
    client: RawClient, version: int, expected: ErrorCode
) -> None:
    topic, topic_id = create_topic(client)
    tid, group = f"gen-{uuid.uuid4().hex[:6]}", f"absent-{uuid.uuid4().hex[:6]}"
    pid, epoch = init_producer(client, tid)
    entry = (
        offsets_entry(topic_id, 0)
        if version >= 6
        else {**offsets_entry(topic_id, 0), "name": topic}
    )
    answer = txn_offset_commit(client, version, tid, pid, epoch, group, [entry], generation=3)
    key = topic_id if version >= 6 else topic
    assert answer == {key: {0: expected}}


def acl(resource_type: int, name: str, operation: int) -> dict[str, Any]:
    return {
        "resource_type": resource_type,
        "resource_name": name,
        "resource_pattern_type": 3,  # LITERAL
        "principal": "User:ANONYMOUS",
        "host": "*",
        "operation": operation,
        "permission_type": 2,  # DENY
    }


TOPIC_TYPE, GROUP_TYPE, CLUSTER_TYPE, TXN_TYPE = 2, 3, 4, 5
READ, WRITE, CLUSTER_ACTION = 3, 4, 10


def test_authorized_as_kafka(tmp_path: Path) -> None:
    """CLUSTER_ACTION refused: AddPartitionsToTxn v4-5 gets the top-level
    CLUSTER_AUTHORIZATION_FAILED and no results, v3 (the client's form) is unaffected.
    TxnOffsetCommit v6 answers READ refusals per topic id (an unknown id is
    UNKNOWN_TOPIC_ID whatever the ACLs), and a refused group or transactional id for every
    topic id."""
    settings = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        with RawClient(running.bootstrap) as client:
            topic, topic_id = create_topic(client)
            denied_topic, denied_id = create_topic(client)
            tid = f"authz-{uuid.uuid4().hex[:6]}"
            pid, epoch = init_producer(client, tid)
            created = client.request(
                CREATE_ACLS,
                3,
                creations=[
                    acl(CLUSTER_TYPE, "kafka-cluster", CLUSTER_ACTION),
                    acl(TOPIC_TYPE, denied_topic, READ),
                    acl(GROUP_TYPE, "denied-group", READ),
                    acl(TXN_TYPE, "denied-tid", WRITE),
                ],
            )
            assert {r.error_code for r in created.results} == {ErrorCode.none}
            for version in (4, 5):
                answer = batch(client, version, transaction(tid, pid, epoch, True, {topic: [0]}))
                assert answer.error_code == ErrorCode.cluster_authorization_failed
                assert list(answer.results_by_transaction) == []
            add_v3(client, tid, pid, epoch, topic, 0)

            unknown = uuid.uuid4()
            topics = [
                offsets_entry(topic_id, 0),
                offsets_entry(denied_id, 0),
                offsets_entry(unknown, 1),
            ]
            answer = txn_offset_commit(client, 6, tid, pid, epoch, "open-group", topics)
            assert answer == {
                topic_id: {0: ErrorCode.none},
                denied_id: {0: ErrorCode.topic_authorization_failed},
                unknown: {1: ErrorCode.unknown_topic_id},
            }
            answer = txn_offset_commit(client, 6, tid, pid, epoch, "denied-group", topics)
            assert answer == {
                t: {p: ErrorCode.group_authorization_failed for p in parts}
                for t, parts in ((topic_id, [0]), (denied_id, [0]), (unknown, [1]))
            }
            answer = txn_offset_commit(client, 6, "denied-tid", pid, epoch, "open-group", topics)
            assert answer == {
                t: {p: ErrorCode.transactional_id_authorization_failed for p in parts}
                for t, parts in ((topic_id, [0]), (denied_id, [0]), (unknown, [1]))
            }
    finally:
        running.stop()
