"""End-to-end checks of the reference harness: real Apache Kafka, the Java client, and kcat.

Nothing is mocked: these start a real broker JVM on free loopback ports. Prerequisites come
from harness/install.sh (kcat, Maven, a JDK; jars are fetched into ~/.cache/contextplane).
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

# The harness lives at the repo root, which plain `pytest` does not put on sys.path.
_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from harness import java_client, kafka_reference  # noqa: E402
from harness.kcat import kcat_command, librdkafka_version  # noqa: E402

# Apache Kafka's JVM starts for the module (half a minute and more): CI runs it, the quick
# subset (-m "not slow") does not.
pytestmark = pytest.mark.slow

TOPIC = "reference-roundtrip"
PARTITIONS = 3
COUNT = 1000


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kafka_reference.KafkaHandle]:
    java_client.build()  # compile before the broker runs, so its JVM isn't competing for CPU
    handle = kafka_reference.start(data_dir=tmp_path_factory.mktemp("kafka-ref"), timeout=90)
    print(f"kafka {handle.version} up in {handle.start_seconds:.2f}s at {handle.bootstrap}")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def loaded_topic(kafka: kafka_reference.KafkaHandle) -> list[list[object]]:
    """Create a 3-partition topic and produce COUNT records (acks=all, lz4) into it."""
    bs = kafka.bootstrap
    java_client.run(
        ["admin", "--bootstrap", bs, "create-topic", TOPIC, str(PARTITIONS)], 90, check=True
    )
    res = java_client.run(
        [
            "produce",
            "--bootstrap",
            bs,
            "--topic",
            TOPIC,
            "--count",
            str(COUNT),
            "--acks",
            "all",
            "--compression",
            "lz4",
            "--key-prefix",
            "k-",
            "--headers",
            "origin=harness",
        ],
        120,
        check=True,
    )
    result = res.result
    assert result is not None
    assert result["acked"] == COUNT and result["errors"] == 0
    return result["records"]


def test_probe_speaks_kafka(kafka: kafka_reference.KafkaHandle) -> None:
    versions = kafka_reference.api_versions(kafka.host, kafka.port)
    assert 18 in versions and 0 in versions  # ApiVersions and Produce
    assert kafka_reference.metadata_brokers(kafka.host, kafka.port) == [
        (1, "127.0.0.1", kafka.port)
    ]


def test_admin_sees_cluster_and_topic(
    kafka: kafka_reference.KafkaHandle, loaded_topic: list[list[object]]
) -> None:
    cluster = java_client.run(
        ["admin", "--bootstrap", kafka.bootstrap, "describe-cluster"], 60, check=True
    ).result
    assert cluster is not None
    assert cluster["nodes"] == [[1, "127.0.0.1", kafka.port]]
    topics = java_client.run(
        ["admin", "--bootstrap", kafka.bootstrap, "list-topics"], 60, check=True
    ).result
    assert topics is not None and TOPIC in topics["topics"]


def test_java_roundtrip_exactly_once_contiguous(
    kafka: kafka_reference.KafkaHandle, loaded_topic: list[list[object]]
) -> None:
    res = java_client.run(
        [
            "consume",
            "--bootstrap",
            kafka.bootstrap,
            "--topic",
            TOPIC,
            "--group",
            "ref-g1",
            "--count",
            str(COUNT),
            "--timeout-ms",
            "60000",
        ],
        120,
        check=True,
    )
    records = res.records
    assert len(records) == COUNT
    keys = [r[2] for r in records]
    assert sorted(keys) == sorted(f"k-{i}" for i in range(COUNT))  # each key exactly once
    for _, _, key, value, headers in records:
        assert value == "value-" + key.removeprefix("k-")
        assert headers == [["origin", "harness"]]

    by_partition: dict[int, list[int]] = defaultdict(list)
    for partition, offset, *_ in records:
        by_partition[partition].append(offset)
    assert set(by_partition) == set(range(PARTITIONS))
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))  # contiguous from 0

    # What the consumer saw is exactly what the producer was acknowledged for.
    assert {(p, o, k) for p, o, k, *_ in records} == {tuple(r) for r in loaded_topic}

    group = java_client.run(
        ["admin", "--bootstrap", kafka.bootstrap, "describe-group", "ref-g1"], 60, check=True
    ).result
    assert group is not None
    assert group["committed"] == {f"{TOPIC}:{p}": len(offs) for p, offs in by_partition.items()}


def test_kcat_lists_broker_and_reads_topic(
    kafka: kafka_reference.KafkaHandle, loaded_topic: list[list[object]]
) -> None:
    cmd = kcat_command()
    print(f"kcat via {cmd} (librdkafka {librdkafka_version(cmd)})")
    listing = subprocess.run(
        [*cmd, "-L", "-b", kafka.bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"broker 1 at 127.0.0.1:{kafka.port}" in listing
    assert f'topic "{TOPIC}" with {PARTITIONS} partitions' in listing

    consumed = subprocess.run(
        [*cmd, "-C", "-b", kafka.bootstrap, "-t", TOPIC, "-e", "-q", "-f", "%p %o %k\\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split("\n")
    rows = {tuple(line.split(" ")) for line in consumed if line}
    assert rows == {(str(p), str(o), k) for p, o, k in loaded_topic}


def test_stop_then_restart_keeps_data(
    kafka: kafka_reference.KafkaHandle, loaded_topic: list[list[object]]
) -> None:
    pid, port = kafka.pid, kafka.port
    seconds = kafka.stop()
    print(f"kafka stopped in {seconds:.2f}s")
    assert not kafka.alive()
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    assert not kafka_reference.probe("127.0.0.1", port, timeout=1.0)

    # Restart on the same (already formatted) data dir: the records are still there.
    again = kafka_reference.start(data_dir=kafka.data_dir, timeout=90)
    try:
        print(f"kafka restarted in {again.start_seconds:.2f}s")
        offsets = java_client.run(
            ["admin", "--bootstrap", again.bootstrap, "list-offsets", TOPIC], 60, check=True
        ).result
        assert offsets is not None
        assert sum(end - start for start, end in offsets["offsets"].values()) == COUNT
    finally:
        again.stop()
    assert not again.alive()
