"""The admin side of transactions: Apache Kafka's own `kafka-transactions.sh`
(TransactionsCommand, from the harness jars) lists, describes and aborts a hanging
transaction left by a killed producer, after which read_committed readers advance;
ListTransactions' filters and DescribeTransactions' errors over the wire; and the
authorization Kafka applies (DESCRIBE on the transactional id, CLUSTER_ACTION for
WriteTxnMarkers)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from conformance import wire
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

TIMEOUT_S = 30  # liveness bound of each client call

# A transactional producer that opens a transaction, writes one record and waits to be
# killed: its transaction stays open (up to the 15-minute timeout it asked for).
HANGING_PRODUCER = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[3],
                         "transaction.timeout.ms": 900000})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(sys.argv[2], b"hanging")
    producer.flush(30)
    print("open", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    data = tmp_path_factory.mktemp("txnadmin") / "broker"
    running = InProcessBroker(data, settings={"group.initial.rebalance.delay.ms": "0"}).start()
    yield running
    running.stop()


def _topic(bootstrap: str) -> str:
    name = f"txa-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(TIMEOUT_S)
    return name


def _committed(bootstrap: str, tid: str, topic: str, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, value)
    producer.commit_transaction(TIMEOUT_S)


def _kill_mid_transaction(bootstrap: str, topic: str, tid: str) -> None:
    """A producer process killed (SIGKILL) with its transaction open."""
    process = subprocess.Popen(
        [sys.executable, "-c", HANGING_PRODUCER, bootstrap, topic, tid],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "open"
    finally:
        process.kill()
        process.wait(TIMEOUT_S)


def _tool_command(bootstrap: str) -> list[str]:
    """Apache Kafka's kafka-transactions.sh from the harness jars."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    return [
        java,
        "-cp",
        f"{fetch_kafka_tools()}/*",
        "org.apache.kafka.tools.TransactionsCommand",
        "--bootstrap-server",
        bootstrap,
    ]


def _transactions_tool(bootstrap: str, *args: str) -> str:
    """The tool's stdout; it must succeed."""
    result = subprocess.run(
        [*_tool_command(bootstrap), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _rows(output: str) -> list[list[str]]:
    """The tool's table without its header, each row's cells."""
    return [line.split() for line in output.strip().splitlines()[1:]]


def test_kafka_transactions_tool_aborts_a_hanging_transaction(broker: InProcessBroker) -> None:
    bootstrap = broker.bootstrap
    topic = _topic(bootstrap)
    done, hanging = f"done-{topic}", f"hang-{topic}"
    _committed(bootstrap, done, topic, b"committed")  # offsets 0 (data) and 1 (marker)
    _kill_mid_transaction(bootstrap, topic, hanging)  # offset 2, never closed
    plain = Producer({"bootstrap.servers": bootstrap})
    plain.produce(topic, b"after")
    plain.flush(TIMEOUT_S)

    listed = {row[0]: row for row in _rows(_transactions_tool(bootstrap, "list"))}
    assert listed[done][3] == "CompleteCommit" and listed[hanging][3] == "Ongoing"
    described = _rows(_transactions_tool(bootstrap, "describe", "--transactional-id", hanging))
    assert described[0][4] == "Ongoing" and described[0][-1] == f"{topic}-0"
    producers = _transactions_tool(
        bootstrap, "describe-producers", "--topic", topic, "--partition", "0"
    )
    start_offsets = {row[0]: row[5] for row in _rows(producers)}
    hanging_pid = listed[hanging][2]
    assert start_offsets == {listed[done][2]: "None", hanging_pid: "2"}
    missing = subprocess.run(
        [*_tool_command(bootstrap), "describe", "--transactional-id", "no-such-id"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "the ID could not be found" in missing.stderr
    # Open for less than the tool's 15-minute threshold: not reported as hanging yet.
    assert _rows(_transactions_tool(bootstrap, "find-hanging", "--topic", topic)) == []

    with RawClient(bootstrap) as client:
        assert wire.list_offsets(client, topic, -1, isolation_level=1).offset == 2
    _transactions_tool(
        bootstrap, "abort", "--topic", topic, "--partition", "0", "--start-offset", "2"
    )
    producers = _transactions_tool(
        bootstrap, "describe-producers", "--topic", topic, "--partition", "0"
    )
    assert {row[0]: row[5] for row in _rows(producers)}[hanging_pid] == "None"

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []

    def read_past_the_abort() -> bool:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            values.append(message.value())
        return b"after" in values

    wait_until(read_past_the_abort, TIMEOUT_S, "the read_committed consumer passes the abort")
    consumer.close()
    assert values == [b"committed", b"after"]  # the aborted record is dropped


def _list(client: RawClient, version: int = 2, **filters: object) -> tuple[ErrorCode, set]:
    values: dict[str, object] = {
        "state_filters": [],
        "producer_id_filters": [],
        "duration_filter": -1,
        "transactional_id_pattern": None,
        **filters,
    }
    response = client.request(66, version, **values)
    found = {(s.transactional_id, s.transaction_state) for s in response.transaction_states}
    return response.error_code, found


def test_list_transactions_filters_and_describe_errors(broker: InProcessBroker) -> None:
    bootstrap = broker.bootstrap
    topic = _topic(bootstrap)
    committed, ongoing = f"lc-{topic}", f"lo-{topic}"
    _committed(bootstrap, committed, topic, b"x")
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": ongoing})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, b"open")
    producer.flush(TIMEOUT_S)
    mine = {(committed, "CompleteCommit"), (ongoing, "Ongoing")}
    with RawClient(bootstrap) as client:
        code, found = _list(client, transactional_id_pattern=f"l[co]-{topic}")
        assert (code, found) == (ErrorCode.none, mine)
        _, found = _list(client, state_filters=["Ongoing"])
        assert (ongoing, "Ongoing") in found and (committed, "CompleteCommit") not in found
        response = client.request(
            66, 0, state_filters=["Ongoing", "Sleeping"], producer_id_filters=[]
        )
        assert list(response.unknown_state_filters) == ["Sleeping"]
        described = client.request(65, 0, transactional_ids=[ongoing, "no-such-id"])
        by_id = {s.transactional_id: s for s in described.transaction_states}
        state = by_id[ongoing]
        assert (state.error_code, state.transaction_state) == (ErrorCode.none, "Ongoing")
        assert [(t.topic, list(t.partitions)) for t in state.topics] == [(topic, [0])]
        assert by_id["no-such-id"].error_code == ErrorCode.transactional_id_not_found
        _, found = _list(client, producer_id_filters=[state.producer_id])
        assert found == {(ongoing, "Ongoing")}
        # Running longer than an hour: none of them.
        _, found = _list(client, duration_filter=3_600_000, transactional_id_pattern=".*")
        assert not found & mine
        code, found = _list(client, transactional_id_pattern="(unclosed")
        assert (code, found) == (ErrorCode.invalid_regular_expression, set())
    producer.abort_transaction(TIMEOUT_S)


def test_admin_apis_authorized_as_kafka(tmp_path: Path) -> None:
    """With an authorizer: ListTransactions lists only describable ids, DescribeTransactions
    refuses the others, DescribeProducers needs READ on the topic and WriteTxnMarkers
    CLUSTER_ACTION on the cluster."""
    settings = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        bootstrap = running.bootstrap
        topic = _topic(bootstrap)
        _committed(bootstrap, "open-id", topic, b"x")
        _committed(bootstrap, "secret-id", topic, b"y")

        def deny(resource: ResourceType, name: str, operation: AclOperation) -> AclBinding:
            return AclBinding(
                resource,
                name,
                ResourcePatternType.LITERAL,
                "User:ANONYMOUS",
                "*",
                operation,
                AclPermissionType.DENY,
            )

        admin = AdminClient({"bootstrap.servers": bootstrap})
        acls = [
            deny(ResourceType.TRANSACTIONAL_ID, "secret-id", AclOperation.DESCRIBE),
            deny(ResourceType.TOPIC, topic, AclOperation.READ),
            deny(ResourceType.BROKER, "kafka-cluster", AclOperation.CLUSTER_ACTION),
        ]
        for future in admin.create_acls(acls).values():
            future.result(TIMEOUT_S)
        with RawClient(bootstrap) as client:

            def listed() -> set:
                return {tid for tid, _ in _list(client)[1]}

            wait_until(lambda: listed() == {"open-id"}, TIMEOUT_S, "secret-id filtered out")
            described = client.request(65, 0, transactional_ids=["open-id", "secret-id"])
            codes = {s.transactional_id: s.error_code for s in described.transaction_states}
            assert codes == {
                "open-id": ErrorCode.none,
                "secret-id": ErrorCode.transactional_id_authorization_failed,
            }
            producers = client.request(61, 0, topics=[{"name": topic, "partition_indexes": [0]}])
            partition = producers.topics[0].partitions[0]
            assert partition.error_code == ErrorCode.topic_authorization_failed
            assert list(partition.active_producers) == []
            markers = client.request(
                27,
                1,
                markers=[
                    {
                        "producer_id": 1,
                        "producer_epoch": 0,
                        "transaction_result": False,
                        "topics": [{"name": topic, "partition_indexes": [0]}],
                        "coordinator_epoch": 0,
                    }
                ],
            )
            written = markers.markers[0].topics[0].partitions[0]
            assert written.error_code == ErrorCode.cluster_authorization_failed
    finally:
        running.stop()


def test_transactional_id_expires_after_its_expiration_ms(tmp_path: Path) -> None:
    """transactional.id.expiration.ms, short: a committed transactional id is removed
    (DescribeTransactions: TRANSACTIONAL_ID_NOT_FOUND) and starts afresh with a new
    producer id; one with an open transaction stays."""
    settings = {
        "transactional.id.expiration.ms": "1000",
        "transaction.remove.expired.transaction.cleanup.interval.ms": "100",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        bootstrap = running.bootstrap
        topic = _topic(bootstrap)
        _committed(bootstrap, "expiring", topic, b"x")
        open_producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "kept"})
        open_producer.init_transactions(TIMEOUT_S)
        open_producer.begin_transaction()
        open_producer.produce(topic, b"open")
        open_producer.flush(TIMEOUT_S)
        with RawClient(bootstrap) as client:
            first_pid = {tid: pid for tid, pid, _ in _listed(client)}["expiring"]

            def removed() -> bool:
                described = client.request(65, 0, transactional_ids=["expiring"])
                state = described.transaction_states[0]
                return state.error_code == ErrorCode.transactional_id_not_found

            wait_until(removed, TIMEOUT_S, "the idle transactional id is removed")
            assert {tid for tid, _, _ in _listed(client)} == {"kept"}
            _committed(bootstrap, "expiring", topic, b"y")
            listed = {tid: pid for tid, pid, _ in _listed(client)}
            assert listed["expiring"] != first_pid
        open_producer.commit_transaction(TIMEOUT_S)
    finally:
        running.stop()


def _listed(client: RawClient) -> list[tuple[str, int, str]]:
    response = client.request(66, 0, state_filters=[], producer_id_filters=[])
    return [
        (s.transactional_id, s.producer_id, s.transaction_state)
        for s in response.transaction_states
    ]
