"""Share groups' dead-letter topics (KIP-1191) with the Java 4.4 `KafkaShareConsumer`: a
record the consumer REJECTs, and one it releases until the delivery count limit archives
it, are copied to the group's `errors.deadletterqueue.topic.name` with Kafka's
`__dlq.errors.*` headers (and, with `errors.deadletterqueue.copy.record.enable`, the
record's key and value), exactly as Apache Kafka 4.4 copies them; the copies survive a
restart, which copies nothing
again, and a broker killed with SIGKILL mid-work, whose restart may repeat a copy (KIP-1191
allows it) but never loses one; a missing topic is created when
`errors.deadletterqueue.auto.create.topics.enable` is on, and a topic not enabled with
`errors.deadletterqueue.group.enable` gets nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from contextplane.console.metrics import BrokerMetrics
from harness import kafka_reference
from tests.e2e.test_share_consumers import TIMEOUT_S, Delivery, JavaConsumer
from tests.support.broker import BrokerProcess
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.twins import kafka_twin
from tests.support.wait import wait_until

LIMIT = 2  # group.share.delivery.count.limit (Kafka's least)
SETTINGS = {
    "group.share.record.lock.duration.ms": "5000",
    "group.share.delivery.count.limit": str(LIMIT),
    "errors.deadletterqueue.auto.create.topics.enable": "true",
    # Members learn their assignment at a heartbeat: 1 s rather than Kafka's 5 s.
    "group.share.heartbeat.interval.ms": "1000",
    "group.share.min.heartbeat.interval.ms": "1000",
}
# Kafka bounds the lock duration and the limit by these (its defaults are above them).
KAFKA_MINIMUMS = {
    "group.share.min.record.lock.duration.ms": "1000",
    "group.share.min.delivery.count.limit": str(LIMIT),
}
Broker = InProcessBroker | BrokerProcess | kafka_reference.KafkaHandle


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    process = InProcessBroker(
        tmp_path_factory.mktemp("share-dlq") / "broker",
        settings=SETTINGS,
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["contextplane", kafka_twin("apache-kafka")])
def cluster(
    request: pytest.FixtureRequest, broker: InProcessBroker, tmp_path: Path
) -> Iterator[Broker]:
    """The module's broker, or Apache Kafka 4.4 with the same share-group settings."""
    if request.param == "contextplane":
        yield broker
        return
    kafka = kafka_reference.start(
        data_dir=tmp_path / "kafka", timeout=120, extra_props={**SETTINGS, **KAFKA_MINIMUMS}
    )
    try:
        yield kafka
    finally:
        kafka.stop()


def _topics(broker: Broker, source: str, dlq: str, enabled: bool | None) -> None:
    """The source topic, and the two-partition DLQ topic unless `enabled` is None."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = [NewTopic(source, 1, 1)]
    if enabled is not None:
        # Upper case: Kafka's BOOLEAN takes either case (TRUE was read as false here).
        gate = {"errors.deadletterqueue.group.enable": str(enabled).upper()}
        topics.append(NewTopic(dlq, 2, 1, config=gate))
    for future in admin.create_topics(topics).values():
        future.result(30)


def _group_configs(broker: Broker, group: str, configs: dict[str, str]) -> None:
    with RawClient(broker.bootstrap) as client:
        altered = client.request(
            44,  # IncrementalAlterConfigs, as kafka-configs.sh --entity-type groups sends it
            1,
            resources=[
                {
                    "resource_type": 32,  # GROUP
                    "resource_name": group,
                    "configs": [
                        {"name": name, "config_operation": 0, "value": value}
                        for name, value in configs.items()
                    ],
                }
            ],
            validate_only=False,
        )
        assert altered.responses[0].error_code == 0, altered


def _produce(broker: Broker, topic: str, values: list[str]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for index, value in enumerate(values):
        producer.produce(
            topic, key=f"k{index}".encode(), value=value.encode(), headers=[("trace", b"t")]
        )
    assert producer.flush(10) == 0


def _work(broker: InProcessBroker, topic: str, group: str, values: list[str]) -> list[Delivery]:
    """One explicit Java share consumer until every record is done (accepted, rejected,
    or released `LIMIT` times); closed (its acknowledgements committed) before returning."""
    consumer = JavaConsumer.start("worker", broker.bootstrap, topic, group, "explicit")
    seen: list[Delivery] = []

    def done() -> bool:
        seen.extend(consumer.deliveries())
        finished = {d.offset for d in seen if d.did in ("accept", "reject")}
        finished |= {d.offset for d in seen if d.did == "release" and d.count == LIMIT}
        return finished >= set(range(len(values)))

    try:
        wait_until(done, TIMEOUT_S, "every record done", poll_s=0.1)
    finally:
        consumer.close()
    return seen + consumer.deliveries()


def _read_all(broker: Broker, topic: str, at_least: int = 0) -> list[dict[str, object]]:
    """Every record of `topic`, read to its end once it holds `at_least` (Apache Kafka
    writes its copies after answering the acknowledgement)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "dlq-reader",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # the end reported at once, not after a 500-ms empty fetch
        }
    )
    try:
        partitions = set(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
        assert partitions, f"no topic {topic}"
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[dict[str, object]] = []
        at_end: set[int] = set()

        def drained() -> bool:
            message = consumer.poll(0.2)
            if message is None:
                return False
            if message.error():
                at_end.add(message.partition())
                return at_end == partitions and len(out) >= at_least
            out.append(
                {
                    "partition": message.partition(),
                    "key": message.key(),
                    "value": message.value(),
                    "headers": [(k, v) for k, v in message.headers() or []],
                }
            )
            return False

        wait_until(drained, TIMEOUT_S, f"{topic} read to its end", poll_s=0)
        return out
    finally:
        consumer.close()


def test_rejected_and_exhausted_records_are_copied_with_kafkas_headers(cluster: Broker) -> None:
    _topics(cluster, "orders", "dlq.orders", enabled=True)
    _group_configs(
        cluster,
        "order-workers",
        {
            "share.auto.offset.reset": "earliest",
            # Stored as given, read trimmed (Java's trim: NUL too) and in either case.
            "errors.deadletterqueue.topic.name": " dlq.orders\t",
            "errors.deadletterqueue.copy.record.enable": "TRUE\x00",
        },
    )
    values = ["job-0", "reject-1", "poison-2", "job-3"]
    _produce(cluster, "orders", values)
    seen = _work(cluster, "orders", "order-workers", values)
    assert [(d.count, d.did) for d in seen if d.offset == 2] == [(1, "release"), (2, "release")]

    def copied(offset: int, count: int, message: str) -> dict[str, object]:
        return {
            "partition": 0,  # the source partition modulo the DLQ topic's partitions
            "key": f"k{offset}".encode(),
            "value": values[offset].encode(),
            "headers": [  # the record's own header ("trace") is not copied, as in Kafka 4.4
                ("__dlq.errors.topic", b"orders"),
                ("__dlq.errors.partition", b"0"),
                ("__dlq.errors.offset", str(offset).encode()),
                ("__dlq.errors.group", b"order-workers"),
                ("__dlq.errors.delivery.count", str(count).encode()),
                ("__dlq.errors.message", message.encode()),
            ],
        }

    expected = [
        copied(1, 1, "Offset rejected by client."),
        copied(2, LIMIT, "Offset delivery count exceeded the threshold."),
    ]
    assert _read_all(cluster, "dlq.orders", len(expected)) == expected
    if isinstance(cluster, InProcessBroker):
        # Durable and written once: a restart keeps the copies and copies nothing again.
        cluster.restart()
        assert _read_all(cluster, "dlq.orders") == expected


def test_an_auto_created_topic_gets_headers_only_and_a_closed_topic_nothing(
    broker: InProcessBroker,
) -> None:
    # errors.deadletterqueue.auto.create.topics.enable is on: dlq.bare is made at the copy.
    _topics(broker, "bare", "dlq.bare", enabled=None)
    _topics(broker, "closed", "dlq.closed", enabled=False)
    for source in ("bare", "closed"):
        _group_configs(
            broker,
            f"{source}-workers",
            {
                "share.auto.offset.reset": "earliest",
                "errors.deadletterqueue.topic.name": f"dlq.{source}",
            },
        )
        _produce(broker, source, ["reject-0", "job-1"])
        _work(broker, source, f"{source}-workers", ["reject-0", "job-1"])
    [bare] = _read_all(broker, "dlq.bare")
    assert (bare["key"], bare["value"]) == (None, None)  # copy.record.enable is false
    assert [k for k, _ in bare["headers"]] == [  # type: ignore[attr-defined]
        "__dlq.errors.topic",
        "__dlq.errors.partition",
        "__dlq.errors.offset",
        "__dlq.errors.group",
        "__dlq.errors.delivery.count",
        "__dlq.errors.message",
    ]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [made] = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "dlq.bare")]).values()
    assert made.result(30)["errors.deadletterqueue.group.enable"].value == "true"
    # errors.deadletterqueue.group.enable=false: the record is archived without a copy.
    assert _read_all(broker, "dlq.closed") == []
    # KIP-1191's meters under Kafka's ShareGroupMetrics names, per group: the copy
    # written in one append; the closed topic's refusal is no produce request.
    meters = _dlq_meters(broker)
    assert meters["deadletterqueuerecordcount", "bare-workers"] == 1
    assert meters["deadletterqueuetotalproducerequests", "bare-workers"] == 1
    assert ("deadletterqueuefailedproducerequests", "bare-workers") not in meters
    assert not [key for key in meters if key[1] == "closed-workers"]


def _dlq_meters(broker: InProcessBroker) -> dict[tuple[str, str], int]:
    """`kafka_server_sharegroupmetrics_*_total{group=...}` on /metrics."""
    assert broker.broker is not None
    metrics = BrokerMetrics(broker.broker.pipeline.services)
    found = {}
    for line in broker.call(metrics.exposition()).decode().splitlines():
        if line.startswith("kafka_server_sharegroupmetrics_"):
            series, count = line.split("} ")
            name = series.removeprefix("kafka_server_sharegroupmetrics_").split("_total{")[0]
            found[name, series.split('group="')[1].split('"')[0]] = int(float(count))
    return found


def _start_offset(broker: Broker, group: str, topic: str) -> int:
    """The share-partition start offset of `topic`-0 (DescribeShareGroupOffsets)."""
    with RawClient(broker.bootstrap) as client:
        [described] = client.call(90, 0, groups=[{"group_id": group, "topics": None}]).groups
    offsets = [
        p.start_offset for t in described.topics if t.topic_name == topic for p in t.partitions
    ]
    return offsets[0] if offsets else -1


def test_a_broker_killed_mid_work_loses_no_copy(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings=SETTINGS).start()
    try:
        _topics(broker, "jobs", "dlq.jobs", enabled=True)
        _group_configs(
            broker,
            "job-workers",
            {
                "share.auto.offset.reset": "earliest",
                "errors.deadletterqueue.topic.name": "dlq.jobs",
            },
        )
        values = [f"reject-{i}" if i % 3 == 0 else f"job-{i}" for i in range(12)]
        _produce(broker, "jobs", values)
        first = JavaConsumer.start("first", broker.bootstrap, "jobs", "job-workers", "explicit")
        seen: list[Delivery] = []

        def rejecting() -> bool:
            seen.extend(first.deliveries())
            return any(d.did == "reject" for d in seen)

        try:
            wait_until(rejecting, TIMEOUT_S, "a first rejection", poll_s=0.01)
            broker.kill9()  # wherever its copies or its acknowledgements were
        finally:
            first.process.kill()  # its client fails with the broker; what it held returns
            first.process.wait(timeout=TIMEOUT_S)
        broker.start()
        second = JavaConsumer.start("second", broker.bootstrap, "jobs", "job-workers", "explicit")
        try:
            wait_until(
                lambda: _start_offset(broker, "job-workers", "jobs") == len(values),
                TIMEOUT_S,
                "every record done",
                poll_s=0.2,
            )
        finally:
            second.close()
        copies = _read_all(broker, "dlq.jobs")
    finally:
        broker.stop()
    copied = [int(dict(c["headers"])["__dlq.errors.offset"]) for c in copies]  # type: ignore[call-overload]
    # Every rejected record has a copy (one, or two if the kill fell between a copy and
    # its archive being stored); no other record has one.
    assert set(copied) == {i for i, v in enumerate(values) if v.startswith("reject")}
