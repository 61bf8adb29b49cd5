"""Zone writes while `zone.produce.proxy.enable` is on for some brokers only (a rollout,
broker by broker): a broker with the proxy on names as stand-ins only brokers whose
registration had it on too (the registry's `zone_proxy`, migration 0020).

Broker 3 (rack b) leads every partition of two topics (created before the others
start); brokers 1 and 2 are in rack a, the proxy on for broker 1 only. Broker 1's
Metadata tells a zone-a client that broker 1 leads every partition; a zone-a producer
bootstrapped on broker 1 gets every record acknowledged and a zone-a consumer reads them
back, broker 1 taking all of zone a's records and brokers 2 and 3 none (their zone
counters). Before, broker 1 named broker 2 for some partitions (the rendezvous over rack
a's brokers; the topics' names are chosen so that both are named), broker 2 answered
NOT_LEADER_OR_FOLLOWER, and the producer, asking Metadata again, wrote them to broker 3
across zones. Then broker 2 restarts with the proxy on: broker 1 names it for its share
of the second topic, whose records it takes.
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


def _topics_named_to_both(count: int) -> list[str]:
    """Topic names whose partitions' rack-a stand-ins would include both brokers 1 and 2."""
    names = [f"mixed-{n}" for n in range(200)]
    both = [n for n in names if {rendezvous(n, p, [1, 2]) for p in range(PARTITIONS)} == {1, 2}]
    assert len(both) >= count, "too few names split the partitions"
    return both[:count]


def _leaders_told(bootstrap: str, topic: str) -> dict[int, int]:
    with RawClient(bootstrap, client_id=ZONE_A) as raw:
        answer = raw.request(METADATA, 12, topics=[{"name": topic}],
                             allow_auto_topic_creation=False,
                             include_topic_authorized_operations=False)  # fmt: skip
    return {p.partition_index: p.leader_id for p in answer.topics[0].partitions}


def test_only_brokers_with_the_proxy_on_are_named_stand_ins(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    first, second = _topics_named_to_both(2)
    common = {"upload.interval.ms": "200", "http.port": "0"}
    on = {"zone.produce.proxy.enable": "true"}
    three = broker(tmp_path / "b3", 3, url, objects, **common, **{"broker.rack": "b"}).start()
    brokers = [three]
    try:
        admin = AdminClient({"bootstrap.servers": three.bootstrap})
        for topic in (first, second):
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
            wait_until(
                lambda topic=topic: all(r["leader"] == 3 for r in stored(url, topic).values()),
                15,
                "broker 3 leads every partition",
            )
        one = broker(tmp_path / "b1", 1, url, objects, **common, **on, **{"broker.rack": "a"})
        two = broker(tmp_path / "b2", 2, url, objects, **common, **{"broker.rack": "a"})
        brokers += [one.start(), two.start()]
        wait_until(lambda: listed(one.bootstrap) == [1, 2, 3], 15, "broker 1 lists all three")
        only_one = dict.fromkeys(range(PARTITIONS), 1)
        wait_until(lambda: _leaders_told(one.bootstrap, first) == only_one, 15, "stand-ins")

        sent = {p: [f"p{p}-{i}".encode() for i in range(50)] for p in range(PARTITIONS)}
        write_and_read_as_zone_a(one.bootstrap, first, sent, "mixed-readers")
        assert zone_bytes(_metrics_url(one), "a", "in") > 0
        assert zone_bytes(_metrics_url(two), "a", "in") == 0
        assert zone_bytes(_metrics_url(three), "a", "in") == 0

        # The rollout reaches broker 2: named for its share once it registers with it on.
        two.stop()
        brokers.remove(two)
        two = broker(tmp_path / "b2", 2, url, objects, **common, **on, **{"broker.rack": "a"})
        brokers.append(two.start())
        split = {p: rendezvous(second, p, [1, 2]) for p in range(PARTITIONS)}
        wait_until(lambda: _leaders_told(one.bootstrap, second) == split, 20, "both named")
        # Broker 2's own view too: until it lists broker 1 and its own registration, it
        # may answer its share NOT_LEADER_OR_FOLLOWER and the client write elsewhere.
        wait_until(lambda: _leaders_told(two.bootstrap, second) == split, 20, "2 agrees")
        write_and_read_as_zone_a(one.bootstrap, second, sent, "mixed-readers-2")
        assert zone_bytes(_metrics_url(two, start=2), "a", "in") > 0
        assert zone_bytes(_metrics_url(three), "a", "in") == 0
    finally:
        for b in reversed(brokers):
            b.stop()
