"""Apache Kafka's own `kafka-share-groups.sh` (ShareGroupCommand, Kafka 4.4's tools jar)
against a share group a real share consumer (confluent-kafka's `ShareConsumer`) left
state in: `--describe --offsets` (start offsets and lag), `--reset-offsets --to-earliest
--execute` (refused while the consumer is in the group), `--delete-offsets` and
`--delete`. The same run against contextplane and against Apache Kafka 4.4 prints the
same."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import kafka_reference
from tests.support.inprocess import InProcessBroker
from tests.support.kafka_tools import kafka_tool_command
from tests.support.rawclient import RawClient
from tests.support.twins import kafka_twin
from tests.support.wait import wait_until

TOPIC, GROUP = "tool-calls", "tools"
TIMEOUT_S = 120  # liveness bound of each wait


# Apache Kafka's run takes about two minutes (its start, a JVM per command).
@pytest.fixture(params=["contextplane", kafka_twin("apache-kafka")])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(which broker, its bootstrap address)."""
    if request.param == "contextplane":
        broker = InProcessBroker(tmp_path / "broker").start()
        try:
            yield request.param, broker.bootstrap
        finally:
            broker.stop()
    else:
        kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
        try:
            yield request.param, kafka.bootstrap
        finally:
            kafka.stop()


def _share_groups(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = kafka_tool_command("consumer.group.ShareGroupCommand", bootstrap, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)


def _printed(bootstrap: str, *args: str) -> list[list[str]]:
    """The tool's output, each line's cells; it must succeed."""
    result = _share_groups(bootstrap, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return [line.split() for line in result.stdout.strip().splitlines()]


def _offsets(bootstrap: str) -> list[list[str]]:
    return _printed(bootstrap, "--describe", "--group", GROUP, "--offsets")


def _prepare(bootstrap: str) -> None:
    """Two partitions, the group reading from the earliest offset, ten records."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    with RawClient(bootstrap) as client:
        altered = client.request(
            44,
            1,
            resources=[
                {
                    "resource_type": 32,  # GROUP
                    "resource_name": GROUP,
                    "configs": [
                        {
                            "name": "share.auto.offset.reset",
                            "config_operation": 0,
                            "value": "earliest",
                        }
                    ],
                }
            ],
            validate_only=False,
        )
        assert altered.responses[0].error_code == 0, altered


def _produce(producer: Producer, prefix: str, partitions: list[int]) -> None:
    for index, partition in enumerate(partitions):
        producer.produce(TOPIC, value=f"{prefix}-{index}".encode(), partition=partition)
    assert producer.flush(10) == 0


def test_kafka_share_groups_tool(cluster: tuple[str, str]) -> None:
    kind, bootstrap = cluster
    _prepare(bootstrap)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    _produce(producer, "call", [0, 1] * 5)
    consumer = ShareConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "share.acknowledgement.mode": "explicit",
        }
    )
    try:
        consumer.subscribe([TOPIC])
        accepted: list[tuple[int, int]] = []

        def accept_what_arrives() -> bool:
            for message in consumer.poll(0.5) or []:
                assert message.error() is None, message.error()
                consumer.acknowledge(message, AcknowledgeType.ACCEPT)
                accepted.append((message.partition(), message.offset()))
            consumer.commit_sync()
            return len(accepted) >= 10

        wait_until(accept_what_arrives, TIMEOUT_S, "the ten records accepted", poll_s=0)
        assert sorted(accepted) == [(p, o) for p in (0, 1) for o in range(5)]
        _produce(producer, "late", [0] * 5)  # five more on partition 0, not consumed

        header = ["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"]
        described = _offsets(bootstrap)
        assert described[0] == header
        # Lag: the high watermark less the start offset and the records done past it.
        assert [row[:3] + row[4:] for row in described[1:]] == [
            [GROUP, TOPIC, "0", "5"],
            [GROUP, TOPIC, "1", "0"],
        ]
        # contextplane stores the start offset past the accepted prefix before it answers
        # the acknowledgement; Kafka's stored one may still trail it (the accepted records
        # then count as done in flight): the same lag either way.
        starts = [row[3] for row in described[1:]]
        if kind == "contextplane":
            assert starts == ["5", "5"]
        else:
            assert set(starts) <= {"0", "5"}
        reset = ("--reset-offsets", "--to-earliest", "--execute", "--group", GROUP)
        busy = _share_groups(bootstrap, *reset, "--topic", TOPIC)
        assert busy.returncode == 1
        assert f"Share group '{GROUP}' is not empty." in busy.stdout + busy.stderr
    finally:
        consumer.close()

    def empty() -> bool:
        state = _printed(bootstrap, "--describe", "--group", GROUP, "--state")
        return "Empty" in state[1]  # GROUP, COORDINATOR (ID), STATE, #MEMBERS

    wait_until(empty, TIMEOUT_S, "the group empty once its consumer closed", poll_s=0.5)
    assert _printed(bootstrap, *reset, "--topic", TOPIC) == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [GROUP, TOPIC, "0", "0"],
        [GROUP, TOPIC, "1", "0"],
    ]
    assert _offsets(bootstrap) == [
        header,
        [GROUP, TOPIC, "0", "0", "10"],
        [GROUP, TOPIC, "1", "0", "5"],
    ]
    deleted = _printed(bootstrap, "--delete-offsets", "--group", GROUP, "--topic", TOPIC)
    assert deleted == [["TOPIC", "STATUS"], [TOPIC, "Successful"]]
    nothing = f"Share group '{GROUP}' has no offset information."
    assert _offsets(bootstrap) == [nothing.split()]
    done = f"Deletion of requested share groups ('{GROUP}') was successful."
    assert _printed(bootstrap, "--delete", "--group", GROUP) == [done.split()]
    assert GROUP not in [row[0] for row in _printed(bootstrap, "--list")]
