"""confluent-kafka 2.16's `ShareConsumer` (librdkafka 2.16, KIP-932, "Preview") against
contextplane's share groups: three consumers (explicit ACCEPT/RELEASE/REJECT and implicit)
split a two-partition topic; a consumer in a child process stopped mid-batch has the
records it held delivered to the others (SIGKILLed: at once, its connection closed;
SIGSTOPped: once the group's lock expires); a closed one's unacknowledged records go to
another at once, and the acknowledgement it sent at close is applied; a Java 4.4
`KafkaShareConsumer` shares one group with a confluent-kafka one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import (
    AcknowledgeType,
    DeserializingShareConsumer,
    Message,
    Producer,
    ShareConsumer,
)
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.serialization import StringDeserializer

from tests.e2e.test_share_consumers import TIMEOUT_S, JavaConsumer, _assigned, _members
from tests.e2e.test_share_group_configs import _configure
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

LOCK_MS = 5_000  # the hung consumer's group: its records return after this
POLL_RECORDS = 5  # max.poll.records: small fetches, so members interleave

# The child that is stopped: explicit acknowledgement; it accepts the first record of its
# first batch (committed), prints "held <partition> <offset> <count>" for the rest, then
# keeps them without acknowledging until it is killed or stopped.
HOLDER = """
import sys, time
from confluent_kafka import AcknowledgeType, ShareConsumer
bootstrap, topic, group = sys.argv[1:4]
consumer = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                          "share.acknowledgement.mode": "explicit", "max.poll.records": 5})
consumer.subscribe([topic])
batch, deadline = [], time.monotonic() + 120  # the parent reads until EOF
while not batch and time.monotonic() < deadline:
    batch = [m for m in consumer.poll(0.5) or [] if m.error() is None]
if not batch:
    sys.exit("no records")
first, rest = batch[0], batch[1:]
consumer.acknowledge(first, AcknowledgeType.ACCEPT)
consumer.commit_sync(30)
print("accepted", first.partition(), first.offset(), first.delivery_count(), flush=True)
for message in rest:
    print("held", message.partition(), message.offset(), message.delivery_count(), flush=True)
print("holding", flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    """The broker's own lock is an hour: a record comes back early only by the group's
    `share.record.lock.duration.ms`, a release, a closed session or a dropped connection,
    so nothing is redelivered by accident on a slow run. Heartbeats every second rather
    than Kafka's 5: a consumer joining after another left otherwise waited about one
    interval (5 s) for its first records, 20 times in the close test."""
    process = InProcessBroker(
        tmp_path_factory.mktemp("share-ck") / "broker",
        settings={
            "group.share.record.lock.duration.ms": "3600000",
            "group.share.min.record.lock.duration.ms": "1000",
            "group.share.heartbeat.interval.ms": "1000",
            "group.share.min.heartbeat.interval.ms": "1000",
        },
    ).start()
    try:
        yield process
    finally:
        process.stop()


Key = tuple[int, int]  # (partition, offset)


@dataclass(frozen=True)
class Delivery:
    key: Key
    count: int
    value: str
    did: str  # accept, release, reject
    by: str


@dataclass
class Worker:
    """One confluent-kafka share consumer. Explicit: a value starting "release" is released
    on its first delivery (accepted on a later one), "reject" rejected, any other
    accepted, then commit_sync (or commit_async). Implicit: the next poll accepts the
    previous batch."""

    name: str
    explicit: bool
    consumer: ShareConsumer
    commit_async: bool = False  # explicit: commit_async instead of commit_sync
    acknowledged: set[Key] = field(default_factory=set)  # confirmed by the broker

    @classmethod
    def start(cls, name: str, bootstrap: str, group: str, topic: str, explicit: bool) -> Worker:
        consumer = ShareConsumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "max.poll.records": POLL_RECORDS,
                "share.acknowledgement.mode": "explicit" if explicit else "implicit",
            }
        )
        worker = cls(name, explicit, consumer)
        consumer.set_acknowledgement_commit_callback(worker._committed)
        consumer.subscribe([topic])
        return worker

    def _committed(self, offsets: dict, error: object) -> None:
        assert error is None, error
        for partition, acked in offsets.items():
            self.acknowledged.update((partition.partition, offset) for offset in acked)

    def poll(self, seen: list[Delivery]) -> None:
        batch = self.consumer.poll(0.2) or []
        for message in batch:
            assert message.error() is None, message.error()
            value = message.value().decode()
            count = message.delivery_count()
            did, kind = "accept", AcknowledgeType.ACCEPT
            if self.explicit and value.startswith("release") and count == 1:
                did, kind = "release", AcknowledgeType.RELEASE
            elif self.explicit and value.startswith("reject"):
                did, kind = "reject", AcknowledgeType.REJECT
            if self.explicit:
                self.consumer.acknowledge(message, kind)
            seen.append(
                Delivery((message.partition(), message.offset()), count, value, did, self.name)
            )
        if self.explicit and batch and self.commit_async:
            self.consumer.commit_async()  # confirmed later, in the callback
        elif self.explicit and batch:
            self.consumer.commit_sync(30)


def _topic(broker: InProcessBroker, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def _earliest(broker: InProcessBroker, group: str, **configs: str) -> None:
    """Read from the start: no probing for the moment the share partitions exist."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    _configure(admin, group, share_auto_offset_reset="earliest", **configs)


def _produce(broker: InProcessBroker, topic: str, values: list[str]) -> dict[Key, str]:
    """Each value produced round-robin over the partitions; its (partition, offset)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    where: dict[Key, str] = {}

    def delivered(error: object, message: object) -> None:
        assert error is None, error
        where[(message.partition(), message.offset())] = message.value().decode()  # type: ignore[attr-defined]

    partitions = len(
        AdminClient({"bootstrap.servers": broker.bootstrap})
        .list_topics(topic, timeout=30)
        .topics[topic]
        .partitions
    )
    for index, value in enumerate(values):
        producer.produce(
            topic, value=value.encode(), partition=index % partitions, on_delivery=delivered
        )
    assert producer.flush(30) == 0
    return where


def _first_batch(consumer: ShareConsumer) -> list[Message]:
    """The records of the first poll that returns any."""
    batch: list[Message] = []

    def polled() -> bool:
        batch.extend(m for m in consumer.poll(0.2) or [] if m.error() is None)
        return bool(batch)

    wait_until(polled, TIMEOUT_S, "a batch", poll_s=0)
    return batch


def _done(seen: list[Delivery]) -> list[Key]:
    return [d.key for d in seen if d.did in ("accept", "reject")]


def _assert_released_came_back(seen: list[Delivery]) -> None:
    """Each record released on its first delivery came back once more (to any member) as
    a second delivery and was accepted. Sorted by delivery count: the Java consumer's
    lines are read after the fact, so `seen` is not in time order."""
    for key in {d.key for d in seen if d.did == "release"}:
        deliveries = sorted((d.count, d.did) for d in seen if d.key == key)
        assert deliveries == [(1, "release"), (2, "accept")], (key, deliveries)


def test_three_confluent_consumers_split_a_topic(broker: InProcessBroker) -> None:
    _topic(broker, "ck-split", 2)
    _earliest(broker, "ck-splitters")
    # Releases and rejects on both partitions (round-robin), whoever is assigned which.
    values = ["release" if i % 5 == 0 else "reject" if i % 7 == 3 else "job" for i in range(60)]
    records = _produce(broker, "ck-split", [f"{kind}-{i}" for i, kind in enumerate(values)])
    workers = [
        Worker.start(name, broker.bootstrap, "ck-splitters", "ck-split", explicit)
        for name, explicit in (("explicit-a", True), ("explicit-b", True), ("implicit", False))
    ]
    workers[1].commit_async = True
    seen: list[Delivery] = []
    try:
        wait_until(lambda: _assigned(broker, "ck-splitters") == 3, TIMEOUT_S, "all assigned")

        def all_done() -> bool:
            for worker in workers:
                worker.poll(seen)
            return set(records) <= set(_done(seen))

        wait_until(all_done, TIMEOUT_S, "every record done", poll_s=0)
    finally:
        for worker in workers:
            worker.consumer.close()
    done = _done(seen)
    assert sorted(done) == sorted(records)  # each accepted or rejected exactly once
    assert all(records[d.key] == d.value for d in seen)
    released = [d for d in seen if d.did == "release"]
    # Every member is assigned a partition (more members than partitions), so the
    # explicit ones released and rejected some.
    assert released and any(d.did == "reject" for d in seen)
    assert all(release.count == 1 for release in released)
    _assert_released_came_back(seen)
    for reject in (d for d in seen if d.did == "reject"):
        assert [d for d in seen if d.key == reject.key] == [reject]  # never delivered again
    # The commit callback confirmed each explicit member's acknowledgements (commit_sync's
    # and explicit-b's commit_async ones, the last served by close()).
    for worker in workers[:2]:
        assert {d.key for d in seen if d.by == worker.name} <= worker.acknowledged
    # The topic was shared (small fetches: no member takes every record).
    assert len({d.by for d in seen}) >= 2


@pytest.mark.parametrize(
    ("stop", "group_lock_ms"),
    [
        # Killed: its connection closes, so its records return at once (Kafka's
        # ShareSessionCache disconnect listener); the group keeps the broker's hour lock.
        (signal.SIGKILL, None),
        # Hung (stopped, connection open, no heartbeats yet past the session timeout): its
        # records return only when the group's share.record.lock.duration.ms expires.
        (signal.SIGSTOP, LOCK_MS),
    ],
    ids=["killed", "hung"],
)
def test_a_stopped_consumers_records_go_to_the_others(
    broker: InProcessBroker, stop: signal.Signals, group_lock_ms: int | None
) -> None:
    topic, group = f"ck-held-{stop.name}", f"ck-holders-{stop.name}"
    _topic(broker, topic, 1)
    if group_lock_ms is None:
        _earliest(broker, group)
    else:
        _earliest(broker, group, share_record_lock_duration_ms=str(group_lock_ms))
    records = _produce(broker, topic, [f"job-{i}" for i in range(12)])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, broker.bootstrap, topic, group],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    workers: list[Worker] = []
    seen: list[Delivery] = []
    try:
        assert holder.stdout is not None
        for line in holder.stdout:  # ends at "holding" (or EOF if the child failed)
            lines.append(line.strip())
            if line.startswith("holding"):
                break
        assert lines and lines[-1] == "holding", lines
        os.kill(holder.pid, stop)  # mid-processing: never acknowledges the rest
        accepted = [_coordinates(line) for line in lines if line.startswith("accepted")]
        held = [_coordinates(line) for line in lines if line.startswith("held")]
        assert len(accepted) == 1 and held, lines
        assert all(count == 1 for _, _, count in accepted + held)
        first = accepted[0][:2]
        workers = [
            Worker.start(name, broker.bootstrap, group, topic, explicit)
            for name, explicit in (("explicit", True), ("implicit", False))
        ]

        def rest_done() -> bool:
            for worker in workers:
                worker.poll(seen)
            return set(records) - {first} <= set(_done(seen))

        wait_until(rest_done, TIMEOUT_S, "the held records came back", poll_s=0)
    finally:
        for worker in workers:
            worker.consumer.close()
        holder.kill()
        holder.wait(timeout=TIMEOUT_S)
    # The record it accepted and committed is never delivered again.
    assert first not in {d.key for d in seen}
    # Each record it held comes back as a second delivery (a hung holder's group lock
    # also bounds the rescuers: on a very slow run one may come back again, third); the
    # others (never fetched by it) as first deliveries.
    for partition, offset, _ in held:
        counts = [d.count for d in seen if d.key == (partition, offset)]
        expected = [2] if group_lock_ms is None else [2, *range(3, len(counts) + 2)]
        assert counts == expected, counts
    fetched = {(p, o) for p, o, _ in accepted + held}
    assert all(d.count == 1 for d in seen if d.key not in fetched)
    assert sorted(_done(seen)) == sorted(set(records) - {first})


def _coordinates(line: str) -> tuple[int, int, int]:
    """(partition, offset, delivery count) of a holder's "held"/"accepted" line."""
    partition, offset, count = (int(word) for word in line.split()[1:4])
    return partition, offset, count


def test_java_and_confluent_consumers_share_a_group(broker: InProcessBroker) -> None:
    _topic(broker, "ck-mixed", 1)
    _earliest(broker, "ck-mixed-group")
    java = JavaConsumer.start("java", broker.bootstrap, "ck-mixed", "ck-mixed-group", "explicit")
    python = Worker.start("confluent", broker.bootstrap, "ck-mixed-group", "ck-mixed", True)
    seen: list[Delivery] = []
    records: dict[Key, str] = {}

    def gather() -> None:
        python.poll(seen)
        for d in java.deliveries():
            seen.append(Delivery((0, d.offset), d.count, d.value, d.did, "java"))

    try:
        wait_until(
            lambda: gather() or _members(broker, "ck-mixed-group") == 2,
            TIMEOUT_S,
            "both members joined",
        )
        # One probe at a time until each has had one: both are fetching from the group
        # (otherwise the faster could take all 40 jobs on a loaded machine).
        deadline = time.monotonic() + TIMEOUT_S
        while {d.by for d in seen} != {"java", "confluent"}:
            assert time.monotonic() < deadline, "a consumer never got a probe"
            records |= _produce(broker, "ck-mixed", [f"probe-{len(records)}"])
            for _ in range(5):
                gather()
        values = ["release" if i % 5 == 0 else "job" for i in range(40)]
        records |= _produce(broker, "ck-mixed", [f"{kind}-{i}" for i, kind in enumerate(values)])

        def all_done() -> bool:
            gather()
            return set(records) <= set(_done(seen))

        wait_until(all_done, TIMEOUT_S, "every record done", poll_s=0)
    finally:
        python.consumer.close()
        java.close()
    assert sorted(_done(seen)) == sorted(records)
    _assert_released_came_back(seen)
    assert {d.by for d in seen} == {"java", "confluent"}


def test_a_closed_consumers_unacknowledged_records_go_to_another(
    broker: InProcessBroker,
) -> None:
    """close() commits what was acknowledged and leaves: the records it held without an
    acknowledgement are released at once (the broker's lock is an hour), so another
    member, here a DeserializingShareConsumer, gets them as second deliveries."""
    _topic(broker, "ck-closed", 1)
    _earliest(broker, "ck-closers")
    records = _produce(broker, "ck-closed", [f"job-{i}" for i in range(8)])
    leaver = ShareConsumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "ck-closers",
            "share.acknowledgement.mode": "explicit",
            "max.poll.records": POLL_RECORDS,
        }
    )
    leaver.subscribe(["ck-closed"])
    batch = _first_batch(leaver)
    first = batch[0]
    leaver.acknowledge_offset(first.topic(), first.partition(), first.offset())
    leaver.close()
    kept = {(m.partition(), m.offset()) for m in batch[1:]}
    rescuer = DeserializingShareConsumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "ck-closers",
            "value.deserializer": StringDeserializer(),
        }
    )
    rescuer.subscribe(["ck-closed"])
    seen: list[Delivery] = []
    try:

        def rest() -> bool:
            for message in rescuer.poll(0.2) or []:
                assert message.error() is None, message.error()
                key = (message.partition(), message.offset())
                seen.append(Delivery(key, message.delivery_count(), message.value(), "accept", "r"))
            return set(records) - {(first.partition(), first.offset())} <= {d.key for d in seen}

        wait_until(rest, TIMEOUT_S, "the released records came back", poll_s=0)
    finally:
        rescuer.close()
    assert (first.partition(), first.offset()) not in {d.key for d in seen}  # accepted
    assert all(records[d.key] == d.value for d in seen)  # deserialized to str
    assert sorted(d.key for d in seen) == sorted(
        set(records) - {(first.partition(), first.offset())}
    )
    # Released on close without counting the delivery again or twice: Kafka 4.4's
    # releaseAcquiredRecords leaves the count (NO_OP), so the next delivery is the second.
    for d in seen:
        assert d.count == (2 if d.key in kept else 1), d


def test_the_acknowledgement_sent_at_close_is_applied(broker: InProcessBroker) -> None:
    """librdkafka 2.16's close() sends its last ShareAcknowledge and its leave heartbeat at
    once, on two connections. As Kafka 4.4, the broker keeps a share session past its
    member's leave, so the acknowledgement finds the session whichever arrives first: the
    accepted record never comes back. When the session closed at the leave, about one
    close in six lost its acknowledgement (SHARE_SESSION_NOT_FOUND) and the record was
    delivered again; 20 closes in a row."""
    _topic(broker, "ck-close-acks", 1)
    _earliest(broker, "ck-close-ackers")
    _produce(broker, "ck-close-acks", [f"job-{i}" for i in range(24)])
    for cycle in range(20):
        consumer = ShareConsumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "ck-close-ackers",
                "share.acknowledgement.mode": "explicit",
                "max.poll.records": POLL_RECORDS,
            }
        )
        consumer.subscribe(["ck-close-acks"])
        batch = _first_batch(consumer)
        # The batch starts where the last cycle's accepted record was: each close gave
        # back the rest of its batch and accepted its first record.
        assert batch[0].offset() == cycle, [m.offset() for m in batch]
        consumer.acknowledge(batch[0], AcknowledgeType.ACCEPT)
        consumer.close()
