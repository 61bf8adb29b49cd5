"""TxnOffsetCommit v6 (KIP-1319, Apache Kafka 4.4), which names topics by id: a commit
for a known id and an unknown one in the same request (UNKNOWN_TOPIC_ID for the unknown
id's partitions, the ids echoed), the committed offsets after EndTxn, and a generation
for a group that does not exist (GROUP_ID_NOT_FOUND at v6, ILLEGAL_GENERATION at v5)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios.transactions import _init
from conformance.scenarios.transactions_v2 import _end
from conformance.wire import err

TXN_OFFSET_COMMIT = 28
# Answers a client retries: the coordinator is loading, or is not yet the one.
RETRIABLE = {
    14,
    15,
    16,
    51,
}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS
UNSTABLE_OFFSET_COMMIT = 88
RETRY_S = 20.0
UNKNOWN_ID = uuid.UUID("6f1c9a52-0d1e-4b8e-9d2f-2b7c1e5a9d01")


def _partitions(*indexes: int, offset: int) -> list[dict[str, Any]]:
    return [
        {
            "partition_index": index,
            "committed_offset": offset,
            "committed_leader_epoch": -1,
            "committed_metadata": "toc",
        }
        for index in indexes
    ]


def _commit(
    ctx: Ctx,
    client: Any,
    version: int,
    tid: str,
    pid: int,
    epoch: int,
    group: str,
    topics: list[dict[str, Any]],
    generation: int = -1,
) -> dict[str, dict[int, str]]:
    """TxnOffsetCommit, retried while a partition gets a retriable error; the
    answer per topic (id placeholder at v6, name before) and partition."""
    deadline = time.monotonic() + RETRY_S
    while True:
        response = client.request(
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
        codes = {p.error_code for t in response.topics for p in t.partitions}
        if not codes & RETRIABLE or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    answer: dict[str, dict[int, str]] = {}
    for topic in response.topics:
        key = (
            (
                str(topic.topic_id)
                if topic.topic_id == UNKNOWN_ID
                else ctx.ident("uuid", topic.topic_id)
            )
            if version >= 6
            else topic.name
        )
        answer[str(key)] = {p.partition_index: err(p.error_code) for p in topic.partitions}
    return answer


@scenario()
def topic_ids(ctx: Ctx) -> None:
    """A v6 commit by topic id (one unknown id among them), the offsets after EndTxn, and
    the errors for a generation of a group that does not exist at v6 and v5."""
    client = ctx.raw()
    topic, tid, group = "toc-v6", "toc-v6-id", "toc-v6-group"
    created = wire.create_topic(client, topic, 2)
    ctx.record("create", err(created.error_code))
    ctx.check(wire.wait_for_topic(client, topic, 2), "topic ready")
    topic_id = created.topic_id
    wire.find_coordinator(client, tid, key_type=1)
    wire.find_coordinator(client, group)
    init = _init(client, tid)
    pid, epoch = init.producer_id, init.producer_epoch
    ctx.record("init", err(init.error_code))

    topics = [
        {"topic_id": topic_id, "partitions": _partitions(0, 1, offset=3)},
        {"topic_id": UNKNOWN_ID, "partitions": _partitions(0, offset=3)},
    ]
    ctx.record("commit_v6", _commit(ctx, client, 6, tid, pid, epoch, group, topics))
    ended = _end(client, tid, pid, epoch, True)
    ctx.record("end", err(ended.error_code))
    epoch = ended.producer_epoch if ended.producer_epoch >= 0 else epoch

    deadline = time.monotonic() + RETRY_S
    while True:
        fetched = wire.offset_fetch(client, group, {topic: [0, 1]}, require_stable=True)
        unstable = [
            p
            for t in fetched.topics
            for p in t.partitions
            if p.error_code == UNSTABLE_OFFSET_COMMIT
        ]
        if not unstable or time.monotonic() > deadline:
            break  # Kafka completes the transaction's offsets when its marker is written
        time.sleep(0.2)
    ctx.record(
        "committed",
        {
            "error": err(fetched.error_code),
            "offsets": {
                p.partition_index: (p.committed_offset, p.metadata, err(p.error_code))
                for t in fetched.topics
                for p in t.partitions
            },
        },
    )

    absent = "toc-v6-absent-group"
    by_id = [{"topic_id": topic_id, "partitions": _partitions(0, offset=4)}]
    by_name = [{"name": topic, "partitions": _partitions(0, offset=4)}]
    ctx.record(
        "unknown_group_v6",
        _commit(ctx, client, 6, tid, pid, epoch, absent, by_id, generation=3),
    )
    ctx.record(
        "unknown_group_v5",
        _commit(ctx, client, 5, tid, pid, epoch, absent, by_name, generation=3),
    )
