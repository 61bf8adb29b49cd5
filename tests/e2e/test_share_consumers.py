"""Share groups (KIP-932) with real share consumers: the Java 4.4 `KafkaShareConsumer`
(explicit and implicit acknowledgement) and confluent-kafka 2.16's `ShareConsumer`. Two
consumers share one partition's records: each record is accepted once, a released one
comes back with a higher delivery count, a rejected one never does, and the records a
killed consumer held are delivered to another."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import java_client
from harness._maven import java_tool
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

PROGRAM = Path(__file__).parent / "java" / "ShareConsumer.java"
TIMEOUT_S = 120  # liveness bound of each wait on the consumers
LOCK_MS = 5_000  # group.share.record.lock.duration.ms: a killed consumer's records return


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    process = InProcessBroker(
        tmp_path_factory.mktemp("share") / "broker",
        settings={"group.share.record.lock.duration.ms": str(LOCK_MS)},
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _topic(broker: InProcessBroker, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


@dataclass
class Delivery:
    offset: int
    count: int
    value: str
    did: str  # accept, release, reject, hold
    by: str


@dataclass
class JavaConsumer:
    """A Java share consumer process; its deliveries arrive on `lines`."""

    name: str
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, name: str, bootstrap: str, topic: str, group: str, mode: str) -> JavaConsumer:
        java_client.build()
        libs = java_client.client_home() / "libs"
        process = subprocess.Popen(
            [java_tool("java"), "-cp", f"{libs}/*", str(PROGRAM), bootstrap, topic, group, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        consumer = cls(name, process)
        threading.Thread(target=consumer._pump, daemon=True).start()
        return consumer

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def deliveries(self) -> list[Delivery]:
        """The deliveries printed since the last call."""
        out = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return out
            if line and line.startswith("record "):
                _, offset, count, value, did = line.split(" ")
                out.append(Delivery(int(offset), int(count), value, did, self.name))

    def close(self) -> None:
        """Stdin closed: the program closes its consumer (committing, leaving)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=TIMEOUT_S) == 0


def _members(broker: InProcessBroker, group: str) -> int:
    with RawClient(broker.bootstrap) as client:
        described = client.call(77, 1, group_ids=[group], include_authorized_operations=False)
        return len(described.groups[0].members)


def _assigned(broker: InProcessBroker, group: str) -> int:
    """Members holding partitions of the group's current assignment: a member that joins
    within the group's assignment interval (1 s) of the last target gets its partitions
    at a heartbeat after it (5 s apart), as in Kafka."""
    with RawClient(broker.bootstrap) as client:
        described = client.call(77, 1, group_ids=[group], include_authorized_operations=False)
        group_described = described.groups[0]
        return sum(
            1
            for m in group_described.members
            if m.member_epoch == group_described.assignment_epoch and m.assignment.topic_partitions
        )


def _collect(consumers: list[JavaConsumer], offsets: set[int], seen: list[Delivery]) -> None:
    """Gather deliveries until every one of `offsets` is done (accepted or rejected)."""

    def done() -> bool:
        for consumer in consumers:
            seen.extend(consumer.deliveries())
        return offsets <= {d.offset for d in seen if d.did in ("accept", "reject")}

    wait_until(done, TIMEOUT_S, f"{len(offsets)} records done", poll_s=0.1)


def _warm_up(consumers: list[JavaConsumer], producer: Producer, topic: str) -> list[Delivery]:
    """share.auto.offset.reset is latest: a probe record at a time until one is delivered
    shows the group's share partition exists, so nothing produced after is skipped."""
    seen: list[Delivery] = []
    deadline = time.monotonic() + TIMEOUT_S
    index = 0
    while not seen:
        assert time.monotonic() < deadline, "no probe was ever delivered"
        producer.produce(topic, value=f"probe-{index}".encode())
        producer.flush(10)
        index += 1
        for _ in range(10):
            for consumer in consumers:
                seen.extend(consumer.deliveries())
            if seen:
                break
            time.sleep(0.1)
    return seen


def test_java_share_consumers_share_a_partition(broker: InProcessBroker) -> None:
    _topic(broker, "java-work")
    explicit = JavaConsumer.start(
        "explicit", broker.bootstrap, "java-work", "java-workers", "explicit"
    )
    implicit = JavaConsumer.start(
        "implicit", broker.bootstrap, "java-work", "java-workers", "implicit"
    )
    consumers = [explicit, implicit]
    try:
        wait_until(lambda: _assigned(broker, "java-workers") == 2, TIMEOUT_S, "both assigned")
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        seen = _warm_up(consumers, producer, "java-work")
        first_job = max(d.offset for d in seen) + 1
        # Every record from the first one delivered: probes before it were produced
        # before the group's share partition existed.
        expected = set(range(min(d.offset for d in seen), first_job + 40))
        for index in range(40):
            kind = "release" if index % 4 == 0 else "reject" if index == 13 else "job"
            producer.produce("java-work", value=f"{kind}-{index}".encode())
        assert producer.flush(10) == 0
        _collect(consumers, expected, seen)
    finally:
        for consumer in consumers:
            consumer.close()
    for consumer in consumers:
        seen.extend(consumer.deliveries())
    done = [d for d in seen if d.did in ("accept", "reject")]
    # Every record done exactly once, whoever got it.
    offsets = [d.offset for d in done]
    assert len(offsets) == len(set(offsets)) and expected <= set(offsets)
    jobs = [d for d in seen if d.offset >= first_job]
    released = {d.offset for d in jobs if d.did == "release"}
    # The explicit consumer released what it was told to; each came back (to either
    # consumer) as a second delivery and was then accepted.
    assert all(d.by == "explicit" and d.count == 1 for d in jobs if d.did == "release")
    for offset in released:
        assert [d.count for d in jobs if d.offset == offset and d.did == "accept"] == [2]
    rejected = [d for d in jobs if d.value == "reject-13"]
    if any(d.by == "explicit" for d in rejected):
        assert [d.did for d in rejected] == ["reject"]  # never delivered again
    # Both shared the partition (41 records split 28/13 and 21/20 in two runs: each
    # fetch acquires at most max.poll.records, 5).
    assert {d.by for d in done} == {"explicit", "implicit"}


def test_a_killed_java_consumers_records_go_to_another(broker: InProcessBroker) -> None:
    _topic(broker, "java-held")
    holder = JavaConsumer.start("holder", broker.bootstrap, "java-held", "java-holders", "hold")
    try:
        wait_until(lambda: _members(broker, "java-holders") == 1, TIMEOUT_S, "the holder joined")
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        held = _warm_up([holder], producer, "java-held")
        assert all(d.did == "hold" and d.count == 1 for d in held)
    finally:
        holder.process.kill()  # SIGKILL: it never acknowledges, never leaves
        holder.process.wait(timeout=TIMEOUT_S)
    rescuer = JavaConsumer.start(
        "rescuer", broker.bootstrap, "java-held", "java-holders", "explicit"
    )
    seen: list[Delivery] = []
    try:
        _collect([rescuer], {d.offset for d in held}, seen)
    finally:
        rescuer.close()
    # Every record the killed consumer held is delivered again, a second time.
    for record in held:
        assert [(d.count, d.did) for d in seen if d.offset == record.offset] == [(2, "accept")]


def test_confluent_share_consumers_acknowledge_and_redeliver(broker: InProcessBroker) -> None:
    _topic(broker, "ck-work")
    base = {"bootstrap.servers": broker.bootstrap, "group.id": "ck-workers"}
    explicit = ShareConsumer({**base, "share.acknowledgement.mode": "explicit"})
    implicit = ShareConsumer(base)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    seen: list[Delivery] = []
    try:
        for consumer in (explicit, implicit):
            consumer.subscribe(["ck-work"])
        wait_until(lambda: _assigned(broker, "ck-workers") == 2, TIMEOUT_S, "both assigned")
        probes = 0

        def poll_both() -> None:
            for consumer, name in ((explicit, "explicit"), (implicit, "implicit")):
                for message in consumer.poll(0.2) or []:
                    assert message.error() is None, message.error()
                    value = message.value().decode()
                    did, kind = "accept", AcknowledgeType.ACCEPT
                    if (
                        name == "explicit"
                        and value.startswith("release")
                        and message.delivery_count() == 1
                    ):
                        did, kind = "release", AcknowledgeType.RELEASE
                    elif name == "explicit" and value.startswith("reject"):
                        did, kind = "reject", AcknowledgeType.REJECT
                    if name == "explicit":
                        consumer.acknowledge(message, kind)
                    seen.append(
                        Delivery(message.offset(), message.delivery_count(), value, did, name)
                    )
                if name == "explicit":
                    consumer.commit_sync()

        deadline = time.monotonic() + TIMEOUT_S
        while not seen:  # share.auto.offset.reset=latest: probes until one arrives
            assert time.monotonic() < deadline, "no probe was ever delivered"
            producer.produce("ck-work", value=f"probe-{probes}".encode())
            producer.flush(10)
            probes += 1
            poll_both()
        first_job = max(d.offset for d in seen) + 1
        expected = set(range(min(d.offset for d in seen), first_job + 20))
        for index in range(20):
            kind = "release" if index % 4 == 0 else "reject" if index == 5 else "job"
            producer.produce("ck-work", value=f"{kind}-{index}".encode())
        assert producer.flush(10) == 0
        wait_until(
            lambda: poll_both() or expected <= {d.offset for d in seen if d.did != "release"},
            TIMEOUT_S,
            "every record done",
            poll_s=0,
        )
    finally:
        explicit.close()
        implicit.close()
    done = [d for d in seen if d.did != "release"]
    offsets = [d.offset for d in done]
    assert len(offsets) == len(set(offsets)) and expected <= set(offsets)
    for offset in {d.offset for d in seen if d.did == "release"}:
        assert [d.count for d in done if d.offset == offset] == [2]
