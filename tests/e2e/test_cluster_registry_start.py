"""The schema registry's start on a cluster (two broker processes on one PostgreSQL):
`_schemas` exists but no broker has claimed its partition yet (its target broker is
paused, as a broker is between a topic's creation and its claim). The registry waits past
its `--timeout` (LEADER_NOT_AVAILABLE is retriable, as in Confluent's KafkaStore, within
`--init-timeout`) and starts once the partition is claimed; the schema it registers then
validates produces on both brokers, the one that asked for `_schemas` before the claim
reading it from the leader. With no broker reachable at all: test_schema_registry.py."""

from __future__ import annotations

import json
import signal
import struct
import time
from pathlib import Path

import psycopg
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contextplane.cluster.assignment_plan import Candidate, place
from tests.e2e.test_cluster_catalogs import ALL, broker, create, produce, stored
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryProcess
from tests.support.wait import wait_until

SCHEMA = json.dumps(
    {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
)
# Long enough that the paused broker keeps its lease (its partitions are not moved to
# the other broker) while the registry waits.
SESSION_MS = "30000"
# The registry's --timeout: shorter than the wait for the claim, which the init
# timeout (60 s) bounds instead.
KAFKA_TIMEOUT_S = 3.0


def next_stream_id(url: str) -> int:
    """The stream id the next partition created gets (the identity's next value)."""
    with psycopg.connect(url) as db:
        sequence = db.execute("SELECT pg_get_serial_sequence('partitions', 'stream_id')")
        (name,) = sequence.fetchone() or (None,)
        last, called = db.execute(f"SELECT last_value, is_called FROM {name}").fetchone() or (0, 0)
    return int(last) + 1 if called else int(last)


def test_a_registry_waits_for_its_topic_to_be_claimed(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    (tmp_path / "objects").mkdir()
    objects = (tmp_path / "objects").as_uri()
    settings = {"broker.session.timeout.ms": SESSION_MS}
    brokers = {
        1: broker(tmp_path / "one", 1, url, objects, **settings).start(),
        2: broker(tmp_path / "two", 2, url, objects, **settings).start(),
    }
    paused: int | None = None
    try:
        admin = AdminClient({"bootstrap.servers": brokers[1].bootstrap})
        wait_until(lambda: len(admin.list_topics(timeout=10).brokers) == 2, 15, "both listed")
        one = {"bootstrap.servers": brokers[1].bootstrap}
        create(one, url, "checked", {"confluent.value.schema.validation": "true"})
        # The broker `_schemas` will be placed on is paused: it cannot claim it. Broker 1
        # started alone, so it leads every `__consumer_offsets` shard: the registry's
        # groups need it, so `_schemas` is steered to broker 2 by filler topics.
        candidates = [Candidate(1, None), Candidate(2, None)]
        fillers = 0
        while place([next_stream_id(url)], candidates)[next_stream_id(url)] != 2:
            fillers += 1
            filler = NewTopic(f"filler-{fillers}", 1, 1)
            admin.create_topics([filler])[filler.topic].result(30)
            assert fillers < 20, "placement never chose broker 2"
        target = 2
        other = 3 - target
        through_other = {"bootstrap.servers": brokers[other].bootstrap}
        own = [p for p, row in stored(url, "checked").items() if row["leader"] == other]
        brokers[target].process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        paused = target
        registry = RegistryProcess(
            brokers[other].bootstrap,
            tmp_path / "registry.log",
            kafka_timeout_s=KAFKA_TIMEOUT_S,
        ).spawn()
        try:
            wait_until(lambda: stored(url, "_schemas"), 30, "the registry created _schemas")
            assert stored(url, "_schemas")[0] == {"leader": -1, "target": target, "dirty": 0}
            # Waiting past its --timeout, the topic still unclaimed: it must not give up.
            wait_until(
                lambda: registry.logged(r"waiting for _schemas: .*LEADER_NOT_AVAILABLE"),
                30,
                "the registry waits for the leader",
            )
            # The broker that will not lead `_schemas` asks for it now, while it has no
            # leader: it fails closed (the id the registry will give is not known yet).
            first_id = b"\x00" + struct.pack(">I", 1) + json.dumps({"name": "Ada"}).encode()
            assert produce(through_other, "checked", own[0], first_id) is not None
            # Past its --timeout (each Kafka call's bound), the registry still waits:
            # only the init timeout ends its start.
            time.sleep(2 * KAFKA_TIMEOUT_S)
            assert registry.logged(r"ready on") is None
            assert stored(url, "_schemas")[0]["leader"] == -1
            brokers[target].process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            paused = None
            registry.wait_ready(60)
            assert stored(url, "_schemas")[0]["leader"] == target

            serializer = JSONSerializer(SCHEMA, SchemaRegistryClient({"url": registry.url}))
            context = SerializationContext("checked", MessageField.VALUE)
            good = serializer({"name": "Ada"}, context)
            unknown = b"\x00" + struct.pack(">I", 9_999) + b"{}"
            assert good[:5] == first_id[:5]  # the id the earlier record named
            # Every partition, so both brokers validate: the one that asked before the
            # claim reads `_schemas` from its leader now.
            for partition in ALL:
                assert produce(through_other, "checked", partition, good) is None
                refused = produce(through_other, "checked", partition, unknown)
                assert refused is not None and refused.code() == KafkaError.INVALID_RECORD
            assert registry.stop() == 0, registry.log_tail()
        finally:
            registry.stop()
    finally:
        if paused is not None:
            brokers[paused].process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        for running in brokers.values():
            running.stop()
