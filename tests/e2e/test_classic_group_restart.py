"""Classic groups across a broker kill -9, with confluent-kafka consumers (the classic
protocol, one of them static): the coordinator loads each group as Kafka loads its
GroupMetadataValue, so the members heartbeat on at the same generation — no rebalance,
no assignment callback, the same member ids — and commit offsets after the restart."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from contextplane.protocol.offsets_records import decode_group_metadata_value
from tests.e2e.test_consumer_protocol import (
    PARTITIONS,
    RECORDS_PER_ROUND,
    Ledger,
    _assigned,
    _create_topic,
    _produce,
    _settle,
)
from tests.groups.offsets_reader import decode_key, read_all
from tests.groups.support import Wire
from tests.support.broker import BrokerProcess

HEARTBEAT, DESCRIBE = 12, 15
HEARTBEAT_INTERVAL_MS = 500
# Several heartbeat intervals: every member heartbeats the restarted broker and is told
# anything it would be told.
AFTER_RESTART_S = 5
STATIC_INSTANCE = "static-1"


class Callbacks:
    """The rebalance callbacks a consumer got."""

    def __init__(self) -> None:
        self.assigned: list[list[int]] = []
        self.revoked: list[list[int]] = []
        self.lost: list[list[int]] = []

    def on_assign(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned.append(sorted(tp.partition for tp in partitions))

    def on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.revoked.append(sorted(tp.partition for tp in partitions))

    def on_lost(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        self.lost.append(sorted(tp.partition for tp in partitions))

    def counts(self) -> tuple[int, int, int]:
        return len(self.assigned), len(self.revoked), len(self.lost)


def _consumer(
    bootstrap: str, group: str, topic: str, name: str, callbacks: Callbacks, instance: str | None
) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # Longer than the broker is down: the members' sessions outlive the restart.
        "session.timeout.ms": 30_000,
        "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
    }
    if instance is not None:
        config["group.instance.id"] = instance
    consumer = Consumer(config)
    consumer.subscribe(
        [topic],
        on_assign=callbacks.on_assign,
        on_revoke=callbacks.on_revoke,
        on_lost=callbacks.on_lost,
    )
    return consumer


def _describe(port: int, group: str) -> tuple[str, str, list[tuple[str, str, str | None, bytes]]]:
    """(state, protocol, sorted (member id, client id, instance id, assignment))."""
    with Wire(port) as wire:
        response = wire.call(DESCRIBE, 5, groups=[group], include_authorized_operations=False)
    (described,) = response.groups
    assert described.error_code == 0, described
    members = sorted(
        (m.member_id, m.client_id, m.group_instance_id, m.member_assignment)
        for m in described.members
    )
    return described.group_state, described.protocol_data, members


def _stored_generations(bootstrap: str, group: str) -> list[int]:
    """The generation of each GroupMetadataValue written for `group`, in order."""
    generations = []
    for key, value in read_all(bootstrap):
        kind, fields = decode_key(key)
        if kind == 2 and fields == (group,) and value is not None:
            generations.append(decode_group_metadata_value(value).generation)
    return generations


def test_members_heartbeat_on_without_a_rebalance_after_kill9(tmp_path: Path) -> None:
    # The two members join at once rather than after Kafka's 3-s initial delay.
    broker = BrokerProcess(
        tmp_path / "broker", settings={"group.initial.rebalance.delay.ms": "0"}
    ).start()
    topic, group = "classic-durable", "classic-durable-group"
    consumers: dict[str, Consumer] = {}
    try:
        _create_topic(broker.bootstrap, topic)
        _produce(broker.bootstrap, topic, 0)
        ledger = Ledger()
        callbacks = {"dynamic": Callbacks(), "static": Callbacks()}
        for name, instance in (("dynamic", None), ("static", STATIC_INSTANCE)):
            consumers[name] = _consumer(
                broker.bootstrap, group, topic, name, callbacks[name], instance
            )
        _settle(ledger, consumers, [3, 3], RECORDS_PER_ROUND)  # commits each record
        before = _describe(broker.port, group)
        assert before[0] == "Stable"
        assert {instance for _, _, instance, _ in before[2]} == {None, STATIC_INSTANCE}
        generation = _stored_generations(broker.bootstrap, group)[-1]
        owned = {name: _assigned(c) for name, c in consumers.items()}
        counts = {name: c.counts() for name, c in callbacks.items()}

        broker.kill9()
        broker.start()
        assert _describe(broker.port, group) == before  # as loaded, before any heartbeat

        _produce(broker.bootstrap, topic, 1)
        deadline = time.monotonic() + AFTER_RESTART_S
        while time.monotonic() < deadline:
            ledger.poll(consumers, rounds=5)
        _settle(ledger, consumers, [3, 3], 2 * RECORDS_PER_ROUND)
        assert ledger.duplicates == []
        # No rebalance: no callback, the same partitions, member ids and assignments.
        assert {name: c.counts() for name, c in callbacks.items()} == counts
        assert {name: _assigned(c) for name, c in consumers.items()} == owned
        assert _describe(broker.port, group) == before
        # The generation is the stored one: a member's heartbeat at it is answered NONE,
        # and no later generation was written.
        static_id = next(m for m, _, i, _ in before[2] if i == STATIC_INSTANCE)
        with Wire(broker.port) as wire:
            hb = wire.call(
                HEARTBEAT, 4, group_id=group, generation_id=generation, member_id=static_id,
                group_instance_id=STATIC_INSTANCE,
            )  # fmt: skip
        assert hb.error_code == 0
        assert max(_stored_generations(broker.bootstrap, group)) == generation

        committed = consumers["dynamic"].committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30
        )
        per_partition = 2 * RECORDS_PER_ROUND // PARTITIONS
        assert [tp.offset for tp in committed] == [per_partition] * PARTITIONS
    finally:
        for consumer in consumers.values():
            consumer.close()
        broker.stop()
