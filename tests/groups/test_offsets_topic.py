"""`__consumer_offsets`: what lag monitors and Kafka's own tools read from it.

A confluent-kafka consumer group commits; a lag-monitor-style reader (tests/groups/
offsets_reader.py, its own decoder) and Kafka's ConsoleConsumer with its
OffsetsMessageFormatter / GroupMetadataMessageFormatter read the commits back, also
after a restart, after a kill -9, and after offsets reached the metadata store without
their records (a crash between the two).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from contextplane.metadata.records import OffsetRow
from contextplane.metadata.sqlite import SqliteMetadataStore
from tests.groups.offsets_reader import decode_key, latest_offsets, read_all, read_by_partition
from tests.groups.support import Broker, Wire, wait_until
from tests.support.broker import BrokerProcess

PARTITIONS = 3


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    process = Broker(tmp_path_factory.mktemp("offsets-topic") / "broker").start()
    yield process
    process.stop()


def create_topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        future.result(10)
    return name


def consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> dict[int, int]:
    """Produce `count` messages, consume them in `group` and commit; the committed
    offsets by partition."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, value=f"m{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(15) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300,
        }
    )
    seen = 0

    def poll() -> None:
        nonlocal seen
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            seen += 1

    try:
        consumer.subscribe([topic])
        assert wait_until(lambda: seen >= count, 30, poll)
        committed = consumer.commit(asynchronous=False)
        assert committed is not None
        return {tp.partition: tp.offset for tp in committed if tp.topic == topic}
    finally:
        consumer.close()


def offsets_of(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    live = latest_offsets(read_all(bootstrap))
    return {p: c.offset for (g, t, p), c in live.items() if g == group and t == topic}


def test_metadata_lists_it_internal_and_produce_is_refused(broker: Broker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_topics(timeout=10).topics
    assert "__consumer_offsets" in listed
    assert len(listed["__consumer_offsets"].partitions) == 50
    wire = Wire(broker.port)
    try:
        response = wire.request(3, 12, topics=None, allow_auto_topic_creation=False,
                                include_topic_authorized_operations=False)  # fmt: skip
        entry = next(t for t in response.topics if t.name == "__consumer_offsets")
        assert entry.is_internal
        from conformance.wire import encode_batch, produce

        refused = produce(wire, "__consumer_offsets", encode_batch([b"x"]), partition=0)
        assert refused.error_code == 17  # INVALID_TOPIC_EXCEPTION
        assert refused.error_message is None
    finally:
        wire.close()


def test_lag_monitor_reads_every_committed_offset(broker: Broker) -> None:
    topic = create_topic(broker.bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    committed = consume_and_commit(broker.bootstrap, topic, group, 30)
    assert committed == {0: 10, 1: 10, 2: 10}
    assert offsets_of(broker.bootstrap, group, topic) == committed
    records = read_all(broker.bootstrap)
    stored = [decode_key(key)[1] for key, value in records if value and decode_key(key)[0] == 2]
    assert (group,) in stored, "the completed rebalance's group metadata is in the topic"


def test_deleted_group_leaves_tombstones(broker: Broker) -> None:
    topic = create_topic(broker.bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consume_and_commit(broker.bootstrap, topic, group, 6)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_consumer_groups([group])[group].result(10)
    assert offsets_of(broker.bootstrap, group, topic) == {}
    last = {}
    for key, value in read_all(broker.bootstrap):
        last[decode_key(key)] = value
    assert last[(2, (group,))] is None


def test_offsets_survive_restart_and_a_lost_append_is_repaired(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "restart").start()
    try:
        topic = create_topic(broker.bootstrap)
        group = "restart-group"
        committed = consume_and_commit(broker.bootstrap, topic, group, 9)
        broker.stop()
        # A crash between the metadata commit and the append: the store has an offset
        # the topic never received.
        store = SqliteMetadataStore(str(tmp_path / "restart" / "metadata.db"))

        async def commit_behind_the_topic() -> None:
            await store.open()
            try:
                await store.commit_offsets(
                    "lost-append", [OffsetRow(topic, 1, 42, -1, "m")], 1_700_000_000_000
                )
            finally:
                await store.close()

        asyncio.run(commit_behind_the_topic())
        broker.start()
        assert offsets_of(broker.bootstrap, group, topic) == committed
        assert offsets_of(broker.bootstrap, "lost-append", topic) == {1: 42}
    finally:
        broker.stop()


def test_offsets_survive_kill9(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "killed", settings={"group.initial.rebalance.delay.ms": "0"})
    broker.start()
    try:
        topic = create_topic(broker.bootstrap)
        group = "killed-group"
        committed = consume_and_commit(broker.bootstrap, topic, group, 12)
        broker.kill9()
        broker.start()
        assert offsets_of(broker.bootstrap, group, topic) == committed
    finally:
        broker.stop()


def _offsets_topic_policy(bootstrap: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "__consumer_offsets")
    configs = admin.describe_configs([resource])[resource].result(10)
    return str(configs["cleanup.policy"].value)


def _set_offsets_topic_configs(bootstrap: str, configs: dict[str, str]) -> None:
    """IncrementalAlterConfigs: SET each of `configs` on the topic."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(
        ConfigResource.Type.TOPIC, "__consumer_offsets", incremental_configs=entries
    )
    admin.incremental_alter_configs([resource])[resource].result(10)


def test_the_topic_is_compacted_and_a_delete_topic_of_an_older_version_is_switched(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path / "policy").start()
    try:
        assert _offsets_topic_policy(broker.bootstrap) == "compact"  # Kafka's
        # What a version without compaction created; switched to compact at the next start.
        legacy = {
            "cleanup.policy": "delete",
            "retention.ms": "604800000",
            "retention.bytes": "-1",
            "segment.bytes": "104857600",
        }
        _set_offsets_topic_configs(broker.bootstrap, legacy)
        assert _offsets_topic_policy(broker.bootstrap) == "delete"
        broker.restart()
        assert _offsets_topic_policy(broker.bootstrap) == "compact"
        # An operator's own choice is theirs: kept across a restart.
        _set_offsets_topic_configs(broker.bootstrap, dict(legacy, **{"retention.ms": "1000"}))
        broker.restart()
        assert _offsets_topic_policy(broker.bootstrap) == "delete"
    finally:
        broker.stop()


def test_offsets_outlive_the_retention_of_their_first_records(tmp_path: Path) -> None:
    """With `delete` added to the topic's policy and a short retention, the coordinator
    writes every live offset again every half of it, so once retention has deleted the
    commit's own records a reader from the earliest offset still sees every committed
    offset."""
    settings = {
        "offsets.topic.retention.ms": "2000",
        "log.roll.ms": "300",  # each upload of the topic's partition a segment of its own
        "log.retention.check.interval.ms": "200",
    }
    broker = Broker(tmp_path / "snap", settings=settings).start()
    try:
        _set_offsets_topic_configs(
            broker.bootstrap,
            {"cleanup.policy": "compact,delete", "retention.ms": "2000", "retention.bytes": "-1"},
        )
        broker.restart()  # the writer reads the policy at its next snapshot: at start
        topic = create_topic(broker.bootstrap)
        group = "snap-group"
        committed = consume_and_commit(broker.bootstrap, topic, group, 3)
        partition = (_java_hash(group) & 0x7FFFFFFF) % 50
        first_end = _watermarks(broker.bootstrap, partition)[1]
        assert first_end > 0
        assert wait_until(
            lambda: _watermarks(broker.bootstrap, partition)[0] >= first_end,
            30,
            lambda: time.sleep(0.2),
        ), "retention deleted the records of the commit"
        assert offsets_of(broker.bootstrap, group, topic) == committed
    finally:
        broker.stop()


def _watermarks(bootstrap: str, partition: int) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "peek"})
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition("__consumer_offsets", partition), 10
        )
        return int(low), int(high)
    finally:
        consumer.close()


def _kafka_console_consumer(bootstrap: str, formatter: str, partition: int, count: int) -> str:
    """Kafka's ConsoleConsumer over one partition of __consumer_offsets, from its start."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    libs = fetch_kafka_tools()
    result = subprocess.run(
        [java, "-cp", f"{libs}/*", "org.apache.kafka.tools.consumer.ConsoleConsumer"]
        + ["--bootstrap-server", bootstrap, "--topic", "__consumer_offsets"]
        + ["--partition", str(partition), "--offset", "earliest", "--formatter", formatter]
        + ["--max-messages", str(count), "--timeout-ms", "20000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


def test_kafka_formatters_read_the_commits(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "formatter").start()
    try:
        topic = create_topic(broker.bootstrap)
        group = "formatted-group"
        consume_and_commit(broker.bootstrap, topic, group, 9)
        partition = (_java_hash(group) & 0x7FFFFFFF) % 50
        # The rebalance's group metadata, the commit of 3 partitions, the empty group.
        count = 5
        offsets = _kafka_console_consumer(
            broker.bootstrap,
            "org.apache.kafka.tools.consumer.OffsetsMessageFormatter",
            partition,
            count,
        )
        for index in range(PARTITIONS):
            key = f'"data":{{"group":"{group}","topic":"{topic}","partition":{index}}}'
            assert key in offsets, offsets
        assert offsets.count('"value":{"version":4,"data":{"offset":3,') == PARTITIONS, offsets
        groups = _kafka_console_consumer(
            broker.bootstrap,
            "org.apache.kafka.tools.consumer.GroupMetadataMessageFormatter",
            partition,
            count,
        )
        assert f'"data":{{"group":"{group}"}}' in groups, groups
        assert '"protocolType":"consumer","generation":1,"protocol":"range"' in groups, groups
        assert '"clientId":"rdkafka"' in groups, groups
    finally:
        broker.stop()


def test_commits_land_in_the_groups_partition(broker: Broker) -> None:
    """Kafka's partitionFor: abs(groupId.hashCode()) % 50."""
    topic = create_topic(broker.bootstrap)
    group = "hashed-group"
    expected = (_java_hash(group) & 0x7FFFFFFF) % 50
    consume_and_commit(broker.bootstrap, topic, group, 3)
    groups_by_partition = {
        partition: {decode_key(key)[1][0] for key, _ in records}
        for partition, records in read_by_partition(broker.bootstrap).items()
    }
    assert [p for p, groups in groups_by_partition.items() if group in groups] == [expected]


def _java_hash(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def test_a_deleted_offsets_topic_comes_back_and_its_groups_are_coordinated_again(
    tmp_path: Path,
) -> None:
    """DeleteTopics of `__consumer_offsets` (Kafka allows it) takes every group's shard:
    the broker creates the topic again at once, leads its partitions and coordinates the
    groups with their committed offsets, which live in the metadata store."""
    broker = Broker(tmp_path / "broker").start()
    try:
        topic = create_topic(broker.bootstrap)
        committed = consume_and_commit(broker.bootstrap, topic, "kept", 6)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.delete_topics(["__consumer_offsets"])["__consumer_offsets"].result(15)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "kept"})
        wanted = [TopicPartition(topic, p) for p in range(PARTITIONS)]

        def offsets() -> dict[int, int] | None:
            try:
                found = consumer.committed(wanted, timeout=5)
            except Exception:  # noqa: BLE001 - NOT_COORDINATOR until the topic is back
                return None
            return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

        try:
            assert wait_until(lambda: offsets() == committed, 30, lambda: time.sleep(0.2))
        finally:
            consumer.close()
        assert offsets_of(broker.bootstrap, "kept", topic) == committed  # the snapshot
    finally:
        broker.stop()
