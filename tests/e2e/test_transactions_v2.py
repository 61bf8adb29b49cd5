"""Transactions v2 (KIP-890) with the Java client, which uses them because ApiVersions
finalizes transaction.version 2: no AddPartitionsToTxn (Produce v12 adds the partition),
no AddOffsetsToTxn (TxnOffsetCommit v5 adds the group), and every commit or abort bumps
the producer epoch (EndTxn v5 returns it). Consume-transform-produce over three
transactions: only the committed ones are visible, the aborted one's offsets are
dropped, and the epoch rose once per transaction."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import java_client
from harness._maven import java_tool
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

TIMEOUT_S = 30  # liveness bound of each client call
PROGRAM = Path(__file__).parent / "java" / "TransactionsV2.java"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("txnv2") / "broker"
    running = InProcessBroker(data, settings={"group.initial.rebalance.delay.ms": "0"}).start()
    yield running
    running.stop()


def test_java_client_consume_transform_produce_with_transactions_v2(
    broker: InProcessBroker,
) -> None:
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
