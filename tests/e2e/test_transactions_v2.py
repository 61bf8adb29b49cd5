"""Transactions v2 (KIP-890) with the Java client, which uses them because ApiVersions
finalizes transaction.version 2: no AddPartitionsToTxn (Produce v12 adds the partition),
no AddOffsetsToTxn (TxnOffsetCommit v5+ adds the group; the 4.4 client sends v6,
naming topics by id), and every commit or abort bumps
the producer epoch (EndTxn v5 returns it). Consume-transform-produce over three
transactions: only the committed ones are visible, the aborted one's offsets are
dropped, and the epoch rose once per transaction."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.protocol.error_codes import ErrorCode
from harness import java_client
from harness._maven import java_tool
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

TRANSACTIONAL_BIT = 0x10
TIMEOUT_S = 30  # liveness bound of each client call
PROGRAM = Path(__file__).parent / "java" / "TransactionsV2.java"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("txnv2") / "broker"
    running = InProcessBroker(data, settings={"group.initial.rebalance.delay.ms": "0"}).start()
    yield running
    running.stop()


def test_java_client_consume_transform_produce_with_transactions_v2(
    broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    # The pipeline's debug line names each request's api key and version.
    caplog.set_level(logging.DEBUG, logger="contextplane.broker.pipeline")
    bootstrap = broker.bootstrap
    suffix = uuid.uuid4().hex[:8]
    source, sink, group, tid = f"v2in-{suffix}", f"v2out-{suffix}", f"g-{suffix}", f"t-{suffix}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name in (source, sink):
        admin.create_topics([NewTopic(name, 1, 1)])[name].result(TIMEOUT_S)
    plain = Producer({"bootstrap.servers": bootstrap})
    for value in (b"0", b"1", b"2", b"3"):
        plain.produce(source, value)
    plain.flush(TIMEOUT_S)

    java_client.build()
    libs = java_client.client_home() / "libs"
    result = subprocess.run(
        [java_tool("java"), "-cp", f"{libs}/*", str(PROGRAM), bootstrap, source, sink, group, tid],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-3000:]

    def versions(api_key: int) -> set[int]:
        return {
            r.args[1]
            for r in caplog.records
            if r.name == "contextplane.broker.pipeline"
            and r.msg.startswith("api key %d v%d")
            and isinstance(r.args, tuple)
            and r.args[0] == api_key
        }

    # sendOffsetsToTransaction negotiated TxnOffsetCommit v6 (topic ids, KIP-1319); the
    # Java client's newest Produce (v13) and Fetch (v18) name topics by id too (KIP-516).
    # (librdkafka's producer above uses Produce v10.)
    assert versions(28) == {6}, versions(28)
    assert 13 in versions(0), versions(0)
    assert 18 in versions(1), versions(1)

    with RawClient(bootstrap) as client:
        state = client.request(65, 0, transactional_ids=[tid]).transaction_states[0]
        # InitProducerId gave epoch 0; each of the three transactions bumped it once.
        assert (state.transaction_state, state.producer_epoch) == ("CompleteCommit", 3)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    assert consumer.committed([TopicPartition(source, 0)], TIMEOUT_S)[0].offset == 4
    consumer.assign([TopicPartition(sink, 0, 0)])
    values: list[bytes] = []

    def read_both() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            values.append(message.value())
        return len(values) >= 2

    wait_until(read_both, TIMEOUT_S, "the committed records of the sink")
    assert values == [b"a", b"c"]
    assert consumer.poll(0.5) is None  # the aborted "b" never shows
    consumer.close()


def test_wire_answers_of_transactions_v2_and_of_older_producers(broker: InProcessBroker) -> None:
    """Produce v12 adds its partition; EndTxn v5 bumps and returns the epoch; the late
    Produce of the epoch before is fenced; an older client's transactional Produce for
    a partition it did not add gets Kafka 4.4's error for its version (v11 knows
    TRANSACTION_ABORTABLE, older ones get INVALID_TXN_STATE)."""
    topic, tid = f"v2wire-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    with RawClient(broker.bootstrap) as client:
        created = client.request(
            19,
            7,
            topics=[
                {
                    "name": topic,
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [],
                }
            ],
            timeout_ms=10_000,
            validate_only=False,
        )
        assert created.topics[0].error_code == ErrorCode.none
        init = client.request(
            22,
            4,
            transactional_id=tid,
            transaction_timeout=60_000,
            producer_id=-1,
            producer_epoch=-1,
        )
        pid, epoch = init.producer_id, init.producer_epoch

        def produce(version: int, batch_epoch: int, sequence: int) -> ErrorCode:
            batch = record_batch(
                [b"v"],
                producer_id=pid,
                producer_epoch=batch_epoch,
                base_sequence=sequence,
                attributes=TRANSACTIONAL_BIT,
            )
            response = client.request(
                0,
                version,
                transactional_id=tid,
                acks=-1,
                timeout=10_000,
                topic_data=[{"name": topic, "partition_data": [{"index": 0, "records": batch}]}],
            )
            return ErrorCode(response.responses[0].partition_responses[0].error_code)

        def end(batch_epoch: int, commit: bool) -> tuple[ErrorCode, int, int]:
            response = client.request(
                26,
                5,
                transactional_id=tid,
                producer_id=pid,
                producer_epoch=batch_epoch,
                committed=commit,
            )
            return ErrorCode(response.error_code), response.producer_id, response.producer_epoch

        assert produce(12, epoch, 0) == ErrorCode.none  # no AddPartitionsToTxn
        assert end(epoch, True) == (ErrorCode.none, pid, epoch + 1)
        assert end(epoch, True) == (ErrorCode.none, pid, epoch + 1)  # a retry
        assert produce(12, epoch, 1) == ErrorCode.invalid_producer_epoch  # the zombie
        assert produce(9, epoch + 1, 0) == ErrorCode.invalid_txn_state
        assert produce(11, epoch + 1, 0) == ErrorCode.transaction_abortable
        assert end(epoch + 1, False) == (ErrorCode.none, pid, epoch + 2)  # nothing added
