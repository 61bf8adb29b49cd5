"""A classic group with members moves to the consumer protocol and back while it consumes
(KIP-848's online upgrade and downgrade), with Java 4.4 consumers.

Two classic consumers (the Java default: range, eager) share a 6-partition topic; a third
joins with group.protocol=consumer, which converts the group; all three consume; the
third finishes and leaves, which turns the group classic again, and the first two go on.
Each consumer commits what it printed after every poll, so every offset must be
consumed (none lost), and a record consumed twice must follow a commit that a rebalance
refused (the only reason to see it again).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.coordinators.group_state.states import GroupState
from harness import java_client
from tests.e2e.test_consumer_protocol import HEARTBEAT_SETTINGS
from tests.support.inprocess import InProcessBroker
from tests.support.wait import wait_until

PARTITIONS = 6
# Liveness bounds, well above the protocols' own pace (classic heartbeats every 3 s,
# consumer-protocol ones every second: HEARTBEAT_SETTINGS).
SETTLE_S = 90
CLIENT_TIMEOUT_S = 240
GROUP = "migrating-group"
TOPIC = "migrating"


class Consumer:
    """One Java consumer process; its JSON lines go to a file (a pipe could fill)."""

    def __init__(self, bootstrap: str, name: str, protocol: str, count: int, out: Path) -> None:
        self.out = out
        self._file = out.open("w")
        argv = java_client.command(
            [
                "consume", "--bootstrap", bootstrap, "--topic", TOPIC, "--group", GROUP,
                "--count", str(count), "--group-protocol", protocol, "--client-id", name,
                "--timeout-ms", str(CLIENT_TIMEOUT_S * 1000),
            ]
        )  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=self._file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self._file.close()

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for raw in self.out.read_text().splitlines():
            if raw.startswith("{"):
                try:
                    found.append(json.loads(raw))
                except ValueError:
                    continue  # a line cut by the termination
        return found

    def records(self) -> list[tuple[int, int]]:
        return [(r["record"][0], r["record"][1]) for r in self.lines() if r["type"] == "record"]

    def failed_commits(self) -> int:
        return sum(1 for r in self.lines() if r["type"] == "commit_failed")


def _produce(bootstrap: str, per_partition: int, ends: list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(per_partition * PARTITIONS):
        producer.produce(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0
    for p in range(PARTITIONS):
        ends[p] += per_partition


def _committed(broker: InProcessBroker) -> list[int]:
    code, topics = broker.call(broker.broker.groups.fetch_offsets(GROUP, None))
    by_partition = {
        p["partition_index"]: p["committed_offset"] for t in topics for p in t["partitions"]
    }
    return [by_partition.get(p, -1) for p in range(PARTITIONS)]


def test_a_classic_group_upgrades_and_downgrades_while_consuming(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "broker", settings=HEARTBEAT_SETTINGS).start()
    coordinator = broker.broker.groups
    consumers: list[Consumer] = []
    ends = [0] * PARTITIONS
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
        _produce(broker.bootstrap, 50, ends)
        a = Consumer(broker.bootstrap, "a", "classic", 10**6, tmp_path / "a.out")
        b = Consumer(broker.bootstrap, "b", "classic", 10**6, tmp_path / "b.out")
        consumers += [a, b]

        def classic_with(count: int) -> bool:
            group = coordinator.state.group(GROUP)
            return (
                group is not None
                and group.is_in(GroupState.STABLE)
                and len(group.members) == count
                and _committed(broker) == ends
            )

        wait_until(lambda: classic_with(2), SETTLE_S, "two classic members consumed it all")
        classic_group = coordinator.state.group(GROUP)
        assert classic_group is not None
        generation = classic_group.generation_id

        c = Consumer(broker.bootstrap, "c", "consumer", 60, tmp_path / "c.out")
        consumers.append(c)

        def upgraded() -> bool:
            group = coordinator.consumer.group(GROUP)
            return group is not None and len(group.members) == 3

        wait_until(upgraded, SETTLE_S, "the upgrade to a consumer group of three")
        group = coordinator.consumer.group(GROUP)
        assert group is not None and group.group_epoch > generation
        assert sum(m.classic is not None for m in group.members.values()) == 2
        # Records keep coming until the consumer-protocol member has its 60 and leaves.
        deadline = time.monotonic() + SETTLE_S
        while c.process.poll() is None:
            assert time.monotonic() < deadline, "the consumer-protocol member never finished"
            _produce(broker.bootstrap, 5, ends)
            time.sleep(0.5)
        assert c.process.returncode == 0, c.out.read_text()[-3000:]
        upgraded_ends = list(ends)

        wait_until(lambda: coordinator.consumer.group(GROUP) is None, SETTLE_S, "the downgrade")
        _produce(broker.bootstrap, 50, ends)
        wait_until(lambda: classic_with(2), SETTLE_S, "the classic group consumed it all")
    finally:
        for consumer in consumers:
            consumer.stop()
        broker.stop()

    seen: dict[tuple[int, int], int] = {}
    for consumer in consumers:
        for key in consumer.records():
            seen[key] = seen.get(key, 0) + 1
    wanted = {(p, o) for p in range(PARTITIONS) for o in range(ends[p])}
    assert set(seen) == wanted, "records lost"
    duplicates = [key for key, times in seen.items() if times > 1]
    if duplicates:
        assert sum(x.failed_commits() for x in consumers) > 0, duplicates[:10]
    # All three consumed; the classic ones went on after the group was classic again.
    assert c.records()
    for classic in (a, b):
        assert any(o >= upgraded_ends[p] for p, o in classic.records())
