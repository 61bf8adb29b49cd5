"""The Java client unchanged against three brokers on PostgreSQL and SeaweedFS, started by
the local cluster's supervisor (issue #13): an idempotent producer with acks=all writes to
a topic whose partitions are led by all three brokers, a consumer group reads every
record back and commits; each partition holds its records exactly once, in order, and
the group's committed offsets are the partitions' ends."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from conformance.cluster_target import BROKERS, cluster_broker
from conformance.suites import BrokerSpec
from harness import java_client
from harness._maven import java_tool
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

PROGRAM = Path(__file__).parent / "java" / "ClusterExactlyOnce.java"
PARTITIONS = 6
PER_PARTITION = 500


def test_java_idempotent_producer_and_group_exactly_once_over_three_brokers(
    tmp_path: Path,
) -> None:
    java_client.build()
    libs = java_client.client_home() / "libs"
    with cluster_broker(BrokerSpec({}), tmp_path / "kept") as (bootstrap, _version):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("spread", PARTITIONS, 1)])["spread"].result(30)
        # A new partition has no leader (-1) until a broker claims it.
        wait_until(
            lambda: leaders(admin, "spread") == set(range(1, BROKERS + 1)),
            30,
            "the topic's partitions led by all three brokers",
        )
        result = subprocess.run(
            [java_tool("java"), "-cp", f"{libs}/*", str(PROGRAM), bootstrap]
            + ["spread", "readers", str(PER_PARTITION)],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["leaders", "1,2,3", "done"], result.stdout


def leaders(admin: AdminClient, topic: str) -> set[int]:
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p.leader for p in partitions.values()}
