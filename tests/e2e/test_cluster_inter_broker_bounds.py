"""What one client request may make a broker ask of another (RFC 0004, "Brokers' own
writes across brokers as built"), on two broker processes sharing one PostgreSQL.

A Produce whose batches the schema check refuses on a topic with a dead-letter topic
led by the other broker writes each batch there over the inter-broker client. With that
leader unreachable every write is retried until the deadline: the Produce's own
timeout bounds the whole request, not each of its batches (which let one Produce of N
partitions hold for N timeouts, retrying the peer all along)."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from conformance import wire
from conformance.wire import Rec
from tests.e2e.test_cluster_failover import broker, create, fixture, stored
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

PRODUCE = 0
INVALID_RECORD = 87
DLQ = "contextplane.schema.validation.dlq.topic"
# Broker 1's lease outlives the test: broker 2 keeps naming it the dead-letter leader.
LONG_SESSION = {"broker.session.timeout.ms": "60000"}
TIMEOUT_MS = 1_000


def test_a_produce_waits_for_its_dead_letters_at_most_its_own_timeout(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    one = broker(tmp_path / "one", 1, url, objects, **LONG_SESSION).start()
    two = broker(tmp_path / "two", 2, url, objects, **LONG_SESSION).start()
    try:
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("dead", 1, 1)])["dead"].result(30)
        wait_until(lambda: stored(url, "dead")[0]["leader"] == 1, 15, "broker 1 leads dead")
        checked = create(
            one.bootstrap,
            "checked",
            12,
            url,
            {"confluent.value.schema.validation": "true", DLQ: "dead"},
        )
        on_two = sorted(p for p, node in checked.items() if node == 2)
        assert len(on_two) >= 4, checked
        one.kill9()

        refused = wire.encode_batch([Rec(b"not avro")])
        partitions = [{"index": p, "records": refused} for p in on_two]
        with RawClient(two.bootstrap) as client:
            started = time.monotonic()
            answer = client.request(
                PRODUCE,
                9,
                transactional_id=None,
                acks=-1,
                timeout=TIMEOUT_MS,
                topic_data=[{"name": "checked", "partition_data": partitions}],
            )
            elapsed_s = time.monotonic() - started
        codes = [p.error_code for t in answer.responses for p in t.partition_responses]
        assert codes == [INVALID_RECORD] * len(on_two)
        # One timeout and a margin for the machine, not one per refused batch.
        assert elapsed_s < TIMEOUT_MS / 1000 + 1.0, (elapsed_s, len(on_two))
    finally:
        two.stop()
        one.stop()
