"""What a share group member's leave does to its share session and the records it holds,
asked of Apache Kafka 4.4 and of contextplane with the same requests: nothing. Kafka
closes a share session only at a request with epoch -1, when its connection drops or at
eviction (its ShareSessionCache calls onMemberLeave then), never at a leave heartbeat; so
after the leave the records stay acquired, the session acknowledges and even acquires,
and its close gives the records to another member at once, as second deliveries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from kio.schema.errors import ErrorCode

from harness import kafka_reference
from tests.groups.support import Broker, Wire
from tests.groups.test_share_group_wire import (
    ACCEPT,
    CREATE_TOPICS,
    FIND_COORDINATOR,
    SHARE_DESCRIBE,
    _ack,
    _acquired,
    _beat,
    _fetch,
    _one,
    _topic_ids,
)
from tests.support.wait import wait_until

GROUP, TOPIC = "leavers", "leaving"
# Kafka creates __consumer_offsets and the share state topic at the first request that
# needs them: joining, assigning and a share partition's first fetch are retried.
_TRIES = 60


def _produce(bootstrap: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for index in range(count):
        producer.produce(TOPIC, value=f"job-{index}".encode(), partition=0)
    assert producer.flush(10) == 0


def _holds_it(beat: Any) -> bool:
    if beat.assignment is None:
        return False
    return [p for t in beat.assignment.topic_partitions for p in t.partitions] == [0]


def _join(wire: Wire, member: str, epochs: dict[str, int], holding: set[str]) -> None:
    for _ in range(_TRIES):
        wire.call(FIND_COORDINATOR, 6, key_type=0, coordinator_keys=[GROUP])
        joined = _beat(wire, GROUP, member, 0, [TOPIC])
        if joined.error_code == ErrorCode.none:
            epochs[member] = joined.member_epoch
            if _holds_it(joined):
                holding.add(member)
            return
        time.sleep(0.5)
    raise AssertionError(f"{member} could not join: {joined}")


def _assigned(wire: Wire) -> None:
    """Both members joined and heartbeating until each holds partition 0 (an assignment
    is sent when it changes, so a member that got it stays holding it)."""
    epochs: dict[str, int] = {}
    holding: set[str] = set()
    for member in ("a", "b"):
        _join(wire, member, epochs, holding)
    for _ in range(_TRIES):
        if holding == set(epochs):
            return
        time.sleep(0.5)
        for member, epoch in epochs.items():
            beat = _beat(wire, GROUP, member, epoch)
            assert beat.error_code == ErrorCode.none, beat
            epochs[member] = beat.member_epoch
            if _holds_it(beat):
                holding.add(member)
    raise AssertionError(f"not assigned: {epochs} {holding}")


def _conversation(port: int, bootstrap: str) -> list[Any]:
    seen: list[Any] = []
    with Wire(port) as wire, Wire(port) as other:
        created = wire.call(
            CREATE_TOPICS,
            7,
            topics=[{"name": TOPIC, "num_partitions": 1, "replication_factor": 1}],
            timeout=10_000,
        )
        assert created.topics[0].error_code == ErrorCode.none
        # Kafka's metadata lists a topic just created only once its brokers learned it.
        topic = wait_until(lambda: _topic_ids(wire).get(TOPIC), 30, f"{TOPIC} listed")
        _assigned(wire)
        epochs = {"a": 0, "b": 0}
        for member, connection in (("a", other), ("b", wire)):
            opened = _fetch(connection, GROUP, member, 0, _one(topic))
            seen.append(("open", member, opened.error_code))
            epochs[member] = 1
        _produce(bootstrap, 2)
        for _ in range(_TRIES):  # the partition named again until its state is there
            got = _acquired(_fetch(other, GROUP, "a", epochs["a"], _one(topic), 3_000))
            epochs["a"] += 1
            if got:
                break
        seen.append(("a acquires", got))
        left = _beat(wire, GROUP, "a", -1)
        seen.append(("a leaves", left.error_code, left.member_epoch))
        waited = _fetch(wire, GROUP, "b", epochs["b"], [], 500)
        epochs["b"] += 1
        seen.append(("b meanwhile", waited.error_code, _acquired(waited)))
        acked = _ack(other, GROUP, "a", epochs["a"], _one(topic, (0, 0, ACCEPT)))
        epochs["a"] += 1
        seen.append(("a accepts 0", acked.error_code, acked.responses[0].partitions[0].error_code))
        _produce(bootstrap, 1)
        fetched = _fetch(other, GROUP, "a", epochs["a"], [], 5_000)
        seen.append(("a fetches after its leave", fetched.error_code, _acquired(fetched)))
        seen.append(("a closes its session", _ack(other, GROUP, "a", -1, []).error_code))
        released: list[tuple[int, int, int]] = []
        for _ in range(3):
            released += _acquired(_fetch(wire, GROUP, "b", epochs["b"], [], 5_000))
            epochs["b"] += 1
            if sum(last - first + 1 for first, last, _ in released) >= 2:
                break
        # Per offset: Kafka 4.4 answers a range per batch, (1, 1, 2) and (2, 2, 2), where
        # contextplane joins adjacent ranges of one delivery count, (1, 2, 2).
        per_offset = sorted((o, n) for first, last, n in released for o in range(first, last + 1))
        seen.append(("b gets them", per_offset))
        described = wire.call(
            SHARE_DESCRIBE, 1, group_ids=[GROUP], include_authorized_operations=False
        )
        seen.append(("members", [m.member_id for m in described.groups[0].members]))
    return seen


EXPECTED = [
    ("open", "a", ErrorCode.none),
    ("open", "b", ErrorCode.none),
    ("a acquires", [(0, 1, 1)]),
    ("a leaves", ErrorCode.none, -1),
    ("b meanwhile", ErrorCode.none, []),
    ("a accepts 0", ErrorCode.none, ErrorCode.none),
    ("a fetches after its leave", ErrorCode.none, [(2, 2, 1)]),
    ("a closes its session", ErrorCode.none),
    ("b gets them", [(1, 2), (2, 2)]),
    ("members", ["b"]),
]


@pytest.mark.slow  # starts Apache Kafka
def test_a_leave_closes_no_share_session_as_in_kafka(tmp_path: Path) -> None:
    kafka = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    try:
        expected = _conversation(int(kafka.bootstrap.rsplit(":", 1)[1]), kafka.bootstrap)
    finally:
        kafka.stop()
    assert expected == EXPECTED  # what Kafka 4.4 answers, written out
    broker = Broker(tmp_path / "contextplane").start()
    try:
        assert _conversation(broker.port, broker.bootstrap) == expected
    finally:
        broker.stop()
