"""`contextplane mirror` between two contextplane brokers (the quick subset's check of
the command; tests/e2e/test_cli_mirror.py runs it from Apache Kafka): topics chosen by a
regular expression, an aborted transaction, the table printed, and both isolation levels
read the same on either side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
