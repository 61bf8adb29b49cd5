"""The README's "Transactions" example runs as printed against a broker (only the
bootstrap address changed), and its "Compacted topics" command uses valid topic configs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from contextplane.broker.configs import invalid_topic_config
from contextplane.settings_table import SETTINGS
from tests.e2e.test_retention import create
from tests.support.inprocess import InProcessBroker
from tests.support.readme import section, walkthrough


def test_the_readme_consume_transform_produce_example_commits_records_and_offsets(
    tmp_path: Path,
) -> None:
    (example,) = walkthrough("## Transactions").python
    broker = InProcessBroker(tmp_path / "broker").start()
    try:
        create(broker.bootstrap, "in")
        create(broker.bootstrap, "out")
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for value in (b"a", b"b", b"c"):
            producer.produce("in", key=value, value=value, partition=0)
        assert producer.flush(10) == 0
        code = example.replace("127.0.0.1:9092", broker.bootstrap)
        # The example's consume() waits at most 5 s: run it until the group's first
        # assignment has handed it the records (a join can take longer on a busy machine).
        deadline = time.monotonic() + 30
        while True:
            namespace: dict[str, Any] = {}
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our README
            namespace["consumer"].close()
            if namespace["batch"] or time.monotonic() > deadline:
                break
        reader = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "xform",
                "isolation.level": "read_committed",
            }
        )
        try:
            (committed,) = reader.committed([TopicPartition("in", 0)], timeout=10)
            assert committed.offset == 3
            reader.assign([TopicPartition("out", 0, 0)])
            values: list[bytes] = []
            while len(values) < 3 and time.monotonic() < deadline + 20:
                for message in reader.consume(10, 0.5):
                    assert message.error() is None, message.error()
                    values.append(message.value())
            assert sorted(values) == [b"A", b"B", b"C"]
        finally:
            reader.close()
    finally:
        broker.stop()


def test_the_readme_compacted_topic_command_uses_valid_topic_configs() -> None:
    (command,) = walkthrough("## Compacted topics").commands("kafka-topics.sh")
    configs = re.findall(r"--config (\S+)=(\S+)", command)
    assert ("cleanup.policy", "compact") in configs
    for name, value in configs:
        assert invalid_topic_config(name, value) is None, (name, value)
    text = section("## Compacted topics")
    names = {setting.name for setting in SETTINGS}
    for name in re.findall(r"`(log\.clean[a-z.]+)`", text):
        assert name in names, name
