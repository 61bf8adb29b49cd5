"""TxnOffsetCommit's member checks (v3+, KIP-447) with confluent-kafka's
send_offsets_to_transaction and consumer.consumer_group_metadata(): offsets sent with
the metadata of a member that has left (UNKNOWN_MEMBER_ID), of an older generation
(ILLEGAL_GENERATION) or of a static member replaced by another instance
(FENCED_INSTANCE_ID) are refused as Kafka's group coordinator refuses them, and the
transaction must abort; the current member's offsets commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

TIMEOUT_S = 30  # liveness bound of each client call


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("txnoffsets") / "broker"
    running = InProcessBroker(data, settings={"group.initial.rebalance.delay.ms": "0"}).start()
    yield running
    running.stop()


def _topic(broker: InProcessBroker, partitions: int) -> str:
    name = f"toc-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)
    return name


def _member(broker: InProcessBroker, group: str, topic: str, **extra: Any) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **extra,
        }
    )
    consumer.subscribe([topic])
    return consumer


def _joined(*consumers: Consumer) -> None:
    """Poll every consumer until each has partitions assigned."""

    def assigned() -> bool:
        for consumer in consumers:
            consumer.poll(0.1)
        return all(consumer.assignment() for consumer in consumers)

    wait_until(assigned, TIMEOUT_S, "every member has its partitions")


def _send_offsets(broker: InProcessBroker, topic: str, metadata: Any) -> KafkaError | None:
    """Offsets sent in a transaction with `metadata`: the error (the transaction is
    then aborted), or None once it commits."""
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": f"tid-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, b"out")
    try:
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, 1)], metadata, TIMEOUT_S)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        assert error.txn_requires_abort()
        producer.abort_transaction(TIMEOUT_S)
        return error
    producer.commit_transaction(TIMEOUT_S)
    return None


def test_offsets_of_the_current_member_commit(broker: InProcessBroker) -> None:
    topic, group = _topic(broker, 1), f"g-{uuid.uuid4().hex[:8]}"
    member = _member(broker, group, topic)
    _joined(member)
    assert _send_offsets(broker, topic, member.consumer_group_metadata()) is None
    assert member.committed([TopicPartition(topic, 0)], TIMEOUT_S)[0].offset == 1
    member.close()


def test_offsets_of_a_member_that_left_are_refused(broker: InProcessBroker) -> None:
    topic, group = _topic(broker, 1), f"g-{uuid.uuid4().hex[:8]}"
    member = _member(broker, group, topic)
    _joined(member)
    metadata = member.consumer_group_metadata()
    member.close()  # leaves: the group is Empty, the member unknown
    error = _send_offsets(broker, topic, metadata)
    assert error is not None and error.code() == KafkaError.UNKNOWN_MEMBER_ID


def test_offsets_of_an_older_generation_are_refused(broker: InProcessBroker) -> None:
    topic, group = _topic(broker, 2), f"g-{uuid.uuid4().hex[:8]}"
    first = _member(broker, group, topic)
    _joined(first)
    stale = first.consumer_group_metadata()
    second = _member(broker, group, topic)
    _joined(first, second)  # a rebalance: the next generation
    error = _send_offsets(broker, topic, stale)
    assert error is not None and error.code() == KafkaError.ILLEGAL_GENERATION
    assert _send_offsets(broker, topic, first.consumer_group_metadata()) is None
    first.close()
    second.close()


def test_offsets_of_a_replaced_static_member_are_fenced(broker: InProcessBroker) -> None:
    topic, group = _topic(broker, 1), f"g-{uuid.uuid4().hex[:8]}"
    old = _member(broker, group, topic, **{"group.instance.id": "static-1"})
    _joined(old)
    fenced = old.consumer_group_metadata()
    new = _member(broker, group, topic, **{"group.instance.id": "static-1"})
    _joined(new)  # the same instance id joins again: a new member id replaces the old
    error = _send_offsets(broker, topic, fenced)
    assert error is not None and error.code() == KafkaError.FENCED_INSTANCE_ID
    new.close()
