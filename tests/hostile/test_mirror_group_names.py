"""Group ids come from the source cluster, which anyone with a client may fill: the
lines `contextplane mirror --group-offsets` prints for each group (offsets mode) show a
group id's control characters as backslash escapes, so a hostile id cannot drive the
operator's terminal (an OSC 52 clipboard write here)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.support.cli import contextplane
from tests.support.mirror import create, produce, two_brokers

HOSTILE = "billing\x1b]52;c;aGVsbG8=\x07"


def test_a_hostile_group_id_is_printed_escaped(tmp_path: Path) -> None:
    with two_brokers(tmp_path) as (source, target):
        create(source.bootstrap, "ledger", 1)
        produce(source.bootstrap, "ledger", 0, 5)
        admin = AdminClient({"bootstrap.servers": source.bootstrap})
        request = ConsumerGroupTopicPartitions(HOSTILE, [TopicPartition("ledger", 0, 3)])
        admin.alter_consumer_group_offsets([request])[HOSTILE].result(timeout=30)
        run = contextplane(
            *("mirror", "--source-bootstrap-server", source.bootstrap),
            *("--bootstrap-server", target.bootstrap, "--topics", "ledger"),
            *("--group-offsets", "--once"),
        )
        assert run.status == 0, run.err
        assert "\x1b" not in run.out and "\x07" not in run.out
        assert "group billing\\x1b]52;c;aGVsbG8=\\x07: 1 offsets copied" in run.out, run.out
