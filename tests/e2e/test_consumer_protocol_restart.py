"""KIP-848 consumer groups across a broker restart, with confluent-kafka consumers
(`group.protocol=consumer`): the coordinator loads the group from the metadata store, so
the members keep their member ids, epochs and partitions — no revocation, no lost
partitions, no rejoin — after a clean stop and after kill -9, and their committed
offsets are intact."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.e2e.test_consumer_protocol import (
    PARTITIONS,
    RECORDS_PER_ROUND,
    Ledger,
    _assigned,
    _create_topic,
    _produce,
    _settle,
)
from tests.groups.support import Wire
from tests.support.broker import BrokerProcess

CONSUMER_GROUP_DESCRIBE = 69
# The members are told to heartbeat every 2 s (Kafka's least interval lowered to allow
# it); three intervals: long enough for every member to heartbeat the restarted broker
# and be told anything it would be told.
HEARTBEAT_SETTINGS = {
    "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.heartbeat.interval.ms": "2000",
}
AFTER_RESTART_S = 6


class Events:
    """The rebalance callbacks a consumer got."""

    def __init__(self) -> None:
        self.revoked: list[list[int]] = []
        self.lost: list[list[int]] = []

    def on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.revoked.append([tp.partition for tp in partitions])

    def on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.lost.append([tp.partition for tp in partitions])


def _consumer(bootstrap: str, group: str, topic: str, name: str, events: Events) -> Consumer:
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
    consumer.subscribe([topic], on_revoke=events.on_revoke, on_lost=events.on_lost)
    return consumer


def _describe(port: int, group: str) -> tuple[Any, ...]:
    """(state, group epoch, assignment epoch, sorted (member id, client id, epoch,
    partitions)) from ConsumerGroupDescribe."""
    with Wire(port) as wire:
        response = wire.call(
            CONSUMER_GROUP_DESCRIBE, 1, group_ids=[group], include_authorized_operations=False
        )
    (described,) = response.groups
    assert described.error_code == 0, described
    members = sorted(
        (
            m.member_id,
            m.client_id,
            m.member_epoch,
            sorted(p for t in m.assignment.topic_partitions for p in t.partitions),
        )
        for m in described.members
    )
    return described.group_state, described.group_epoch, described.assignment_epoch, members


@pytest.mark.parametrize("how", ["clean", "kill9"])
def test_members_keep_their_partitions_across_a_broker_restart(tmp_path: Path, how: str) -> None:
    broker = BrokerProcess(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    topic, group = f"kip848-durable-{how}", f"kip848-durable-group-{how}"
    consumers: dict[str, Consumer] = {}
    try:
        _create_topic(broker.bootstrap, topic)
        _produce(broker.bootstrap, topic, 0)
        ledger = Ledger()
        events = {name: Events() for name in ("c1", "c2")}
        consumers.update(
            (name, _consumer(broker.bootstrap, group, topic, name, events[name])) for name in events
        )
        _settle(ledger, consumers, [3, 3], RECORDS_PER_ROUND)  # commits each record
        before = _describe(broker.port, group)
        assert before[0] == "Stable"
        owned = {name: _assigned(c) for name, c in consumers.items()}
        revoked = {name: list(e.revoked) for name, e in events.items()}

        if how == "kill9":
            broker.kill9()
            broker.start()
        else:
            broker.restart()
        assert _describe(broker.port, group) == before  # as loaded, before any heartbeat

        _produce(broker.bootstrap, topic, 1)
        deadline = time.monotonic() + AFTER_RESTART_S
        while time.monotonic() < deadline:
            ledger.poll(consumers, rounds=5)
        _settle(ledger, consumers, [3, 3], 2 * RECORDS_PER_ROUND)
        assert ledger.duplicates == []
        assert {name: _assigned(c) for name, c in consumers.items()} == owned
        assert {name: list(e.revoked) for name, e in events.items()} == revoked
        assert [e.lost for e in events.values()] == [[], []]
        # Same member ids and epochs: nobody rejoined, nothing was reassigned.
        assert _describe(broker.port, group) == before

        committed = consumers["c1"].committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30
        )
        per_partition = 2 * RECORDS_PER_ROUND // PARTITIONS
        assert [tp.offset for tp in committed] == [per_partition] * PARTITIONS
    finally:
        for consumer in consumers.values():
            consumer.close()
        broker.stop()


def test_kafka_configs_sets_a_groups_session_timeout_that_survives_restart(
    tmp_path: Path,
) -> None:
    """Kafka 4.4's own kafka-configs.sh (ConfigCommand) with `--entity-type groups`."""
    from conformance.suites.librdkafka.suite import fetch_kafka_tools

    java = shutil.which("java")
    assert java is not None, "java is installed by harness/install.sh"
    libs = fetch_kafka_tools()
    broker = BrokerProcess(tmp_path / "broker").start()

    def kafka_configs(*args: str) -> str:
        result = subprocess.run(
            [java, "-cp", f"{libs}/*", "org.apache.kafka.tools.ConfigCommand"]
            + ["--bootstrap-server", broker.bootstrap, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    try:
        kafka_configs(
            "--alter", "--entity-type", "groups", "--entity-name", "cfg-group",
            "--add-config", "consumer.session.timeout.ms=50000",
        )  # fmt: skip
        broker.restart()
        described = kafka_configs(
            "--describe", "--entity-type", "groups", "--entity-name", "cfg-group"
        )
        assert "consumer.session.timeout.ms=50000" in described, described
    finally:
        broker.stop()
