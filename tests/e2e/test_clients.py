"""The other real clients: the Java kafka-clients 4.x, kcat, kafka-python and aiokafka."""

from __future__ import annotations

import asyncio
import subprocess
from collections import defaultdict

import aiokafka
import kafka
import pytest
from kafka.admin import NewTopic

from harness import java_client
from harness.kcat import kcat_command
from tests.support.inprocess import InProcessBroker

COUNT = 1000


@pytest.fixture(scope="module")
def java_topic(shared_broker: InProcessBroker) -> list[list[object]]:
    """A 3-partition topic filled by the Java producer (acks=all, idempotent, lz4)."""
    bs = shared_broker.bootstrap
    java_client.run(["admin", "--bootstrap", bs, "create-topic", "java", "3"], 90, check=True)
    result = java_client.run(
        [
            "produce",
            "--bootstrap",
            bs,
            "--topic",
            "java",
            "--count",
            str(COUNT),
            "--acks",
            "all",
            "--idempotent",
            "true",
            "--compression",
            "lz4",
            "--key-prefix",
            "k-",
            "--headers",
            "origin=java",
        ],
        120,
        check=True,
    ).result
    assert result is not None and result["acked"] == COUNT and result["errors"] == 0
    return result["records"]


def test_java_admin_describes_cluster_and_topics(
    shared_broker: InProcessBroker, java_topic: list[list[object]]
) -> None:
    bs = shared_broker.bootstrap
    cluster = java_client.run(["admin", "--bootstrap", bs, "describe-cluster"], 60, check=True)
    assert cluster.result is not None
    assert cluster.result["nodes"] == [[1, "127.0.0.1", shared_broker.port]]
    topics = java_client.run(["admin", "--bootstrap", bs, "list-topics"], 60, check=True).result
    assert topics is not None and "java" in topics["topics"]
    offsets = java_client.run(["admin", "--bootstrap", bs, "list-offsets", "java"], 60, check=True)
    assert offsets.result is not None
    assert sum(end - start for start, end in offsets.result["offsets"].values()) == COUNT


def test_java_consumer_group_reads_everything_once(
    shared_broker: InProcessBroker, java_topic: list[list[object]]
) -> None:
    bs = shared_broker.bootstrap
    consumed = java_client.run(
        [
            "consume",
            "--bootstrap",
            bs,
            "--topic",
            "java",
            "--group",
            "java-g1",
            "--count",
            str(COUNT),
            "--timeout-ms",
            "60000",
        ],
        120,
        check=True,
    )
    records = consumed.records
    assert len(records) == COUNT
    assert {(p, o, k) for p, o, k, *_ in records} == {tuple(r) for r in java_topic}
    by_partition: dict[int, list[int]] = defaultdict(list)
    for partition, offset, *_ in records:
        by_partition[partition].append(offset)
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))
    group = java_client.run(["admin", "--bootstrap", bs, "describe-group", "java-g1"], 60)
    assert group.result is not None
    assert group.result["committed"] == {f"java:{p}": len(o) for p, o in by_partition.items()}


def test_kcat_lists_broker_and_consumes(
    shared_broker: InProcessBroker, java_topic: list[list[object]]
) -> None:
    cmd = kcat_command()
    listing = subprocess.run(
        [*cmd, "-L", "-b", shared_broker.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"broker 1 at 127.0.0.1:{shared_broker.port}" in listing
    assert 'topic "java" with 3 partitions' in listing
    consumed = subprocess.run(
        [*cmd, "-C", "-b", shared_broker.bootstrap, "-t", "java", "-e", "-q", "-f", "%p %o %k\\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\n")
    rows = {tuple(line.split(" ")) for line in consumed if line}
    assert rows == {(str(p), str(o), k) for p, o, k in java_topic}


def test_kcat_produces(shared_broker: InProcessBroker) -> None:
    cmd = kcat_command()
    lines = "".join(f"key{i}:value{i}\n" for i in range(50))
    subprocess.run(
        [*cmd, "-P", "-b", shared_broker.bootstrap, "-t", "kcat-in", "-K", ":"],
        input=lines,
        text=True,
        timeout=60,
        check=True,
    )
    out = subprocess.run(
        [*cmd, "-C", "-b", shared_broker.bootstrap, "-t", "kcat-in", "-e", "-q", "-f", "%k=%s\\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out == [f"key{i}=value{i}" for i in range(50)]


def test_kafka_python_round_trip(shared_broker: InProcessBroker) -> None:
    bs = shared_broker.bootstrap
    admin = kafka.KafkaAdminClient(bootstrap_servers=bs)
    admin.create_topics([NewTopic("kafka-python", 2, 1)])
    admin.close()
    producer = kafka.KafkaProducer(bootstrap_servers=bs, acks="all", compression_type="gzip")
    futures = [
        producer.send(
            "kafka-python",
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            headers=[("n", str(i).encode())],
        )
        for i in range(200)
    ]
    producer.flush()
    acked = {(f.get().partition, f.get().offset) for f in futures}
    producer.close()
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bs,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    consumer.assign([kafka.TopicPartition("kafka-python", p) for p in (0, 1)])
    records = list(consumer)
    consumer.close()
    assert {(r.partition, r.offset) for r in records} == acked
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(200))
    assert all(r.headers == [("n", r.value[1:])] for r in records)


def test_aiokafka_round_trip(shared_broker: InProcessBroker) -> None:
    bs = shared_broker.bootstrap

    async def run() -> list[aiokafka.ConsumerRecord]:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=bs, acks="all", enable_idempotence=True, compression_type="zstd"
        )
        await producer.start()
        try:
            for i in range(100):
                await producer.send("aiokafka", f"v{i}".encode(), key=b"same-key")
            await producer.flush()
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bs, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        consumer.assign([aiokafka.TopicPartition("aiokafka", 0)])
        records: list[aiokafka.ConsumerRecord] = []
        try:
            async with asyncio.timeout(20):
                while len(records) < 100:
                    batch = await consumer.getmany(timeout_ms=500)
                    for partition_records in batch.values():
                        records.extend(partition_records)
        finally:
            await consumer.stop()
        return records

    records = asyncio.run(run())
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(100)]
    assert [r.offset for r in records] == list(range(100))
