"""The KIP-848 consumer group protocol with real clients (`group.protocol=consumer`).

confluent-kafka consumers share a 6-partition topic: two split it, a third joins and
partitions move, one leaves and its partitions are reassigned. Each record is committed
as soon as it is processed, so a record consumed twice inside the group's committed
progress would mean a partition was handed over before its old owner let it go.
Committed offsets survive a broker restart. A Java 4.4 consumer shares a group with a
confluent-kafka one, and Kafka's own kafka-consumer-groups.sh describes such a group.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import java_client
from tests.support.inprocess import InProcessBroker

PARTITIONS = 6
RECORDS_PER_ROUND = 60 * PARTITIONS
# Liveness bounds, well above the protocol's own pace (a handover waits for the next
# heartbeat of the new owner).
SETTLE_S = 60
CLIENT_TIMEOUT_S = 90
# Members heartbeat every second rather than Kafka's 5 (its least interval lowered to
# allow it): each handover waits for a heartbeat, and the tests make a dozen of them.
HEARTBEAT_SETTINGS = {
    "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "1000",
}


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)


def _produce(bootstrap: str, topic: str, round_no: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(RECORDS_PER_ROUND):
        producer.produce(topic, value=f"{round_no}-{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0


def _consumer(bootstrap: str, group: str, topic: str, name: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    return consumer


class Ledger:
    """Every record each consumer processed, committed one by one."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], str] = {}
        self.duplicates: list[tuple[int, int, str, str]] = []

    def poll(self, consumers: dict[str, Consumer], rounds: int = 1) -> None:
        for _ in range(rounds):
            for name, consumer in consumers.items():
                message = consumer.poll(0.05)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    continue
                key = (message.partition(), message.offset())
                if key in self.seen:
                    self.duplicates.append((*key, self.seen[key], name))
                self.seen[key] = name
                _commit(consumer, message)


def _commit(consumer: Consumer, message: object) -> None:
    """A synchronous commit; retried while the member's epoch moves under it."""
    for _ in range(50):
        try:
            consumer.commit(message=message, asynchronous=False)
            return
        except KafkaException as exc:
            if not exc.args[0].retriable() and exc.args[0].code() not in (
                KafkaError.STALE_MEMBER_EPOCH,
                KafkaError.REBALANCE_IN_PROGRESS,
            ):
                raise
            time.sleep(0.1)
    raise AssertionError("commit never succeeded")


def _assigned(consumer: Consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


def _settle(
    ledger: Ledger, consumers: dict[str, Consumer], sizes: Iterable[int], total: int
) -> None:
    """Poll until the assignments have the given sizes, cover every partition once, and
    `total` records were consumed."""
    wanted = sorted(sizes)
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        ledger.poll(consumers, rounds=5)
        owned = [_assigned(c) for c in consumers.values()]
        union = set().union(*owned)
        disjoint = sum(len(o) for o in owned) == len(union)
        if (
            sorted(len(o) for o in owned) == wanted
            and union == set(range(PARTITIONS))
            and disjoint
            and len(ledger.seen) >= total
        ):
            return
    raise AssertionError(
        f"not settled: assignments {[sorted(_assigned(c)) for c in consumers.values()]}, "
        f"{len(ledger.seen)} of {total} records"
    )


def test_consumers_split_rebalance_and_keep_commits_across_restart(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    topic, group = "kip848-split", "kip848-group"
    try:
        _create_topic(broker.bootstrap, topic)
        _produce(broker.bootstrap, topic, 0)
        ledger = Ledger()
        consumers = {
            "c1": _consumer(broker.bootstrap, group, topic, "c1"),
            "c2": _consumer(broker.bootstrap, group, topic, "c2"),
        }
        _settle(ledger, consumers, [3, 3], RECORDS_PER_ROUND)

        consumers["c3"] = _consumer(broker.bootstrap, group, topic, "c3")
        _produce(broker.bootstrap, topic, 1)
        _settle(ledger, consumers, [2, 2, 2], 2 * RECORDS_PER_ROUND)

        consumers.pop("c2").close()  # leaves the group (member epoch -1)
        _produce(broker.bootstrap, topic, 2)
        _settle(ledger, consumers, [3, 3], 3 * RECORDS_PER_ROUND)

        assert ledger.duplicates == []
        assert len(ledger.seen) == 3 * RECORDS_PER_ROUND
        for consumer in consumers.values():
            consumer.close()

        broker.restart()
        reader = Consumer(
            {"bootstrap.servers": broker.bootstrap, "group.id": group, "group.protocol": "consumer"}
        )
        committed = reader.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30
        )
        reader.close()
        per_partition = RECORDS_PER_ROUND * 3 // PARTITIONS
        assert [tp.offset for tp in committed] == [per_partition] * PARTITIONS

        # After the restart the group comes back and resumes from its commits.
        _produce(broker.bootstrap, topic, 3)
        resumed = Ledger()
        again = {"c4": _consumer(broker.bootstrap, group, topic, "c4")}
        _settle(resumed, again, [PARTITIONS], RECORDS_PER_ROUND)
        assert min(offset for _, offset in resumed.seen) >= per_partition
        again["c4"].close()
    finally:
        broker.stop()


def test_java_and_confluent_consumers_share_a_group(tmp_path: Path) -> None:
    """A Java 4.x consumer and a confluent-kafka consumer, both with the consumer
    protocol, in one group: the Java one takes half the partitions, consumes and commits
    some records, leaves, and the confluent one takes everything back and consumes the
    rest, with no record consumed by both."""
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    topic, group = "kip848-mixed", "kip848-mixed-group"
    java_count = 30
    try:
        _create_topic(broker.bootstrap, topic)
        _produce(broker.bootstrap, topic, 0)
        ledger = Ledger()
        consumers = {"c1": _consumer(broker.bootstrap, group, topic, "c1")}
        _settle(ledger, consumers, [PARTITIONS], RECORDS_PER_ROUND)

        java: dict[str, java_client.ClientResult] = {}

        def run_java() -> None:
            java["result"] = java_client.run(
                [
                    "consume", "--bootstrap", broker.bootstrap, "--topic", topic,
                    "--group", group, "--count", str(java_count),
                    "--group-protocol", "consumer",
                    "--timeout-ms", str(CLIENT_TIMEOUT_S * 1000),
                ],
                CLIENT_TIMEOUT_S + 30,
            )  # fmt: skip

        java_client.build()
        thread = threading.Thread(target=run_java, daemon=True)
        thread.start()
        deadline = time.monotonic() + SETTLE_S
        while len(_assigned(consumers["c1"])) != PARTITIONS // 2:
            assert time.monotonic() < deadline, "the Java member never got partitions"
            ledger.poll(consumers, rounds=5)
        # The Java member holds the other half: records produced now are split.
        _produce(broker.bootstrap, topic, 1)
        while thread.is_alive():
            ledger.poll(consumers, rounds=5)
        result = java["result"]
        assert result.ok, result.error
        java_seen = {(r[0], r[1]) for r in result.records}
        assert len(java_seen) == java_count
        # The Java member left: the confluent one has everything again and consumes the
        # rest from the Java member's commits.
        _settle(ledger, consumers, [PARTITIONS], 2 * RECORDS_PER_ROUND - java_count)
        assert ledger.duplicates == []
        assert java_seen.isdisjoint(ledger.seen)
        assert len(ledger.seen) + len(java_seen) == 2 * RECORDS_PER_ROUND
        consumers["c1"].close()
    finally:
        broker.stop()


def _consumer_groups_tool(bootstrap: str, *args: str) -> str:
    """Kafka 4.4's own kafka-consumer-groups.sh (ConsumerGroupCommand), from its jars."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    libs = fetch_kafka_tools()
    command = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    result = subprocess.run(
        ["java", "-cp", f"{libs}/*", command, "--bootstrap-server", bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kafka_consumer_groups_describes_a_consumer_protocol_group(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    topic, group = "kip848-tool", "kip848-tool-group"
    try:
        _create_topic(broker.bootstrap, topic)
        _produce(broker.bootstrap, topic, 0)
        ledger = Ledger()
        consumers = {"c1": _consumer(broker.bootstrap, group, topic, "tool-client")}
        _settle(ledger, consumers, [PARTITIONS], RECORDS_PER_ROUND)
        member_id = consumers["c1"].memberid()

        offsets = _consumer_groups_tool(broker.bootstrap, "--describe", "--group", group)
        rows = [line.split() for line in offsets.splitlines() if line.startswith(group)]
        assert sorted(int(r[2]) for r in rows) == list(range(PARTITIONS))
        per_partition = RECORDS_PER_ROUND // PARTITIONS
        assert {(r[3], r[4], r[5], r[6]) for r in rows} == {
            (str(per_partition), str(per_partition), "0", member_id)
        }
        members = _consumer_groups_tool(
            broker.bootstrap, "--describe", "--group", group, "--members", "--verbose"
        )
        row = next(line.split() for line in members.splitlines() if line.startswith(group))
        everything = f"{topic}:{','.join(str(p) for p in range(PARTITIONS))}"
        # CONSUMER-ID, HOST, CLIENT-ID, #PARTITIONS, epochs and assignments
        assert row[1:] == [member_id, "/127.0.0.1", "tool-client", str(PARTITIONS), "2",
                           everything, "2", everything]  # fmt: skip
        state = _consumer_groups_tool(broker.bootstrap, "--describe", "--group", group, "--state")
        assert state.splitlines()[-1].split()[-3:] == ["uniform", "Stable", "1"]
        listed = _consumer_groups_tool(broker.bootstrap, "--list", "--type")
        assert [group, "Consumer"] in [line.split() for line in listed.splitlines()]
        consumers["c1"].close()
    finally:
        broker.stop()


def test_a_static_member_comes_back_to_its_partitions_without_a_rebalance(
    tmp_path: Path,
) -> None:
    """group.instance.id with the consumer protocol: closing leaves with epoch -2, the
    member keeps its place, and a new consumer with the same instance id gets the same
    partitions at once, the group epoch unchanged."""
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    topic, group = "kip848-static", "kip848-static-group"

    def static(name: str, instance: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "group.protocol": "consumer",
                "group.instance.id": instance,
                "client.id": name,
            }
        )
        consumer.subscribe([topic])
        return consumer

    try:
        _create_topic(broker.bootstrap, topic)
        ledger = Ledger()
        consumers = {"a": static("a", "instance-a"), "b": static("b", "instance-b")}
        _settle(ledger, consumers, [3, 3], 0)
        before = _assigned(consumers["a"])
        assert broker.broker is not None
        coordinator = broker.broker.groups
        state = coordinator.consumer.group(group)
        assert state is not None
        epoch = state.group_epoch
        consumers.pop("a").close()
        kept = [m for m in state.members.values() if m.instance_id == "instance-a"]
        assert [(m.epoch, {p for _, p in m.assigned}) for m in kept] == [(-2, before)]
        consumers["a2"] = static("a2", "instance-a")
        _settle(ledger, consumers, [3, 3], 0)
        assert _assigned(consumers["a2"]) == before
        assert state.group_epoch == epoch
        for consumer in consumers.values():
            consumer.close()
    finally:
        broker.stop()
