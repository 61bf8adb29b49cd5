"""Transaction coordinators across brokers (RFC 0004 §3): two broker processes on one
PostgreSQL and one file:// object store. Broker 1 starts alone, so it creates
`__transaction_state` and leads every shard: it coordinates every transactional id,
while the topic created once both are up has half its partitions on broker 2.

- a confluent-kafka transactional producer commits one transaction and aborts another
  over all four partitions: the markers for broker 2's partitions go over the
  inter-broker client (WriteTxnMarkers), broker 2 verifies the producer's first batch
  per partition at broker 1 (AddPartitionsToTxn VerifyOnly), and a read_committed
  consumer reads exactly the committed records;
- broker 1 (the coordinator) killed -9 with a transaction open on every partition:
  broker 2 takes the shard, loads the transaction as stored, and a new producer with
  the same transactional id fences it (abort markers, now all local); read_committed
  reads the committed transactions and none of the open one's records;
- the Java client's transactions v2 with its sink partition on broker 2: Produce v12+
  adds the partition at the coordinator on broker 1 (AddPartitionsToTxn v5); and, on
  three brokers, with its group and transaction coordinators on different brokers (the
  group's coordinator adds the group's `__consumer_offsets` partition at the
  transaction's with AddPartitionsToTxn v5).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.coordinators.txn_shards import TXN_STATE_TOPIC
from contextplane.protocol.offsets_records import OFFSETS_TOPIC, partition_for
from harness import java_client
from harness._maven import java_tool
from tests.e2e.test_cluster_failover import broker, create, listed_brokers, stored
from tests.support.broker import BrokerProcess
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

PARTITIONS = 4
PER_PARTITION = 20
FIND_COORDINATOR = 10
TRANSACTION_KEY = 1
TID = "payments"
JAVA_V2 = Path(__file__).parent / "java" / "TransactionsV2.java"


def coordinator_of(bootstrap: str, tid: str) -> tuple[int, int]:
    """(error code, node id) of FindCoordinator v3 for transactional id `tid`."""
    with RawClient(bootstrap) as raw:
        answer = raw.request(FIND_COORDINATOR, 3, key=tid, key_type=TRANSACTION_KEY)
    return int(answer.error_code), int(answer.node_id)


def transactional(bootstrap: str, security: dict[str, str] | None = None) -> Producer:
    producer = Producer(
        {
            **(security or {}),
            "bootstrap.servers": bootstrap,
            "transactional.id": TID,
            "transaction.timeout.ms": 60_000,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    producer.init_transactions(60)
    return producer


def send(producer: Producer, topic: str, label: str) -> None:
    """One record per partition and index, `label` in its value; waits for the acks."""
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(topic, value=f"{label}-{p}-{i}".encode(), partition=p)
    assert producer.flush(60) == 0


def read_committed(
    bootstrap: str, topic: str, expected: int, security: dict[str, str] | None = None
) -> list[str]:
    """The values a read_committed consumer reads from the start, once `expected` were
    read and the end of every partition reached."""
    consumer = Consumer(
        {
            **(security or {}),
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    values: list[str] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not (
            len(values) >= expected and len(at_end) == PARTITIONS
        ):
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                at_end.add(message.partition())
                continue
            at_end.discard(message.partition())
            values.append(message.value().decode())
    finally:
        consumer.close()
    return values


def expected(label: str) -> list[str]:
    return [f"{label}-{p}-{i}" for p in range(PARTITIONS) for i in range(PER_PARTITION)]


def commit_abort_commit(bootstrap: str, security: dict[str, str] | None = None) -> None:
    """Three transactions over every partition of "orders" through `bootstrap`, the
    second aborted; a read_committed consumer then reads exactly the other two."""
    producer = transactional(bootstrap, security)
    for label in ("committed", "aborted", "second"):
        producer.begin_transaction()
        send(producer, "orders", label)
        if label == "aborted":
            producer.abort_transaction(60)
        else:
            producer.commit_transaction(60)
    want = expected("committed") + expected("second")
    values = read_committed(bootstrap, "orders", len(want), security)
    assert sorted(values) == sorted(want)


@contextmanager
def cluster(
    tmp_path: Path, url: str
) -> Iterator[tuple[BrokerProcess, BrokerProcess, dict[int, int]]]:
    """Broker 1 (started alone: it leads every `__transaction_state` shard), broker 2,
    and "orders" with partitions on both (partition -> leader)."""
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects).start()
    try:
        wait_until(lambda: listed_brokers(one.bootstrap) == [1, 2], 15, "both listed")
        leaders = create(one.bootstrap, "orders", PARTITIONS, url)
        assert stored(url, TXN_STATE_TOPIC)[partition_for(TID, 50)]["leader"] == 1
        assert coordinator_of(two.bootstrap, TID) == (0, 1)
        yield one, two, leaders
    finally:
        two.stop()
        one.stop()


def test_a_transaction_committed_and_aborted_through_a_coordinator_on_another_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    with cluster(tmp_path, postgres_server.create_database()) as (_, two, leaders):
        # Broker 2's partitions included: their markers came from broker 1.
        commit_abort_commit(two.bootstrap)
        assert 2 in leaders.values()


def test_the_coordinators_broker_killed_mid_transaction_the_new_coordinator_aborts_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with cluster(tmp_path, url) as (one, two, _):
        shard = partition_for(TID, 50)
        first = transactional(f"{one.bootstrap},{two.bootstrap}")
        first.begin_transaction()
        send(first, "orders", "committed")
        first.commit_transaction(60)
        first.begin_transaction()
        send(first, "orders", "open")
        # Uploaded, so that broker 1's partitions move at once (a clean failover).
        wait_until(
            lambda: all(r["dirty"] == 0 for r in stored(url, "orders").values()), 30, "uploaded"
        )
        epoch = stored(url, TXN_STATE_TOPIC)[shard]["epoch"]

        one.kill9()
        killed = time.monotonic()
        wait_until(
            lambda: stored(url, TXN_STATE_TOPIC)[shard]["leader"] == 2, 30, "broker 2 takes it"
        )
        assert stored(url, TXN_STATE_TOPIC)[shard]["epoch"] > epoch
        wait_until(lambda: coordinator_of(two.bootstrap, TID) == (0, 2), 15, "found on 2")
        found_s = time.monotonic() - killed
        wait_until(
            lambda: all(r["leader"] == 2 for r in stored(url, "orders").values()),
            30,
            "broker 2 leads every partition",
        )
        # The open transaction is not readable, and a new producer with the id fences it.
        second = transactional(two.bootstrap)
        second.begin_transaction()
        send(second, "orders", "after")
        second.commit_transaction(60)
        want = expected("committed") + expected("after")
        values = read_committed(two.bootstrap, "orders", len(want))
        assert sorted(values) == sorted(want)
        print(f"coordinator kill -9: FindCoordinator answers broker 2 {found_s:.2f} s after"
              " the kill (session 1,500 ms)")  # fmt: skip
        first.purge()


def test_java_transactions_v2_with_the_sink_led_by_another_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """The Java client's transactions v2 (KIP-890): its Produce v12+ to broker 2 adds
    the sink partition at the coordinator on broker 1 (AddPartitionsToTxn v5 over the
    inter-broker client); commit, abort, commit; only the committed records show and
    the consumed offsets are committed with them."""
    url = postgres_server.create_database()
    with cluster(tmp_path, url) as (one, two, _):
        admin = AdminClient({"bootstrap.servers": two.bootstrap})
        # Single-partition candidates for the sink, placed by their stream ids: the
        # first that broker 2 leads is the sink.
        names = ["source"] + [f"sink{n}" for n in range(4)]
        for name in names:
            admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
        wait_until(lambda: all(stored(url, n)[0]["leader"] != -1 for n in names), 15, "claimed")
        sink = next(n for n in names[1:] if stored(url, n)[0]["leader"] == 2)
        plain = Producer({"bootstrap.servers": two.bootstrap})
        for value in (b"0", b"1", b"2", b"3"):
            plain.produce("source", value, partition=0)
        assert plain.flush(30) == 0
        java_client.build()
        libs = java_client.client_home() / "libs"
        bootstrap = f"{one.bootstrap},{two.bootstrap}"
        result = subprocess.run(
            [java_tool("java"), "-cp", f"{libs}/*", str(JAVA_V2), bootstrap]
            + ["source", sink, "transform", TID],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-3000:]
        assert committed_values(two.bootstrap, "transform", sink) == (4, [b"a", b"c"])


def test_java_transactions_v2_with_group_and_transaction_coordinators_apart(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Three brokers; broker 1, which created the shards, killed: brokers 2 and 3 share
    them. The Java client's group (its `__consumer_offsets` shard) is coordinated by one
    and its transactional id by the other: TxnOffsetCommit v5+ at the group's
    coordinator adds the group's `__consumer_offsets` partition at the transaction's
    (AddPartitionsToTxn v5 over the inter-broker client, as Kafka) and stores the
    offsets checked against the stored transaction; the committed offset and records
    are exactly the committed transactions'."""
    coordinators_apart(tmp_path, postgres_server.create_database(), dict.fromkeys((1, 2, 3), {}))


def coordinators_apart(
    tmp_path: Path,
    url: str,
    settings: dict[int, dict[str, str]],
    client: dict[str, str] | None = None,
    java_config: Path | None = None,
) -> None:
    """The Java transactions v2 program with its group and transaction coordinators on
    brokers 2 and 3 (broker 1, which created the shards, killed), each broker started
    with its `settings`; `client` and `java_config`: the clients' security settings."""
    client = client or {}
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    one = broker(tmp_path / "one", 1, url, objects, **settings[1]).start()
    others = [broker(tmp_path / f"b{n}", n, url, objects, **settings[n]).start() for n in (2, 3)]
    try:
        admin = AdminClient({**client, "bootstrap.servers": one.bootstrap})
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 3, 15, "all listed")
        one.kill9()
        for shards in (OFFSETS_TOPIC, TXN_STATE_TOPIC):
            wait_until(
                lambda shards=shards: {r["leader"] for r in stored(url, shards).values()} == {2, 3},
                30,
                f"{shards} on brokers 2 and 3",
            )
        groups = {p: r["leader"] for p, r in stored(url, OFFSETS_TOPIC).items()}
        txns = {p: r["leader"] for p, r in stored(url, TXN_STATE_TOPIC).items()}
        count = len(groups)
        group = next(g for n in range(500) if groups[partition_for(g := f"g{n}", count)] == 3)
        tid = next(t for n in range(500) if txns[partition_for(t := f"t{n}", 50)] == 2)
        bootstrap = ",".join(b.bootstrap for b in others)
        admin = AdminClient({**client, "bootstrap.servers": bootstrap})
        for name in ("source", "sink"):
            admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
        plain = Producer({**client, "bootstrap.servers": bootstrap})
        for value in (b"0", b"1", b"2", b"3"):
            plain.produce("source", value, partition=0)
        assert plain.flush(30) == 0
        java_client.build()
        libs = java_client.client_home() / "libs"
        result = subprocess.run(
            [java_tool("java"), "-cp", f"{libs}/*", str(JAVA_V2), bootstrap]
            + ["source", "sink", group, tid]
            + ([str(java_config)] if java_config is not None else []),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-3000:]
        assert committed_values(bootstrap, group, "sink", client) == (4, [b"a", b"c"])
    finally:
        for running in others:
            running.stop()
        one.stop()


def committed_values(
    bootstrap: str, group: str, sink: str, client: dict[str, str] | None = None
) -> tuple[int, list[bytes]]:
    """(the group's committed offset of source-0, the sink's read_committed values)."""
    consumer = Consumer(
        {
            **(client or {}),
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        offset = consumer.committed([TopicPartition("source", 0)], 30)[0].offset
        consumer.assign([TopicPartition(sink, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                break  # the end of the committed records
            values.append(message.value())
        return offset, values
    finally:
        consumer.close()
