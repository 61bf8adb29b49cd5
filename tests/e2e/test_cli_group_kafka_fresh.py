"""`contextplane group reset-offsets` and `group describe` asked of Apache Kafka 4.4 the
moment it has started: the first group makes Kafka create `__consumer_offsets`, and its
group coordinator answers NOT_COORDINATOR (DescribeGroups, OffsetFetch, OffsetCommit)
until that partition is loaded. The commands ask again within a bound and answer as on
a settled cluster; confluent-kafka's AdminClient failed them on that NOT_COORDINATOR,
and its OffsetFetch can crash the process on one (cli/group_committed.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import kafka_reference
from tests.e2e.test_cli_reset_and_consume_kafka import create, produce
from tests.support.cli import contextplane

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh() -> Iterator[str]:
    """The bootstrap of a Kafka just started that has never had a group."""
    kafka = kafka_reference.start(timeout=180)
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


def test_a_first_group_reset_and_described_at_once(fresh: str) -> None:
    create(fresh, "clicks", 2)
    produce(fresh, "clicks", [(p, 1_000) for p in (0, 1) for _ in range(3)])
    bootstrap = ("--bootstrap-server", fresh, "--output", "json")
    reset = contextplane(
        "group", "reset-offsets", "analytics", "--topic", "clicks", "--to-offset", "1",
        "--execute", *bootstrap,
    )  # fmt: skip
    assert reset.status == 0, (reset.status, reset.err)
    described = contextplane("group", "describe", "analytics", *bootstrap)
    assert described.status == 0, (described.status, described.err)
    shown = described.json()["partitions"]
    assert [(p["topic"], p["partition"], p["committed_offset"], p["lag"]) for p in shown] == [
        ("clicks", 0, 1, 2),
        ("clicks", 1, 1, 2),
    ]
