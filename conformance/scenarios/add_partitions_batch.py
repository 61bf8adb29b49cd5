"""AddPartitionsToTxn v4-5, the brokers' batched form (KIP-890), against Apache Kafka
4.4 (no authorizer, so CLUSTER_ACTION is granted): VerifyOnly per partition for several
transactions in one request (in the transaction, not in it, an unknown transactional
id, a fenced epoch), an add through v5, and an unknown partition failing only its own
transaction."""

from __future__ import annotations

from typing import Any

from conformance import wire
from conformance.scenarios import Ctx, scenario
from conformance.scenarios.transactions import _add_partitions, _init
from conformance.wire import err

ADD_PARTITIONS_TO_TXN = 24


def _txn(tid: str, pid: int, epoch: int, verify: bool, parts: dict[str, list[int]]) -> Any:
    return {
        "transactional_id": tid,
        "producer_id": pid,
        "producer_epoch": epoch,
        "verify_only": verify,
        "topics": [{"name": name, "partitions": indexes} for name, indexes in parts.items()],
    }


def _batch(client: Any, version: int, *transactions: dict[str, Any]) -> dict[str, Any]:
    response = client.request(ADD_PARTITIONS_TO_TXN, version, transactions=list(transactions))
    return {
        "error": err(response.error_code),
        "results": {
            result.transactional_id: {
                f"{topic.name}-{p.partition_index}": err(p.partition_error_code)
                for topic in result.topic_results
                for p in topic.results_by_partition
            }
            for result in response.results_by_transaction
        },
    }


@scenario()
def verify_and_add(ctx: Ctx) -> None:
    """Batches of verifications and adds, and what each transaction answers."""
    client = ctx.raw()
    topic, first, second = "apt-batch", "apt-batch-1", "apt-batch-2"
    ctx.record("create", err(wire.create_topic(client, topic, 2).error_code))
    ctx.check(wire.wait_for_topic(client, topic, 2), "topic ready")
    for tid in (first, second):
        wire.find_coordinator(client, tid, key_type=1)
    one, two = _init(client, first), _init(client, second)
    ctx.record("init", [err(one.error_code), err(two.error_code)])
    pid1, epoch1, pid2, epoch2 = (
        one.producer_id,
        one.producer_epoch,
        two.producer_id,
        two.producer_epoch,
    )
    ctx.record("add_v3", _add_partitions(client, first, pid1, epoch1, topic))
    ctx.record(
        "verify_v4",
        _batch(
            client,
            4,
            _txn(first, pid1, epoch1, True, {topic: [0, 1]}),
            _txn(second, pid2, epoch2, True, {topic: [0]}),
            _txn("apt-batch-absent", 4242, 0, True, {topic: [0]}),
        ),
    )
    ctx.record("fenced_v4", _batch(client, 4, _txn(first, pid1, epoch1 + 1, True, {topic: [0]})))
    ctx.record(
        "add_v5",
        _batch(
            client,
            5,
            _txn(second, pid2, epoch2, False, {topic: [1]}),
            _txn(first, pid1, epoch1, False, {topic: [1, 9]}),
        ),
    )
    ctx.record(
        "verify_v5",
        _batch(
            client,
            5,
            _txn(first, pid1, epoch1, True, {topic: [0, 1]}),
            _txn(second, pid2, epoch2, True, {topic: [0, 1]}),
        ),
    )
