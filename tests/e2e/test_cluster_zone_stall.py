"""Zone writes when a leader stops answering (RFC 0004 §7, "Zone writes as built").

- Three brokers in racks a, b and c, the proxy on; the rack-c leader is stopped
  (SIGSTOP, well inside a long session timeout). A zone-a client's record for a
  partition rack c leads waits; another zone-a client's record for a partition rack b
  leads is answered while rack c is still stopped (each leader's calls are their own
  pipeline: a stopped leader holds up only the requests with frames for it). Once
  rack c goes on, the waiting record is answered and both are stored once.
- A short Produce timeout with acks=1 (which Kafka ignores: it answers once appended)
  does not answer REQUEST_TIMED_OUT for a record the leader appends after the timeout:
  the hand-over waits for the leader, and the record is stored once.
- A leader the proxy cannot reach while its heartbeat shows it live is left out of the
  zone's stand-ins for a while: Metadata names it, and the client writes to it directly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.protocol.error_codes import ErrorCode
from tests.e2e.test_cluster_failover import broker, fixture, stored
from tests.e2e.test_cluster_zone_attack import (
    SLOW,
    ZONE_A,
    _end_offset,
    _fields,
    _zone_pair,
    led_by_two,
    paused,
)
from tests.e2e.test_cluster_zone_produce import PRODUCE, PRODUCE_VERSION, TOPIC, metadata_leader
from tests.e2e.test_cluster_zone_writes import listed
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until


def test_a_stopped_leader_holds_up_only_the_requests_for_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    settings = {"zone.produce.proxy.enable": "true", **SLOW}
    brokers = [
        broker(tmp_path / f"b{node}", node, url, objects, **settings, **{"broker.rack": rack})
        for node, rack in ((1, "a"), (2, "b"), (3, "c"))
    ]
    for b in brokers:
        b.start()
    one, two, three = brokers
    try:
        wait_until(lambda: listed(one.bootstrap) == [1, 2, 3], 15, "broker 1 lists all three")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 6, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, TOPIC).values()),
            15,
            "each broker claims its share",
        )
        leaders = {p: r["leader"] for p, r in stored(url, TOPIC).items()}
        on_two = min(p for p, node in leaders.items() if node == 2)
        on_three = min(p for p, node in leaders.items() if node == 3)
        for partition, node in ((on_two, 2), (on_three, 3)):
            wait_until(
                lambda p=partition, n=node: metadata_leader(one.bootstrap, p) == n,
                15,
                "leaders known",
            )
        with (
            RawClient(one.bootstrap, client_id=ZONE_A) as waiting,
            RawClient(one.bootstrap, client_id=ZONE_A) as other,
        ):
            with paused(three):
                waiting.send(PRODUCE, PRODUCE_VERSION, **_fields(on_three, b"c"))
                # Past the round's patience, so the stopped leader's round is in flight.
                wait_until(lambda: _round_objects(tmp_path), 5, "the first round written")
                time.sleep(0.5)
                other.sock.settimeout(10)  # well before the 30 s peer timeout
                answer = other.request(PRODUCE, PRODUCE_VERSION, **_fields(on_two, b"b"))
                assert three.process is not None and three.process.poll() is None
                first = answer.responses[0].partition_responses[0]
                assert (first.error_code, first.base_offset) == (ErrorCode.none, 0), first
            late = waiting.receive().responses[0].partition_responses[0]
            assert (late.error_code, late.base_offset) == (ErrorCode.none, 0), late
        assert _end_offset(two.bootstrap, on_two) == 1
        assert _end_offset(three.bootstrap, on_three) == 1
    finally:
        for b in reversed(brokers):
            b.stop()


def test_a_short_timeout_with_acks_1_is_answered_once_appended(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, one, two = _zone_pair(tmp_path, postgres_server)
    try:
        on_two = led_by_two(url, one.bootstrap)
        request = _fields(on_two, b"once", acks=1)
        request["timeout"] = 500
        with RawClient(one.bootstrap, client_id=ZONE_A) as client:
            with paused(two):
                client.send(PRODUCE, PRODUCE_VERSION, **request)
                wait_until(lambda: _round_objects(tmp_path), 5, "the round written")
                time.sleep(1.5)  # past the 500 ms timeout
            answer = client.receive().responses[0].partition_responses[0]
        assert (answer.error_code, answer.base_offset) == (ErrorCode.none, 0), answer
        assert _end_offset(two.bootstrap, on_two) == 1
    finally:
        two.stop()
        one.stop()


def _round_objects(tmp_path: Path) -> list[Path]:
    """The proxy's round objects in the file:// store (deleted once answered)."""
    return [p for p in (tmp_path / "objects").rglob("zone-router/**/*") if p.is_file()]


def test_a_leader_the_proxy_cannot_reach_is_written_directly(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """Broker 2's inter-broker endpoint is out of broker 1's reach (advertised at a
    port nobody listens on) while its database heartbeat shows it live: a zone-a
    producer's records for broker 2's partition are refused once by the proxy, then
    Metadata names broker 2 itself and the producer delivers them there (before, it
    looped on NOT_LEADER_OR_FOLLOWER until its delivery timeout)."""
    url, objects = fixture(tmp_path, postgres_server)
    listeners = {
        "zone.produce.proxy.enable": "true",
        "listeners": "PLAINTEXT://127.0.0.1:0,REPLICATION://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT",
        "inter.broker.listener.name": "REPLICATION",
    }
    unreachable = {"advertised.listeners": "REPLICATION://127.0.0.1:9"}
    one = broker(tmp_path / "one", 1, url, objects, **listeners, **{"broker.rack": "a"})
    two = broker(
        tmp_path / "two", 2, url, objects, **listeners, **unreachable, **{"broker.rack": "b"}
    )
    one.start()
    two.start()
    try:
        on_two = led_by_two(url, one.bootstrap)
        producer = Producer(
            {"bootstrap.servers": one.bootstrap, "client.id": ZONE_A,
             "enable.idempotence": True, "message.timeout.ms": 20_000}
        )  # fmt: skip
        errors: list[Any] = []
        for i in range(10):
            producer.produce(
                TOPIC,
                value=b"%d" % i,
                partition=on_two,
                on_delivery=lambda err, _m: errors.append(err) if err else None,
            )
        assert producer.flush(30) == 0
        assert errors == []
        assert _end_offset(two.bootstrap, on_two) == 10
    finally:
        two.stop()
        one.stop()
