"""A topic change is answered once every live broker shows it (broker/topic_propagation.py).

Two brokers on one PostgreSQL. Each round creates a topic through broker 1, grows it and
deletes it, and right after each answer asks broker 2 (and broker 1) for Metadata with no
wait: the new topic is listed with every partition led, the grown one with its new
count, the deleted one unknown. Before the wait, broker 2 read the change on its
notification a few ms after the answer and often still showed the old state (librdkafka's
`0112_assign_unknown_part` on three brokers: "Unknown partition"). A stopped broker
(SIGSTOP: it takes connections, answers nothing) holds an answer up for at most the
wait's bound.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from contextplane import limits
from tests.e2e.test_cluster_failover import METADATA, broker, fixture, listed_brokers
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

ROUNDS = 5
UNKNOWN_TOPIC_OR_PARTITION = 3


def metadata(bootstrap: str, names: list[str] | None) -> dict[str, Any]:
    """topic -> its Metadata entry as the broker at `bootstrap` answers (None: all)."""
    topics = None if names is None else [{"name": n, "topic_id": None} for n in names]
    with RawClient(bootstrap) as raw:
        answer = raw.request(METADATA, 12, topics=topics, allow_auto_topic_creation=False)
    return {t.name: t for t in answer.topics}


def led(entry: Any) -> list[int]:
    """The partitions of a Metadata topic entry that are listed with a leader."""
    return sorted(p.partition_index for p in entry.partitions if p.error_code == 0)


def test_every_broker_shows_a_topic_change_once_it_is_answered(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects).start()
    two = broker(tmp_path / "two", 2, url, objects).start()
    try:
        wait_until(lambda: listed_brokers(two.bootstrap) == [1, 2], 15, "broker 2 lists both")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        for round_ in range(ROUNDS):
            name = f"propagated-{round_}"
            admin.create_topics([NewTopic(name, 2)])[name].result(30)
            for bootstrap in (two.bootstrap, one.bootstrap):
                listed = metadata(bootstrap, None)  # all topics: no lookup of the name
                assert name in listed, (round_, bootstrap)
                assert led(listed[name]) == [0, 1], (round_, bootstrap)
            admin.create_partitions([NewPartitions(name, 6)])[name].result(30)
            for bootstrap in (two.bootstrap, one.bootstrap):
                assert led(metadata(bootstrap, [name])[name]) == list(range(6)), round_
            admin.delete_topics([name])[name].result(30)
            for bootstrap in (two.bootstrap, one.bootstrap):
                entry = metadata(bootstrap, [name])[name]
                assert entry.error_code == UNKNOWN_TOPIC_OR_PARTITION, (round_, bootstrap)
                assert name not in metadata(bootstrap, None), (round_, bootstrap)

        # A broker that answers nothing holds the answer up for the bound only.
        assert two.process is not None
        two.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            admin.create_topics([NewTopic("while-stopped", 2)])["while-stopped"].result(30)
            took_s = time.monotonic() - started
        finally:
            two.process.send_signal(signal.SIGCONT)
        assert took_s < limits.TOPIC_CHANGE_WAIT_S + 5, took_s
    finally:
        one.stop()
        two.stop()
