"""`contextplane mirror` between two contextplane brokers (the quick subset's check of
the command; tests/e2e/test_cli_mirror.py runs it from Apache Kafka): topics chosen by a
regular expression, an aborted transaction, the table printed, and both isolation levels
read the same on either side; group offsets (forward only, with their metadata, a group
busy on the target left for later, named groups that have nothing to copy); a cluster
that cannot be reached named by its side; Ctrl-C saves progress and prints the summary."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from contextplane.cli import mirror_state
from tests.support.broker import free_port
from tests.support.cli import contextplane, one_error_line, sigint_as_from_a_terminal
from tests.support.inprocess import InProcessBroker
from tests.support.mirror import (
    create,
    log_end,
    produce,
    read_all,
    start_mirror,
    transaction,
)
from tests.support.wait import wait_until

# Groups join at once rather than after the 3-s initial rebalance delay.
FAST_JOINS = {"group.initial.rebalance.delay.ms": "0"}


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[InProcessBroker, InProcessBroker]]:
    source = InProcessBroker(tmp_path / "source", settings=FAST_JOINS).start()
    target = InProcessBroker(tmp_path / "target", settings=FAST_JOINS).start()
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


def _commit(bootstrap: str, group: str, topic: str, offset: int, **details: Any) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, offset, **details)])
    admin.alter_consumer_group_offsets([request])[group].result(timeout=30)


def _committed_partition(bootstrap: str, group: str, topic: str) -> TopicPartition:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    (found,) = (
        admin.list_consumer_group_offsets([request])[group].result(timeout=30).topic_partitions
    )
    return found


def _committed(bootstrap: str, group: str, topic: str) -> int:
    return int(_committed_partition(bootstrap, group, topic).offset)


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


def _mirror_groups(
    source: InProcessBroker, target: InProcessBroker, topic: str, groups: str
) -> Any:
    run = contextplane(
        "mirror",
        "--source-bootstrap-server",
        source.bootstrap,
        "--bootstrap-server",
        target.bootstrap,
        "--topics",
        topic,
        "--group-offsets",
        "--groups",
        groups,
        "--once",
        "--output",
        "json",
    )
    return run.json(), run.err.splitlines()


def test_group_offsets_keep_their_metadata_and_wait_for_a_group_busy_on_the_target(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    create(source.bootstrap, "ledger", 1)
    create(source.bootstrap, "audit", 1)
    produce(source.bootstrap, "ledger", 0, 20)
    _commit(source.bootstrap, "billing", "ledger", 10, metadata="billing@v2", leader_epoch=7)
    assert _committed_partition(source.bootstrap, "billing", "ledger").leader_epoch == 7
    _commit(source.bootstrap, "elsewhere", "audit", 0)  # only on a topic not mirrored
    # A consumer of the group runs on the target already: Kafka refuses an admin commit to
    # a group with members.
    create(target.bootstrap, "ledger", 1)
    member = Consumer(
        {"bootstrap.servers": target.bootstrap, "group.id": "billing", "enable.auto.commit": False}
    )
    member.subscribe(["ledger"])
    try:
        wait_until(lambda: _assigned(member), 30, "the member's assignment")
        summary, notes = _mirror_groups(source, target, "ledger", "billing,ghost,elsewhere")
    finally:
        member.close()
    busy = "group billing has members on the target; its offsets are copied once it is empty"
    ghost = "group ghost is not found on the source (it has no committed offsets)"
    elsewhere = "group elsewhere has no offsets on the mirrored topics on the source"
    assert notes == [f"mirror: {busy}", f"mirror: {ghost}", f"mirror: {elsewhere}"]
    assert summary["groups"] == {}
    assert summary["groups_not_copied"] == {"billing": busy, "ghost": ghost, "elsewhere": elsewhere}
    assert _committed(target.bootstrap, "billing", "ledger") < 0

    # Empty now: the next run copies the offset and its metadata, not the source's leader
    # epoch (the target's batches carry the target's epochs).
    summary, _ = _mirror_groups(source, target, "ledger", "billing")
    assert summary["groups"] == {"billing": {"ledger:0": 10}}
    assert summary["groups_not_copied"] == {}
    copied = _committed_partition(target.bootstrap, "billing", "ledger")
    assert (copied.offset, copied.metadata, copied.leader_epoch) == (10, "billing@v2", None)


def _assigned(consumer: Consumer) -> bool:
    consumer.poll(0.2)  # serves the group's join
    return bool(consumer.assignment())


def test_an_unreachable_cluster_is_named_by_its_side(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    for side, source_at, target_at in (
        ("source", nowhere, target.bootstrap),
        ("target", source.bootstrap, nowhere),
    ):
        run = contextplane(
            "mirror",
            "--source-bootstrap-server",
            source_at,
            "--bootstrap-server",
            target_at,
            "--topics",
            "anything",
            "--once",
        )
        assert one_error_line(run) == (
            f"contextplane mirror: the {side} ({nowhere}): cannot connect to {nowhere}: "
            "connection refused (is a broker running there?)"
        )


def test_ctrl_c_saves_progress_and_prints_the_summary(
    brokers: tuple[InProcessBroker, InProcessBroker],
) -> None:
    source, target = brokers
    create(source.bootstrap, "clicks", 1)
    create(target.bootstrap, "clicks", 1)
    produce(source.bootstrap, "clicks", 0, 200)
    running = start_mirror(source.bootstrap, target.bootstrap, preexec_fn=sigint_as_from_a_terminal)
    try:
        wait_until(lambda: log_end(target.bootstrap, "clicks") == 200, 60, "the copy")
        running.send_signal(signal.SIGINT)
        out, err = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 130, err
    summary = json.loads(out)
    assert summary["partitions"] == [
        {"topic": "clicks", "partition": 0, "source_end": 200, "mirrored_end": 200, "lag": 0}
    ]
    assert mirror_state.read({"bootstrap.servers": target.bootstrap}) == {("clicks", 0): 200}
