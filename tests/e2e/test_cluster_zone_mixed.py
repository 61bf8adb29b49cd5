"""Zone writes while `zone.produce.proxy.enable` is on for some brokers only (turned on
broker by broker): a broker that a peer's Metadata names as its zone's stand-in serves
the zone's clients with the setting off.

Broker 3 (rack b) leads every partition of a topic (created before the others start);
brokers 1 and 2 are in rack a, the proxy on for broker 1 only. Broker 1's Metadata tells
a zone-a client that broker 1 or broker 2 leads each partition (the rendezvous over rack
a's brokers; the topic's name is chosen so that both are named). A zone-a producer
bootstrapped on broker 1 gets every record acknowledged and a zone-a consumer reads
them back; broker 2 took zone a's records for its partitions and broker 3 none (their
zone counters). Before, broker 2 answered NOT_LEADER_OR_FOLLOWER to the writes broker 1's
Metadata sent it, and the producer, asking Metadata again, wrote them to broker 3 across
zones.
"""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.broker.replica_selector import rendezvous
from tests.e2e.test_cluster_failover import broker, fixture, stored
from tests.e2e.test_cluster_zone_writes import (
    ZONE_A,
    listed,
    write_and_read_as_zone_a,
    zone_bytes,
)
from tests.e2e.test_metrics_endpoint import _metrics_url
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

PARTITIONS = 6
METADATA = 3


def _topic_named_to_both() -> str:
    """A topic name whose partitions' rack-a stand-ins include both brokers 1 and 2."""
    for n in range(100):
        name = f"mixed-{n}"
        chosen = {rendezvous(name, p, [1, 2]) for p in range(PARTITIONS)}
        if chosen == {1, 2}:
            return name
    raise AssertionError("no name splits the partitions")


def _leaders_told(bootstrap: str, topic: str) -> dict[int, int]:
    with RawClient(bootstrap, client_id=ZONE_A) as raw:
        answer = raw.request(METADATA, 12, topics=[{"name": topic}],
                             allow_auto_topic_creation=False,
                             include_topic_authorized_operations=False)  # fmt: skip
    return {p.partition_index: p.leader_id for p in answer.topics[0].partitions}


def test_a_stand_in_with_the_proxy_off_serves_the_zone_a_peer_names_it_for(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    topic = _topic_named_to_both()
    common = {"upload.interval.ms": "200", "http.port": "0"}
    three = broker(tmp_path / "b3", 3, url, objects, **common, **{"broker.rack": "b"}).start()
    brokers = [three]
    try:
        admin = AdminClient({"bootstrap.servers": three.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
        wait_until(
            lambda: all(r["leader"] == 3 for r in stored(url, topic).values()),
            15,
            "broker 3 leads every partition",
        )
        on = {"zone.produce.proxy.enable": "true"}
        one = broker(tmp_path / "b1", 1, url, objects, **common, **on, **{"broker.rack": "a"})
        two = broker(tmp_path / "b2", 2, url, objects, **common, **{"broker.rack": "a"})
        brokers += [one.start(), two.start()]
        wait_until(lambda: listed(one.bootstrap) == [1, 2, 3], 15, "broker 1 lists all three")
        expected = {p: rendezvous(topic, p, [1, 2]) for p in range(PARTITIONS)}
        wait_until(lambda: _leaders_told(one.bootstrap, topic) == expected, 15, "stand-ins")

        sent = {p: [f"p{p}-{i}".encode() for i in range(50)] for p in range(PARTITIONS)}
        write_and_read_as_zone_a(one.bootstrap, topic, sent, "mixed-readers")
        # Broker 2, the proxy off, took zone a's records for the partitions named to it.
        assert zone_bytes(_metrics_url(two), "a", "in") > 0
        assert zone_bytes(_metrics_url(three), "a", "in") == 0
    finally:
        for b in reversed(brokers):
            b.stop()
