"""A share group's own configs with the Java 4.4 `KafkaShareConsumer`, set as an operator
sets them (IncrementalAlterConfigs on the GROUP resource): `share.isolation.level=
read_committed` gives the group no record of an aborted transaction (a read_uncommitted
group gets them), and `share.record.lock.duration.ms` is how long a consumer that never
acknowledges holds its records before another member gets them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from tests.e2e.test_share_consumers import TIMEOUT_S, Delivery, JavaConsumer, _members
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

TOPIC = "txn-work"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    """The broker's own lock is an hour: a record returns within the test's liveness
    bound only by the group's lock."""
    process = InProcessBroker(
        tmp_path_factory.mktemp("share-configs") / "broker",
        settings={
            "group.share.record.lock.duration.ms": "3600000",
            "group.share.min.record.lock.duration.ms": "1000",
        },
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _configure(admin: AdminClient, group: str, **configs: str) -> None:
    entries = [
        ConfigEntry(name.replace("_", "."), value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    admin.incremental_alter_configs([resource])[resource].result(30)


def _produce_transactions(bootstrap: str) -> None:
    """plain-0, a committed transaction, an aborted one, plain-3."""
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    plain.produce(TOPIC, value=b"plain-0")
    assert plain.flush(10) == 0
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": "share-configs"})
    txn.init_transactions(30)
    for outcome in ("committed", "aborted"):
        txn.begin_transaction()
        for index in (1, 2):
            txn.produce(TOPIC, value=f"{outcome}-{index}".encode())
        assert txn.flush(10) == 0
        if outcome == "committed":
            txn.commit_transaction(30)
        else:
            txn.abort_transaction(30)
    plain.produce(TOPIC, value=b"plain-3")
    assert plain.flush(10) == 0


def _gather(consumer: JavaConsumer, seen: list[Delivery], count: int, what: str) -> None:
    def enough() -> bool:
        seen.extend(consumer.deliveries())
        return len({d.offset for d in seen}) >= count

    wait_until(enough, TIMEOUT_S, what, poll_s=0.1)


def test_isolation_level_and_lock_duration_are_the_groups(broker: InProcessBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
    _produce_transactions(broker.bootstrap)
    _configure(
        admin,
        "committed-readers",
        share_auto_offset_reset="earliest",
        share_isolation_level="read_committed",
        share_record_lock_duration_ms="2000",
    )
    _configure(admin, "all-readers", share_auto_offset_reset="earliest")
    committed = {"plain-0", "committed-1", "committed-2", "plain-3"}

    holder = JavaConsumer.start("holder", broker.bootstrap, TOPIC, "committed-readers", "hold")
    consumers = [holder]
    try:
        held: list[Delivery] = []
        _gather(holder, held, len(committed), "the holder got the committed records")
        assert {d.value for d in held} == committed
        assert all(d.count == 1 and d.did == "hold" for d in held)
        # The holder stays a member and never acknowledges: its records come back only
        # when the group's 2 s lock expires (the broker's is an hour).
        rescuer = JavaConsumer.start(
            "rescuer", broker.bootstrap, TOPIC, "committed-readers", "implicit"
        )
        everyone = JavaConsumer.start("all", broker.bootstrap, TOPIC, "all-readers", "implicit")
        consumers += [rescuer, everyone]
        rescued: list[Delivery] = []
        _gather(rescuer, rescued, len(committed), "the held records came back")
        assert _members(broker, "committed-readers") == 2
        assert {d.value for d in rescued} == committed
        # Redelivered, so only by the group's lock: the broker's would hold them an hour.
        # More than 2 when the holder's own next fetch took them back after an expiry
        # before the rescuer's JVM had joined (a loaded machine).
        assert all(d.count >= 2 for d in rescued)
        # A read_uncommitted group gets the aborted transaction's records too.
        everything: list[Delivery] = []
        _gather(everyone, everything, len(committed) + 2, "the uncommitted reader got all")
        assert {d.value for d in everything} == committed | {"aborted-1", "aborted-2"}
    finally:
        holder.process.kill()
        holder.process.wait(timeout=TIMEOUT_S)
        for consumer in consumers[1:]:
            consumer.close()
