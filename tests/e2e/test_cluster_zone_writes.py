"""Zone writes with real clients (RFC 0004 §7, `zone.produce.proxy.enable`): three brokers
in racks a, b and c on one PostgreSQL and one file:// store, the proxy on.

An idempotent confluent-kafka producer and a consumer of zone a (their client.id token),
bootstrapped on the rack-a broker, write and read a topic whose partitions all three
brokers lead: Metadata names the rack-a broker as every partition's leader (at the real
leaders' epochs), every record is acknowledged and read back once, in order, and the
brokers of racks b and c receive and send no record byte from or to a client of zone a
(their zone counters), while the rack-a broker counts them all. A transactional producer
of zone a commits one transaction and aborts one over every partition through the same
broker; a read_committed consumer reads exactly the committed records.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.test_cluster_failover import broker, fixture, stored
from tests.e2e.test_cluster_read_replica import _metrics_url
from tests.e2e.test_metrics_endpoint import _scrape
from tests.support.postgres import PostgresServer
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

TOPIC = "zoned-writes"
PARTITIONS = 6
ZONE_A = "app,contextplane_az=a"
DESCRIBE_CLUSTER, METADATA = 60, 3


def zone_bytes(metrics_url: str, zone: str, direction: str) -> float:
    _, samples = _scrape(metrics_url)
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "contextplane_zone_record_bytes_total"
        and dict(labels).get("direction") == direction
        and dict(labels).get("client_zone") == zone
    )


def listed(bootstrap: str) -> list[int]:
    with RawClient(bootstrap) as raw:
        cluster = raw.request(DESCRIBE_CLUSTER, 1, include_cluster_authorized_operations=False)
    return sorted(b.broker_id for b in cluster.brokers)


def leaders_told(bootstrap: str, client_id: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, epoch) as Metadata tells a client with this client id."""
    with RawClient(bootstrap, client_id=client_id) as raw:
        answer = raw.request(METADATA, 12, topics=[{"name": TOPIC}],
                             allow_auto_topic_creation=False,
                             include_topic_authorized_operations=False)  # fmt: skip
    return {p.partition_index: (p.leader_id, p.leader_epoch) for p in answer.topics[0].partitions}


def write_and_read_as_zone_a(
    bootstrap: str, topic: str, sent: dict[int, list[bytes]], group: str
) -> None:
    """An idempotent producer of zone a writes `sent` (partition -> values, one round of
    all partitions at a time), every record acknowledged; a consumer of zone a in
    `group` reads exactly them back, in order."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "client.id": ZONE_A, "enable.idempotence": True,
         "linger.ms": 5, "message.timeout.ms": 60_000}
    )  # fmt: skip
    errors: list[Any] = []
    for i in range(max(map(len, sent.values()))):
        for p, values in sent.items():
            if i < len(values):
                producer.produce(
                    topic,
                    value=values[i],
                    partition=p,
                    on_delivery=lambda err, _m: errors.append(err) if err else None,
                )
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "client.id": ZONE_A, "client.rack": "a",
         "group.id": group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "fetch.wait.max.ms": 100}
    )  # fmt: skip
    reader.subscribe([topic])
    got: dict[int, list[bytes]] = {p: [] for p in sent}
    expected = sum(map(len, sent.values()))
    deadline = time.monotonic() + 60
    try:
        while sum(map(len, got.values())) < expected and time.monotonic() < deadline:
            message = reader.poll(0.5)
            if message is not None and message.error() is None:
                got[message.partition()].append(message.value())
    finally:
        reader.close()
    assert got == sent


def test_a_zone_a_client_writes_and_reads_every_partition_through_the_rack_a_broker(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url, objects = fixture(tmp_path, postgres_server)
    settings = {"zone.produce.proxy.enable": "true", "upload.interval.ms": "200", "http.port": "0"}
    brokers = [
        broker(tmp_path / f"b{node}", node, url, objects, **settings, **{"broker.rack": rack})
        for node, rack in ((1, "a"), (2, "b"), (3, "c"))
    ]
    for b in brokers:
        b.start()
    one = brokers[0]
    try:
        wait_until(lambda: listed(one.bootstrap) == [1, 2, 3], 15, "broker 1 lists all three")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(30)
        wait_until(
            lambda: all(r["leader"] == r["target"] != -1 for r in stored(url, TOPIC).values()),
            15,
            "each broker claims its share",
        )
        rows = stored(url, TOPIC)
        assert {r["leader"] for r in rows.values()} == {1, 2, 3}
        real = {p: (r["leader"], r["epoch"]) for p, r in rows.items()}
        wait_until(lambda: leaders_told(one.bootstrap, "no-zone") == real, 15, "leaders known")
        # A client of zone a is told broker 1 leads every partition, at the real epochs.
        told = leaders_told(one.bootstrap, ZONE_A)
        assert told == {p: (1, epoch) for p, (_, epoch) in real.items()}

        sent = {p: [f"p{p}-{i}".encode() * 10 for i in range(100)] for p in range(PARTITIONS)}
        write_and_read_as_zone_a(one.bootstrap, TOPIC, sent, "zone-a-readers")

        # A transaction committed and one aborted over every partition, through broker 1:
        # a read_committed consumer reads exactly the committed records after the others.
        transactional = Producer(
            {"bootstrap.servers": one.bootstrap, "client.id": ZONE_A,
             "transactional.id": "zone-a-txn", "linger.ms": 5}
        )  # fmt: skip
        transactional.init_transactions(60)
        for outcome in ("committed", "aborted"):
            transactional.begin_transaction()
            for p in range(PARTITIONS):
                transactional.produce(TOPIC, value=f"{outcome}-{p}".encode(), partition=p)
            if outcome == "committed":
                transactional.commit_transaction(60)
            else:
                transactional.abort_transaction(60)
        committed = Consumer(
            {"bootstrap.servers": one.bootstrap, "client.id": ZONE_A, "client.rack": "a",
             "group.id": "zone-a-committed", "auto.offset.reset": "earliest",
             "isolation.level": "read_committed", "enable.auto.commit": False,
             "fetch.wait.max.ms": 100}
        )  # fmt: skip
        committed.subscribe([TOPIC])
        tails: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and any(len(t) < 101 for t in tails.values()):
                message = committed.poll(0.5)
                if message is not None and message.error() is None:
                    tails[message.partition()].append(message.value())
            time.sleep(1)  # anything past the committed records would come now
            while (message := committed.poll(0.5)) is not None:
                if message.error() is None:
                    tails[message.partition()].append(message.value())
        finally:
            committed.close()
        assert tails == {p: [*sent[p], f"committed-{p}".encode()] for p in range(PARTITIONS)}

        # No record byte of zone a's clients reached or left the brokers of b and c.
        metrics = [_metrics_url(b) for b in brokers]
        record_bytes = sum(len(v) for values in sent.values() for v in values)
        assert zone_bytes(metrics[0], "a", "in") >= record_bytes
        assert zone_bytes(metrics[0], "a", "out") >= record_bytes
        for other in metrics[1:]:
            assert zone_bytes(other, "a", "in") == 0
            assert zone_bytes(other, "a", "out") == 0
    finally:
        for b in reversed(brokers):
            b.stop()
