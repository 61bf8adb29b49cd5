"""`contextplane mirror` between two contextplane brokers (the quick subset's check of
the command; tests/e2e/test_cli_mirror.py runs it from Apache Kafka): topics chosen by a
regular expression, an aborted transaction, the table printed, and both isolation levels
read the same on either side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.support.cli import contextplane, one_error_line
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import create, produce, read_all, transaction


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    source = InProcessBroker(tmp_path / "source").start()
    target = InProcessBroker(tmp_path / "target").start()
    yield source, target
    target.stop()
    source.stop()


def test_topics_by_regex_mirror_between_contextplane_brokers(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    create(source.bootstrap, "orders.eu", 2)
    create(source.bootstrap, "orders.us", 1)
    create(source.bootstrap, "payments", 1)
    produce(source.bootstrap, "orders.eu", 0, 50)
    transaction(source.bootstrap, "orders.eu", 0, [b"undone"], commit=False)
    produce(source.bootstrap, "orders.eu", 1, 5)
    produce(source.bootstrap, "orders.us", 0, 7)
    produce(source.bootstrap, "payments", 0, 3)
    run = contextplane(
        "mirror",
        "--source-bootstrap-server",
        source.bootstrap,
        "--bootstrap-server",
        target.bootstrap,
        "--topics-regex",
        r"orders\..*",
        "--once",
    )
    assert run.rows() == [
        ["TOPIC", "PARTITION", "SOURCE-END", "MIRRORED-END", "LAG"],
        ["orders.eu", "0", "52", "52", "0"],  # 50 records, the aborted one and its marker
        ["orders.eu", "1", "5", "5", "0"],
        ["orders.us", "0", "7", "7", "0"],
    ]
    for topic, partition in (("orders.eu", 0), ("orders.eu", 1), ("orders.us", 0)):
        for isolation in ("read_uncommitted", "read_committed"):
            expected = read_all(source.bootstrap, topic, partition, isolation)
            assert read_all(target.bootstrap, topic, partition, isolation) == expected
    missing = contextplane(
        "mirror",
        "--source-bootstrap-server",
        source.bootstrap,
        "--bootstrap-server",
        target.bootstrap,
        "--topics",
        "nope",
        "--once",
    )
    assert one_error_line(missing) == (
        "contextplane mirror: topic nope is not on the source: UNKNOWN_TOPIC_OR_PARTITION"
    )
    state = contextplane(
        "mirror",
        "--source-bootstrap-server",
        source.bootstrap,
        "--bootstrap-server",
        target.bootstrap,
        "--topics",
        "_schemas",
        "--once",
    )
    assert one_error_line(state, status=2) == (
        "contextplane mirror: topic _schemas is not mirrored: `__` topics and _schemas hold"
        " each cluster's own state (MirrorAppend refuses them)"
    )
    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    assert "_schemas" not in admin.list_topics(timeout=30).topics  # refused before creating


def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, offset)])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    (found,) = (
        admin.list_consumer_group_offsets([request])[group].result(timeout=30).topic_partitions
    )
    return int(found.offset)


def test_group_offsets_are_copied_forward_only(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    """A group that moved over and went on is never rewound by the next run."""
    source, target = brokers
    create(source.bootstrap, "ledger", 1)
    produce(source.bootstrap, "ledger", 0, 20)

    def mirror() -> None:
        run = contextplane(
            "mirror",
            "--source-bootstrap-server",
            source.bootstrap,
            "--bootstrap-server",
            target.bootstrap,
            "--topics",
            "ledger",
            "--group-offsets",
            "--groups",
            "billing",
            "--once",
        )
        assert run.status == 0, run.err

    _commit(source.bootstrap, "billing", "ledger", 10)
    mirror()
    assert _committed(target.bootstrap, "billing", "ledger") == 10
    _commit(target.bootstrap, "billing", "ledger", 15)  # its consumers moved over, went on
    mirror()
    assert _committed(target.bootstrap, "billing", "ledger") == 15
    _commit(source.bootstrap, "billing", "ledger", 18)  # and back on the source, further
    mirror()
    assert _committed(target.bootstrap, "billing", "ledger") == 18
