"""`GET /metrics` on the broker's HTTP surface (`http.port`) against what clients see.

A real broker process and confluent-kafka: the per-topic counters match what was produced,
refused and fetched, the offsets and the group lag match the watermarks and commits the
client reads back, the exposition parses as Prometheus's text format with each family once,
and a deleted topic leaves no series. A taken port: an error when `http.port` was given, a
warning and a serving broker when it is the default.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.broker import BrokerProcess
from tests.support.prometheus_queries import (
    alert_queries,
    check_queries,
    dashboard_queries,
    exported,
)
from tests.support.wait import wait_until

_METRICS_AT = re.compile(r"metrics at http://(\S+?)/metrics")
TOPIC = "orders"
SMALL = "small-records"  # max.message.bytes=1000: a larger record is refused
FORBIDDEN = "forbidden"  # a DENY ACL on writes for everyone
RECORDS = 300
VALUE = b"v" * 200


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    settings = {
        "http.port": "0",
        # An authorizer that allows what no ACL covers: one DENY makes a denial to count.
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    process = BrokerProcess(tmp_path / "broker", settings=settings).start()
    try:
        yield process
    finally:
        process.stop()


def _metrics_url(broker: BrokerProcess, start: int = 1) -> str:
    """The endpoint the broker's `start`-th start announced (its log spans restarts)."""

    def announced() -> str | None:
        assert broker.log_path is not None
        found = _METRICS_AT.findall(broker.log_path.read_text(errors="replace"))
        return None if len(found) < start else f"http://{found[start - 1]}/metrics"

    return wait_until(announced, timeout_s=20, what="the metrics endpoint's log line")


def _scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples[(name, tuple(sorted(labels.items())))]


def every_put_committed(samples: dict) -> bool:  # type: ignore[type-arg]
    """Every object the store was sent is committed and settled in the broker (no
    object compaction: its writes are not uploads)."""
    return _value(samples, "contextplane_upload_bytes_total") == _value(
        samples, "contextplane_object_store_bytes_total", direction="written"
    )


def _labels(group: tuple[str, str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(zip(("consumergroup", "topic", "partition"), group, strict=True)))


def test_metrics_match_what_clients_produced_consumed_and_committed(
    broker: BrokerProcess,
) -> None:
    url = _metrics_url(broker)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    created = admin.create_topics(
        [
            NewTopic(TOPIC, num_partitions=3, replication_factor=1),
            NewTopic(SMALL, 1, 1, config={"max.message.bytes": "1000"}),
        ]
    )
    for future in created.values():
        future.result(30)
    deny = AclBinding(
        ResourceType.TOPIC, FORBIDDEN, ResourcePatternType.LITERAL, "User:ANONYMOUS", "*",
        AclOperation.WRITE, AclPermissionType.DENY,
    )  # fmt: skip
    for future in admin.create_acls([deny]).values():
        future.result(30)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(TOPIC, key=str(i).encode(), value=VALUE, partition=i % 3)
    refused: list[ck.KafkaError] = []
    producer.produce(
        SMALL,
        value=b"x" * 5000,
        on_delivery=lambda err, _msg: refused.append(err),
    )
    producer.produce(FORBIDDEN, value=b"no", on_delivery=lambda err, _msg: refused.append(err))
    assert producer.flush(30) == 0
    assert sorted(e.code() for e in refused) == sorted(
        [ck.KafkaError.MSG_SIZE_TOO_LARGE, ck.KafkaError.TOPIC_AUTHORIZATION_FAILED]
    )

    consumer = ck.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "copilot-readers",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([ck.TopicPartition(TOPIC, p) for p in range(3)])
    read = 0
    deadline = time.monotonic() + 30
    while read < RECORDS // 2 and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            read += 1
    assert read == RECORDS // 2
    consumer.commit(asynchronous=False)
    committed = {
        tp.partition: tp.offset
        for tp in consumer.committed([ck.TopicPartition(TOPIC, p) for p in range(3)], timeout=10)
    }
    watermarks = {
        p: consumer.get_watermark_offsets(ck.TopicPartition(TOPIC, p))[1] for p in range(3)
    }
    consumer.close()

    text, samples = _scrape(url)
    types = re.findall(r"^# TYPE (\S+) ", text, flags=re.M)
    assert len(types) == len(set(types)), "a metric family is written twice"

    assert (
        _value(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic=TOPIC) == RECORDS
    )
    assert _value(samples, "kafka_server_brokertopicmetrics_messagesin_total") >= RECORDS
    bytes_in = _value(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic=TOPIC)
    assert RECORDS * len(VALUE) < bytes_in < RECORDS * (len(VALUE) + 100)
    bytes_out = _value(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic=TOPIC)
    assert bytes_out >= bytes_in / 2  # at least the half read (whole batches are sent)
    assert (
        _value(samples, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic=SMALL)
        == 1
    )
    assert (
        _value(samples, "kafka_server_brokertopicmetrics_failedproducerequests_total", topic=TOPIC)
        == 0
    )
    assert (
        _value(samples, "kafka_server_brokertopicmetrics_totalfetchrequests_total", topic=TOPIC)
        >= 1
    )

    assert _value(samples, "kafka_network_requestmetrics_requests_total", request="Produce") >= 2
    assert (
        _value(samples, "kafka_network_requestmetrics_requests_total", request="OffsetCommit") == 1
    )
    p99 = _value(
        samples, "kafka_network_requestmetrics_totaltimems", request="Produce", quantile="0.99"
    )
    p50 = _value(
        samples, "kafka_network_requestmetrics_totaltimems", request="Produce", quantile="0.5"
    )
    assert 0 < p50 <= p99
    # ErrorsPerSec: each partition's code of every Produce response, NONE included, so
    # as many as the partition produce requests; the refused record's code; librdkafka's
    # Metadata for the topic nobody may describe answered with its topic's code.
    errors = "kafka_network_requestmetrics_errors_total"
    produce_codes = [
        value
        for (name, labels), value in samples.items()
        if name == errors and ("request", "Produce") in labels
    ]
    assert sum(produce_codes) == _value(
        samples, "kafka_server_brokertopicmetrics_totalproducerequests_total"
    )
    assert _value(samples, errors, request="Produce", error="MESSAGE_TOO_LARGE") == 1
    assert _value(samples, errors, request="Metadata", error="TOPIC_AUTHORIZATION_FAILED") >= 1
    assert _value(samples, errors, request="ApiVersions", error="NONE") == _value(
        samples, "kafka_network_requestmetrics_requests_total", request="ApiVersions"
    )
    for quantile in ("0.5", "0.999"):  # no quota: no throttle
        throttle = "kafka_network_requestmetrics_throttletimems"
        assert _value(samples, throttle, request="Produce", quantile=quantile) == 0

    assert _value(samples, "kafka_brokers") == 1
    assert _value(samples, "kafka_topic_partitions", topic=TOPIC) == 3
    lag_sum = 0
    for p in range(3):
        labels = {"topic": TOPIC, "partition": str(p)}
        assert _value(samples, "kafka_topic_partition_current_offset", **labels) == watermarks[p]
        assert _value(samples, "kafka_topic_partition_oldest_offset", **labels) == 0
        assert _value(samples, "kafka_topic_partition_leader", **labels) == 1
        group = ("copilot-readers", TOPIC, str(p))
        current = ("kafka_consumergroup_current_offset", _labels(group))
        if committed[p] < 0:  # nothing read there: no committed offset, no series
            assert current not in samples
            continue
        assert samples[current] == committed[p]
        lag = samples[("kafka_consumergroup_lag", _labels(group))]
        assert lag == watermarks[p] - committed[p]
        lag_sum += lag
    assert sum(max(o, 0) for o in committed.values()) == RECORDS // 2
    assert lag_sum == sum(watermarks[p] - o for p, o in committed.items() if o >= 0) > 0
    assert (
        _value(samples, "kafka_consumergroup_lag_sum", consumergroup="copilot-readers", topic=TOPIC)
        == lag_sum
    )

    # librdkafka's Metadata for the topic is refused first (an ACL on it, none allowing
    # DESCRIBE: Kafka's rule), so the produce fails there; either way, counted.
    denials = [
        value
        for (name, labels), value in samples.items()
        if name == "contextplane_authorization_denied_total"
        and ("resource_type", "TOPIC") in labels
    ]
    assert sum(denials) >= 1
    assert _value(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    # Every partition served (tests/e2e/test_cluster_failover.py counts offline ones).
    assert _value(samples, "kafka_server_replicamanager_offlinepartitionscount") == 0
    assert _value(samples, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    syncs = _value(samples, "contextplane_wal_sync_seconds_count")
    assert (
        syncs >= 1 and _value(samples, "contextplane_wal_sync_seconds_bucket", le="+Inf") == syncs
    )
    assert 0 < _value(samples, "contextplane_wal_sync_seconds_sum") < syncs * 10

    limit = _value(samples, "contextplane_memory_budget_bytes", kind="limit")
    assert 0 < _value(samples, "contextplane_memory_budget_bytes", kind="used") < limit
    assert _value(samples, "process_resident_memory_bytes") > 0

    names = exported(text)
    check_queries(dashboard_queries("broker"), names, "the Grafana dashboard")
    check_queries(alert_queries("contextplane-broker"), names, "the broker's alert rules")

    for future in admin.delete_topics([SMALL]).values():
        future.result(30)
    _, after = _scrape(url)
    assert not [key for key in after if ("topic", SMALL) in key[1]], (
        "a deleted topic's series stayed"
    )


def _up(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "contextplane.cli.launch",
            "up",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_taken_http_port_is_an_error_when_given_and_a_warning_by_default(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    try:
        given = _up(tmp_path / "given", "--set", f"http.port={taken}")
        out, _ = given.communicate(timeout=60)
        assert given.returncode == 1, out
        assert f"http.port 127.0.0.1:{taken}" in out and "in use" in out
        assert "broker ready" not in out

        # The default port, 8080: held here unless something else already holds it.
        default_holder = socket.socket()
        try:
            default_holder.bind(("127.0.0.1", 8080))
            default_holder.listen()
        except OSError:
            pass  # taken already: the case under test all the same
        try:
            default = _up(tmp_path / "default")
            assert default.stdout is not None
            lines = []
            for line in default.stdout:
                lines.append(line)
                if "broker ready" in line:
                    break
            default.terminate()
            rest, _ = default.communicate(timeout=60)
            log = "".join(lines) + rest
            assert "broker ready" in log
            assert "no HTTP surface (/metrics): 127.0.0.1:8080 is taken" in log
            assert default.returncode == 0, log
        finally:
            default_holder.close()
    finally:
        holder.close()


def _read_all(bootstrap: str, topic: str, count: int) -> int:
    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "storage-metrics"})
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    read = 0
    deadline = time.monotonic() + 30
    while read < count and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            read += 1
    consumer.close()
    return read


def test_storage_metrics_count_uploads_and_where_reads_were_answered(tmp_path: Path) -> None:
    """Uploads match the object store's written bytes; after a restart (an empty log
    cache) a read goes to objects and misses the block cache; the same read again hits."""
    broker = BrokerProcess(
        tmp_path / "broker", settings={"http.port": "0", "upload.interval.ms": "100"}
    ).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("uploaded", 1, 1)])["uploaded"].result(30)
        producer = ck.Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(RECORDS):
            producer.produce("uploaded", value=VALUE + str(i).encode())
        assert producer.flush(30) == 0
        url = _metrics_url(broker)

        def uploaded() -> dict | None:  # type: ignore[type-arg]
            # An upload's PUT is counted by the store before the upload is committed and
            # counted: a scrape between the two sees them apart, so wait for one that
            # sees every upload done.
            _, samples = _scrape(url)
            done = _value(samples, "contextplane_uploads_total") >= 1 and every_put_committed(
                samples
            )
            return samples if done else None

        samples = wait_until(uploaded, timeout_s=30, what="uploads matching the bytes written")
        assert _value(samples, "contextplane_upload_failures_total") == 0
        assert _value(samples, "contextplane_object_compaction_passes_total") >= 0
        assert _value(samples, "contextplane_log_cleaner_bytes_total", direction="read") == 0
        broker.stop()
        broker.start()
        url = _metrics_url(broker, start=2)
        _, before = _scrape(url)
        assert _value(before, "contextplane_partition_reads_total", source="objects") == 0
        assert _read_all(broker.bootstrap, "uploaded", RECORDS) == RECORDS
        _, first = _scrape(url)
        assert _value(first, "contextplane_partition_reads_total", source="objects") >= 1
        assert _value(first, "contextplane_block_cache_reads_total", result="miss") >= 1
        hits = _value(first, "contextplane_block_cache_reads_total", result="hit")
        assert _read_all(broker.bootstrap, "uploaded", RECORDS) == RECORDS
        _, second = _scrape(url)
        assert _value(second, "contextplane_block_cache_reads_total", result="hit") > hits
    finally:
        broker.stop()


def test_group_members_count_classic_and_kip848_members(broker: BrokerProcess) -> None:
    """kafka_consumergroup_members counts a group's members whichever protocol it speaks,
    as `kafka-consumer-groups.sh --describe` lists them."""
    url = _metrics_url(broker)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        future.result(30)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(TOPIC, value=VALUE)
    assert producer.flush(10) == 0
    consumers = {}
    for protocol in ("classic", "consumer"):
        consumer = ck.Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": f"readers-{protocol}",
                "group.protocol": protocol,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([TOPIC])
        consumers[protocol] = consumer
    for consumer in consumers.values():
        message = wait_until(lambda c=consumer: c.poll(0.5), timeout_s=60, what="a record")
        assert message.error() is None
        consumer.commit(message, asynchronous=False)  # a group is exported once it commits

    def members() -> dict[str, float]:
        _, samples = _scrape(url)
        return {
            protocol: samples.get(
                ("kafka_consumergroup_members", (("consumergroup", f"readers-{protocol}"),)), -1
            )
            for protocol in consumers
        }

    assert members() == {"classic": 1, "consumer": 1}
    for consumer in consumers.values():
        consumer.close()  # leaves its group
    wait_until(
        lambda: members() == {"classic": 0, "consumer": 0}, timeout_s=30, what="both groups empty"
    )
