"""Cross-zone bytes per GiB produced and consumed, on a simulated three-zone cluster on
loopback (RFC 0004 §7, issue #13 items 6 and 9).

    .venv/bin/python -m bench.zone_traffic [--mib 96] [--partitions 6] [--store file|s3]
        [--variants leader,replica] [--keep DIR]

Three brokers (racks a, b, c) on one PostgreSQL and one object store
(`bench/cluster_setup.py`); every client and every inter-broker call goes through the
counting forwarders of `bench/zone_proxy.py`, which count the bytes per (client zone,
broker zone) outside the brokers. One producer per zone (client.id
`contextplane_az=<zone>`, client.rack `<zone>`) writes `--mib`/3 MiB of 1 KiB values,
round-robin over the partitions (acks=all, idempotent, no compression); then one consumer
per zone (the same client.id token and client.rack, as an in-zone fetch needs) reads the
whole topic from offset 0, so 3 × `--mib` are consumed. Each phase's bytes are counted
alone (the counters are reset between them).

Reported per phase: cross-zone bytes of the flow that carries records (Produce requests,
Fetch responses) per GiB of values produced / consumed, the other flows (Metadata,
InitProducerId, ListOffsets, the responses to Produce, the Fetch requests, inter-broker
calls) per GiB, bytes per zone pair, and the expectation from where the leaders are: a
client of zone X sends or reads each partition at its leader, so the cross-zone share is
the mean over zones of the share of partitions led in another zone (2/3 when leaders are
spread evenly). With PreferredReadReplica (a fetch from an in-zone broker) the consumers'
share should fall to ~0; with a proxy leader the producers' should. `--variants` runs
a cluster per variant: `leader` (Kafka's default selector: every fetch at the leader) and
`replica` (`replica.selector.class` Kafka's RackAwareReplicaSelector on every broker, the
consumers read_uncommitted, as a replica serves only those) and `proxy`
(`zone.produce.proxy.enable` on every broker: Metadata names a broker of the client's
zone as every other-zone partition's leader, which hands writes on through the object
store and serves reads from it); the JSON has one result per
variant, with the partitions whose leader moved during each phase (`leaders_moved`: the
expectation is the leaders' at the start). `--keep DIR` runs each variant's cluster under
DIR/<variant> and keeps it (the brokers' logs) instead of a temporary directory.

The object store and PostgreSQL are "in region": not counted (in-region object storage
traffic is not charged by zone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.cluster_setup import ZONES, Cluster
from bench.zone_proxy import by_zone_pair, summarize
from tests.support.wait import wait_until

GIB = 1 << 30
VALUE_BYTES = 1024
TOPIC = "zones"


# Kafka's class name for fetching from a replica in the client's rack (KIP-392); a
# replica serves read_uncommitted consumers only (librdkafka's default is read_committed).
RACK_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
VARIANTS = ("leader", "replica", "proxy")


def client_config(zone: str) -> dict[str, Any]:
    return {"client.id": f"bench,contextplane_az={zone}", "client.rack": zone}


def leaders(bootstrap: str, partitions: int) -> dict[int, int]:
    """partition -> leader's node id, once every partition has one."""
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def led() -> dict[int, int] | None:
        topic = admin.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if topic is None or topic.error is not None or len(topic.partitions) < partitions:
            return None
        found = {p: meta.leader for p, meta in topic.partitions.items()}
        return found if all(n > 0 for n in found.values()) else None

    result: dict[int, int] = wait_until(led, 60, "every partition has a leader")
    return result


def produce(cluster: Cluster, zone: str, count: int, partitions: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap(zone),
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "none",
            **client_config(zone),
        }
    )
    value = os.urandom(VALUE_BYTES)
    for i in range(count):
        while True:
            try:
                producer.produce(TOPIC, value=value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0, "records left unacknowledged"


def consume(cluster: Cluster, zone: str, count: int, partitions: int) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap(zone),
            "group.id": f"bench-{zone}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
            **client_config(zone),
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    read = 0
    deadline = time.monotonic() + 300
    try:
        while read < count and time.monotonic() < deadline:
            for message in consumer.consume(1000, 1):
                if message.error() is None:
                    read += 1
    finally:
        consumer.close()
    return read


def expected_cross_share(cluster: Cluster, led: dict[int, int]) -> float:
    """The mean over client zones of the share of partitions led in another zone."""
    shares = [sum(cluster.rack(n) != zone for n in led.values()) / len(led) for zone in ZONES]
    return sum(shares) / len(shares)


def phase_figures(counts: dict[Any, int], record_flow: str, values: int) -> dict[str, Any]:
    summary = summarize(counts)
    record_key = f"cross_{record_flow}_{'up' if record_flow == 'produce' else 'down'}"
    cross_records = summary.get(record_key, 0)
    cross_all = summary.get("cross_all", 0)
    per_gib = GIB / values
    return {
        "values_bytes": values,
        "cross_record_bytes": cross_records,
        "cross_record_bytes_per_gib": round(cross_records * per_gib),
        "cross_record_share": round(cross_records / values, 4),
        "cross_other_bytes_per_gib": round((cross_all - cross_records) * per_gib),
        "same_zone_bytes_per_gib": round(summary.get("same_all", 0) * per_gib),
        "flows": summary,
        "zone_pairs": by_zone_pair(counts),
    }


def run(root: Path, mib: int, partitions: int, store: str, variant: str) -> dict[str, Any]:
    """One cluster: consumers read at the leader (`leader`, Kafka's default selector), at
    a replica in their zone (`replica`, the rack-aware selector on every broker), or
    clients write and read through a broker of their zone (`proxy`, the zone writes'
    proxy on every broker)."""
    cluster = Cluster(root, store=store, zones=True)
    if variant == "replica":
        cluster.settings = {"replica.selector.class": RACK_SELECTOR}
    elif variant == "proxy":
        cluster.settings = {"zone.produce.proxy.enable": "true"}
    cluster.start()
    try:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap("a"), **client_config("a")})
        wait_until(
            lambda: len(admin.list_topics(timeout=10).brokers) == cluster.size,
            30,
            "every broker listed",
        )
        admin.create_topics([NewTopic(TOPIC, partitions, 1)])[TOPIC].result(30)
        led = leaders(cluster.bootstrap("a"), partitions)
        per_zone = mib * (1 << 20) // VALUE_BYTES // len(ZONES)
        assert cluster.proxy is not None
        cluster.proxy.reset()
        for zone in ZONES:
            produce(cluster, zone, per_zone, partitions)
        produced_counts = cluster.proxy.snapshot()
        # A leader that moved mid-phase makes the expectation (from `led`) wrong: record it.
        led_after_produce = leaders(cluster.bootstrap("a"), partitions)
        cluster.proxy.reset()
        total = per_zone * len(ZONES)
        for zone in ZONES:
            read = consume(cluster, zone, total, partitions)
            assert read == total, f"zone {zone} read {read} of {total}"
        consumed_counts = cluster.proxy.snapshot()
        led_after_consume = leaders(cluster.bootstrap("a"), partitions)
        return {
            "variant": variant,
            "store": store,
            "partitions": partitions,
            "leaders": {str(p): {"node": n, "rack": cluster.rack(n)} for p, n in led.items()},
            "leaders_moved": {
                "produced": {str(p): n for p, n in led_after_produce.items() if n != led[p]},
                "consumed": {str(p): n for p, n in led_after_consume.items() if n != led[p]},
            },
            "expected_cross_share": round(expected_cross_share(cluster, led), 4),
            "produced": phase_figures(produced_counts, "produce", total * VALUE_BYTES),
            "consumed": phase_figures(consumed_counts, "fetch", total * VALUE_BYTES * len(ZONES)),
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.zone_traffic")
    parser.add_argument("--mib", type=int, default=96, help="MiB of values produced")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--store", choices=("file", "s3"), default="file")
    parser.add_argument("--variants", default="leader", help="leader, replica, proxy")
    parser.add_argument("--out", type=Path, help="write the result's JSON here too")
    parser.add_argument("--keep", type=Path, help="run the clusters here and keep their logs")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        if variant not in VARIANTS:
            parser.error(f"--variants: {variant!r} is not one of {', '.join(VARIANTS)}")
        with contextlib.ExitStack() as stack:
            root = (
                args.keep / variant
                if args.keep is not None
                else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-zones-")))
            )
            result[variant] = run(root, args.mib, args.partitions, args.store, variant)
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
