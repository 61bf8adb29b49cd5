"""A transactional Produce while the producer's previous transaction still waits for a
marker, its coordinator on another broker than the partition's leader (transactions v2,
broker/txn_verification.py, answered as Kafka 4.4's ReplicaManager.handleProduceAppend).

Two in-process brokers on PostgreSQL with SASL/SCRAM listeners only: broker 1 logs in
to broker 2 as User:b1, granted CLUSTER_ACTION, broker 2 to broker 1 as User:b2, not.
So broker 1's AddPartitionsToTxn at broker 2 (which coordinates the transactional id)
is answered, while broker 2's WriteTxnMarkers to broker 1 is refused: a commit stays in
PrepareCommit with both brokers up. Then the next transaction's first batch to the same
partition at broker 1 is verified at broker 2, since the transaction open there is of
the epoch before (Kafka's hasOngoingTransaction(producerId, producerEpoch)): Produce v12
is retried for 100 ms and answered CONCURRENT_TRANSACTIONS, Produce v11
NOT_ENOUGH_REPLICAS naming it; nothing of it is appended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka.admin import NewTopic

from conformance import wire
from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.offsets_records import partition_for
from contextplane.security.acls import Operation
from tests.e2e.test_cluster_failover import stored
from tests.e2e.test_cluster_reassign_forwarded import allow, alter, call, root_admin, secured_pair
from tests.support.postgres import PostgresServer
from tests.support.wait import wait_until

INIT_PRODUCER_ID, END_TXN, PRODUCE = 22, 26, 0
TID, TOPIC = "held", "orders"
RETRIED = {ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator}


def _until(ask: Any, what: str, retried: set[ErrorCode]) -> Any:
    """`ask()` again while it answers one of `retried` (a client's retries)."""
    answers: list[Any] = []

    def answered() -> bool:
        answers.append(ask())
        return ErrorCode(answers[-1].error_code) not in retried

    wait_until(answered, 30, what)
    return answers[-1]


def test_the_next_transactions_batch_waits_for_the_previous_markers(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    acls = [allow("User:b1", Operation.CLUSTER_ACTION)]
    with secured_pair(tmp_path, url, acls, ("b1", "b2")) as (one, two):
        admin = root_admin(one.bootstrap)
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        shard = partition_for(TID, 50)
        # The partition on broker 1, the id's shard on broker 2 (asked of the controller).
        assert (
            alter(one.bootstrap, "root", {0: 1}, topic=TOPIC).responses[0].partitions[0].error_code
            == 0
        )
        moved = alter(one.bootstrap, "root", {shard: 2}, topic=TXN_STATE_TOPIC)
        assert moved.responses[0].partitions[0].error_code == ErrorCode.none
        wait_until(
            lambda: (
                stored(url, TOPIC)[0]["leader"] == 1
                and stored(url, TXN_STATE_TOPIC)[shard]["leader"] == 2
            ),
            30,
            "the partition on broker 1, the shard on broker 2",
        )
        init = _until(
            lambda: call(
                two.bootstrap,
                "root",
                INIT_PRODUCER_ID,
                4,
                transactional_id=TID,
                transaction_timeout=60_000,
                producer_id=-1,
                producer_epoch=-1,
            ),
            "broker 2 coordinates the id",
            RETRIED | {ErrorCode.coordinator_not_available},
        )
        assert init.error_code == ErrorCode.none
        pid, epoch = init.producer_id, init.producer_epoch

        def produce(producer_epoch: int, version: int) -> Any:
            batch = wire.encode_batch(
                [b"v"],
                producer_id=pid,
                producer_epoch=producer_epoch,
                base_sequence=0,
                transactional=True,
            )
            fields = wire.produce_fields(TOPIC, batch, 0, -1, TID)
            answer = call(one.bootstrap, "root", PRODUCE, version, **fields)
            return answer.responses[0].partition_responses[0]

        # Broker 1 retries until its mirror names the shard's leader (a heartbeat).
        first = _until(
            lambda: produce(epoch, 12), "the first batch", {ErrorCode.not_enough_replicas}
        )
        assert first.error_code == ErrorCode.none
        ended = call(
            two.bootstrap,
            "root",
            END_TXN,
            5,
            transactional_id=TID,
            producer_id=pid,
            producer_epoch=epoch,
            committed=True,
        )
        assert (ended.error_code, ended.producer_epoch) == (ErrorCode.none, epoch + 1)
        record = two.call(_record(two))
        assert record == "PrepareCommit"  # its marker refused by broker 1

        busy = produce(epoch + 1, 12)
        assert busy.error_code == ErrorCode.concurrent_transactions
        older = produce(epoch + 1, 11)
        assert older.error_code == ErrorCode.not_enough_replicas
        assert "CONCURRENT_TRANSACTIONS" in (older.error_message or "")
        assert one.call(_end_offset(one)) == 1  # only the first transaction's batch


async def _record(broker: Any) -> str:
    found = broker.broker.transactions.record(TID)
    return str(found.state) if found is not None else "none"


async def _end_offset(broker: Any) -> int:
    return int(broker.broker.storage.partitions[(TOPIC, 0)].high_watermark)
