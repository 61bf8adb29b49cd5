"""Transactions end to end with real clients (confluent-kafka, the Java client,
kafka-python, aiokafka): commit and abort, what a read_committed consumer sees,
consume-transform-produce with send_offsets_to_transaction, zombie fencing, the last
stable offset held by an open transaction, and the timeout that aborts a transaction
left open."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from harness import java_client
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

TIMEOUT_S = 30  # liveness bound of each client call


@pytest.fixture(scope="module")
def txn_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("txn") / "broker"
    running = InProcessBroker(
        data,
        settings={
            "group.initial.rebalance.delay.ms": "0",
            # The timeout test waits on the coordinator's sweep: sweep often.
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200",
        },
    ).start()
    yield running
    running.stop()


def _topic(broker: InProcessBroker, partitions: int = 1) -> str:
    name = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)
    return name


def _producer(broker: InProcessBroker, tid: str, **extra: object) -> Producer:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": tid, **extra})
    producer.init_transactions(TIMEOUT_S)
    return producer


def _consumer(broker: InProcessBroker, isolation: str, group: str | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group or f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )


def _read_values(consumer: Consumer, topic: str, until: int, partitions: int = 1) -> list[bytes]:
    """Values read from the start of `topic` until the consumer's position reaches
    `until` in every partition (control records take offsets too)."""
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []

    def caught_up() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            values.append(message.value())
        positions = consumer.position([TopicPartition(topic, p) for p in range(partitions)])
        return sum(max(tp.offset, 0) for tp in positions) >= until

    wait_until(caught_up, TIMEOUT_S, f"consumer reaches offset {until} of {topic}")
    return values


def test_read_committed_sees_committed_records_and_never_aborted_ones(
    txn_broker: InProcessBroker,
) -> None:
    topic = _topic(txn_broker)
    producer = _producer(txn_broker, f"tid-{topic}")
    for round_, commit in enumerate((True, False, True, False, True)):
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, f"{'c' if commit else 'a'}{round_}-{i}".encode())
        producer.flush(TIMEOUT_S)  # abort_transaction drops records not yet sent
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            producer.abort_transaction(TIMEOUT_S)
    # 5 transactions of 3 records and a marker each.
    committed = _read_values(_consumer(txn_broker, "read_committed"), topic, 20)
    assert committed == [f"c{r}-{i}".encode() for r in (0, 2, 4) for i in range(3)]
    everything = _read_values(_consumer(txn_broker, "read_uncommitted"), topic, 20)
    assert len(everything) == 15  # read_uncommitted sees aborted records too
    with RawClient(txn_broker.bootstrap) as client:
        fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
        aborted = sorted(a.first_offset for a in fetched.aborted_transactions)
        assert aborted == [4, 12]  # the second and fourth transactions
        later = wire.fetch_one(client, topic, 13, isolation_level=1)
        assert [a.first_offset for a in later.aborted_transactions] == [12]
        # A fetch that returns only the first transaction's batch lists no aborted
        # transaction: the list is bounded by the data returned, as Kafka bounds it.
        small = wire.fetch_one(client, topic, 0, isolation_level=1, partition_max_bytes=1)
        assert [b.base_offset for b in wire.decode_batches(small.records)] == [0]
        assert list(small.aborted_transactions) == []


def test_open_transaction_holds_the_last_stable_offset(txn_broker: InProcessBroker) -> None:
    topic = _topic(txn_broker)
    plain = Producer({"bootstrap.servers": txn_broker.bootstrap})
    plain.produce(topic, b"before", timestamp=1_000)
    plain.flush(TIMEOUT_S)
    producer = _producer(txn_broker, f"tid-{topic}")
    producer.begin_transaction()
    producer.produce(topic, b"open", timestamp=2_000)
    producer.flush(TIMEOUT_S)
    plain.produce(topic, b"after", timestamp=3_000)
    plain.flush(TIMEOUT_S)
    with RawClient(txn_broker.bootstrap) as client:
        # ListOffsets latest: the high watermark, or under read_committed the LSO, held
        # at the open transaction's first offset; a read_committed fetch stops there.
        assert wire.list_offsets(client, topic, -1).offset == 3
        assert wire.list_offsets(client, topic, -1, isolation_level=1).offset == 1
        # By timestamp (and the greatest, -3), a record found at or past the LSO is no
        # answer under read_committed, as Kafka's fetchOffsetForTimestamp filters it.
        for timestamp, uncommitted, committed in ((1_500, 1, -1), (-3, 2, -1), (500, 0, 0)):
            assert wire.list_offsets(client, topic, timestamp).offset == uncommitted
            assert wire.list_offsets(client, topic, timestamp, isolation_level=1).offset == (
                committed
            )
        fetched = wire.fetch_one(client, topic, 0, isolation_level=1)
        assert (fetched.high_watermark, fetched.last_stable_offset) == (3, 1)
        assert [b.base_offset for b in wire.decode_batches(fetched.records)] == [0]
    consumer = _consumer(txn_broker, "read_committed")
    consumer.assign([TopicPartition(topic, 0, 0)])
    first = wait_until(lambda: consumer.poll(0.2), TIMEOUT_S, "the record before it")
    assert first.error() is None and first.value() == b"before"
    assert consumer.poll(1.0) is None  # nothing past the LSO while the transaction is open
    producer.commit_transaction(TIMEOUT_S)
    rest = _read_values(consumer, topic, 4)
    assert rest == [b"before", b"open", b"after"]  # read again from the start


def test_consume_transform_produce_commits_offsets_with_the_transaction(
    txn_broker: InProcessBroker,
) -> None:
    source, sink = _topic(txn_broker), _topic(txn_broker)
    plain = Producer({"bootstrap.servers": txn_broker.bootstrap})
    for i in range(10):
        plain.produce(source, str(i).encode())
    plain.flush(TIMEOUT_S)
    group = f"ctp-{source}"
    producer = _producer(txn_broker, f"tid-{source}")
    consumer = _consumer(txn_broker, "read_committed", group)
    consumer.subscribe([source])

    def transform(limit: int, commit: bool) -> None:
        producer.begin_transaction()
        done = 0
        while done < limit:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            producer.produce(sink, message.value() * 2)
            done += 1
        producer.flush(TIMEOUT_S)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()),
            consumer.consumer_group_metadata(),
            TIMEOUT_S,
        )
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            producer.abort_transaction(TIMEOUT_S)

    transform(4, commit=True)
    transform(3, commit=False)  # its offsets are dropped with it
    consumer.close()
    committed = _consumer(txn_broker, "read_committed", group).committed(
        [TopicPartition(source, 0)], TIMEOUT_S
    )
    assert committed[0].offset == 4
    sink_values = _read_values(_consumer(txn_broker, "read_committed"), sink, 9)
    assert sink_values == [str(i).encode() * 2 for i in range(4)]


def test_second_producer_fences_the_first(txn_broker: InProcessBroker) -> None:
    topic = _topic(txn_broker)
    tid = f"tid-{topic}"
    zombie = _producer(txn_broker, tid)
    zombie.begin_transaction()
    zombie.produce(topic, b"zombie")
    zombie.flush(TIMEOUT_S)
    # A new instance with the same transactional.id aborts the zombie's transaction.
    successor = _producer(txn_broker, tid)
    successor.begin_transaction()
    successor.produce(topic, b"successor")
    successor.commit_transaction(TIMEOUT_S)
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(TIMEOUT_S)
    assert info.value.args[0].code() in (
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    )
    values = _read_values(_consumer(txn_broker, "read_committed"), topic, 4)
    assert values == [b"successor"]


def test_timed_out_transaction_is_aborted(txn_broker: InProcessBroker) -> None:
    topic = _topic(txn_broker)
    producer = _producer(txn_broker, f"tid-{topic}", **{"transaction.timeout.ms": 1000})
    producer.begin_transaction()
    producer.produce(topic, b"forgotten")
    producer.flush(TIMEOUT_S)
    consumer = _consumer(txn_broker, "read_committed")
    # The coordinator aborts it: its ABORT marker lets read_committed readers past it.
    values = _read_values(consumer, topic, 2)
    assert values == []
    with pytest.raises(KafkaException):
        producer.commit_transaction(TIMEOUT_S)


def test_java_transactional_producer_commits(txn_broker: InProcessBroker) -> None:
    topic = _topic(txn_broker)
    result = java_client.run(
        [
            "produce",
            "--bootstrap",
            txn_broker.bootstrap,
            "--topic",
            topic,
            "--count",
            "5",
            "--transactional-id",
            f"tid-java-{topic}",
            "--timeout-ms",
            str(TIMEOUT_S * 1000),
        ],
        TIMEOUT_S + 30,
    )
    assert result.ok, result.error
    values = _read_values(_consumer(txn_broker, "read_committed"), topic, 6)
    assert values == [f"value-{i}".encode() for i in range(5)]


def test_offsets_pending_in_a_transaction_are_unstable_until_it_commits(
    txn_broker: InProcessBroker,
) -> None:
    topic = _topic(txn_broker)
    group = f"unstable-{topic}"
    producer = _producer(txn_broker, f"tid-{topic}")
    producer.begin_transaction()
    metadata = _consumer(txn_broker, "read_committed", group).consumer_group_metadata()
    producer.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], metadata, TIMEOUT_S)

    def fetched(require_stable: bool) -> tuple[int, int]:
        with RawClient(txn_broker.bootstrap) as client:
            response = wire.offset_fetch(client, group, {topic: [0]}, require_stable=require_stable)
        partition = response.topics[0].partitions[0]
        return partition.error_code, partition.committed_offset

    assert fetched(require_stable=True) == (KafkaError.UNSTABLE_OFFSET_COMMIT, -1)
    assert fetched(require_stable=False) == (0, -1)  # nothing committed yet
    producer.commit_transaction(TIMEOUT_S)
    assert fetched(require_stable=True) == (0, 5)


def test_kafka_python_transactional_producer(txn_broker: InProcessBroker) -> None:
    from kafka import KafkaProducer

    topic = _topic(txn_broker)
    producer = KafkaProducer(
        bootstrap_servers=txn_broker.bootstrap, transactional_id=f"tid-kp-{topic}"
    )
    producer.init_transactions()
    for commit in (True, False, True):
        producer.begin_transaction()
        producer.send(topic, b"kept" if commit else b"dropped").get(timeout=TIMEOUT_S)
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()
    values = _read_values(_consumer(txn_broker, "read_committed"), topic, 6)
    assert values == [b"kept", b"kept"]


def test_aiokafka_transactional_producer(txn_broker: InProcessBroker) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    topic = _topic(txn_broker)

    async def produce() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=txn_broker.bootstrap, transactional_id=f"tid-aio-{topic}"
        )
        await producer.start()
        try:
            for commit in (True, False, True):
                await producer.begin_transaction()
                await producer.send_and_wait(topic, b"kept" if commit else b"dropped")
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(produce())
    values = _read_values(_consumer(txn_broker, "read_committed"), topic, 6)
    assert values == [b"kept", b"kept"]
