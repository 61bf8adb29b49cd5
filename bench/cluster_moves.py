"""Move time against retained size: AlterPartitionReassignments → Metadata names the new
leader and a produce is acknowledged there, with the object store's bytes during the
move (issue #13 item 9, RFC 0004 §6 and §8).

    .venv/bin/python -m bench.cluster_moves [--sizes-mib 100,1024] [--moves 3]
        [--store file|s3] [--tail-mib 4]

Three brokers on one PostgreSQL and one object store (`bench/cluster_setup.py`), every
broker writing its probe line each second (`debug.probe.file`: its object store GETs,
PUTs and their bytes since start) and uploading only when an object fills
(`upload.bytes`, 8 MiB) or a handover flushes (`upload.interval.ms` 10 min), so the tail
of each move is in the source's WAL alone when the move starts; object compaction is
off (its rewrites are no part of a move). Per size, a
one-partition topic is loaded with that many MiB of 1 KiB incompressible values
(acks=all, 1 MB batches) and moved once (not measured: it uploads the load's last partial
object); then `--moves` times, to the next broker in turn: an idempotent producer writes
`--tail-mib` MiB more (under 8 MiB: the tail the leader must upload in the handover),
AlterPartitionReassignments names the target (kafka-python's admin client, sent to the
controller as `kafka-reassign-partitions.sh` sends it), Metadata is polled every 20 ms
until it names the target (`metadata_s`), and one record is produced through the same,
already connected producer until acknowledged (`served_s`, from the request).
The probe lines before the request and after the move (the next second's line) give the
cluster's object store GET and PUT bytes during the move: a move that copies nothing
reads 0 bytes and writes about the tail. `flat` is the ratio of the median move times of
the largest and smallest size (1.0: the retained size costs nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaPartition

from bench.cluster_failover import live
from bench.cluster_setup import Cluster
from tests.support.wait import wait_until

MIB = 1 << 20
VALUE_BYTES = 1024
UPLOAD_INTERVAL_MS = 600_000
COUNTED = ("gets", "get_bytes", "puts", "put_bytes", "compaction_puts", "cleaner_puts")


def store_counts(cluster: Cluster) -> dict[str, int]:
    """The cluster's object store counters: the sum of each broker's latest probe line."""
    total = dict.fromkeys(COUNTED, 0)
    for broker in cluster.brokers.values():
        path = Cluster.probe_path(broker)
        lines = path.read_text().splitlines() if path.exists() else []
        store = json.loads(lines[-1]).get("object_store", {}) if lines else {}
        for key in COUNTED:
            total[key] += int(store.get(key, 0))
    return total


def after_next_probe(cluster: Cluster) -> dict[str, int]:
    """The counters from probe lines written after now (each broker writes one a second)."""
    time.sleep(1.5)
    return store_counts(cluster)


def load(cluster: Cluster, topic: str, mib: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap(),
            "acks": "all",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "none",
        }
    )
    values = [os.urandom(VALUE_BYTES) for _ in range(64)]
    for i in range(mib * MIB // VALUE_BYTES):
        while True:
            try:
                producer.produce(topic, value=values[i % 64], partition=0)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(300) == 0, "records left unacknowledged"


def leader(admin: AdminClient, topic: str) -> int:
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    return int(meta.partitions[0].leader)


def reassign(admin: KafkaAdminClient, topic: str, target: int) -> None:
    """AlterPartitionReassignments to the controller (`kafka-reassign-partitions.sh`'s)."""
    results = admin.alter_partition_reassignments({KafkaPartition(topic, 0): [target]}, 30_000)
    assert all(error is None for error in results.values()), results


def one_move(
    cluster: Cluster, topic: str, producer: Producer, kafka_admin: KafkaAdminClient, tail_mib: int
) -> dict[str, Any]:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
    source = leader(admin, topic)
    nodes = sorted(cluster.brokers)
    target = nodes[(nodes.index(source) + 1) % len(nodes)]
    tail = os.urandom(VALUE_BYTES)
    for _ in range(tail_mib * MIB // VALUE_BYTES):
        producer.produce(topic, value=tail, partition=0)
        producer.poll(0)
    assert producer.flush(60) == 0
    before = after_next_probe(cluster)
    started = time.monotonic()
    reassign(kafka_admin, topic, target)
    wait_until(lambda: leader(admin, topic) == target, 60, "Metadata names the target", 0.02)
    metadata_s = time.monotonic() - started
    acked: list[float] = []
    producer.produce(
        topic,
        value=b"after",
        partition=0,
        on_delivery=lambda e, m: acked.append(time.monotonic()) if e is None else None,
    )
    assert producer.flush(60) == 0 and acked, "the produce after the move failed"
    served_s = acked[0] - started
    after = after_next_probe(cluster)
    delta = {key: after[key] - before[key] for key in COUNTED}
    return {
        "source": source,
        "target": target,
        "metadata_s": round(metadata_s, 3),
        "served_s": round(served_s, 3),
        "tail_bytes": tail_mib * MIB,
        **{f"store_{key}": value for key, value in delta.items()},
    }


def run(root: Path, sizes: list[int], moves: int, store: str, tail_mib: int) -> dict[str, Any]:
    cluster = Cluster(root, store=store, probes=True)
    # Uploads only when an object fills (`upload.bytes`, 8 MiB) or a move flushes: the
    # tail (under 8 MiB) stays in the source's WAL until the handover uploads it.
    # Object compaction off: its rewrites (a GET and a PUT of every pair of objects it
    # merges, over gigabytes after a load) are no part of a move and would be counted in it.
    cluster.settings = {
        "upload.interval.ms": str(UPLOAD_INTERVAL_MS),
        "object.compaction.enable": "false",
    }
    rows: list[dict[str, Any]] = []
    cluster.start()
    try:
        wait_until(lambda: live(cluster.metadata_url) == set(cluster.brokers), 60, "all live")
        kafka_admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap())
        for mib in sizes:
            topic = f"moves-{mib}"
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
            loaded = time.monotonic()
            load(cluster, topic, mib)
            load_s = time.monotonic() - loaded
            producer = Producer(
                {"bootstrap.servers": cluster.bootstrap(), "acks": "all",
                 "enable.idempotence": True, "linger.ms": 5}
            )  # fmt: skip
            # A first move, not measured, uploads the load's last partial object.
            one_move(cluster, topic, producer, kafka_admin, 0)
            for index in range(moves):
                row = {"retained_mib": mib, "move": index, "load_s": round(load_s, 1)}
                row.update(one_move(cluster, topic, producer, kafka_admin, tail_mib))
                print(json.dumps(row), flush=True)
                rows.append(row)
        kafka_admin.close()
    finally:
        cluster.stop()
    medians = {
        mib: statistics.median(r["served_s"] for r in rows if r["retained_mib"] == mib)
        for mib in sizes
    }
    summary: dict[str, Any] = {
        f"served_s_median.{mib}MiB": round(m, 3) for mib, m in medians.items()
    }
    summary.update({
        f"metadata_s_median.{mib}MiB": round(
            statistics.median(r["metadata_s"] for r in rows if r["retained_mib"] == mib), 3
        )
        for mib in sizes
    })  # fmt: skip
    summary["flat"] = round(medians[max(sizes)] / medians[min(sizes)], 2)
    summary["store_get_bytes_max"] = max(r["store_get_bytes"] for r in rows)
    summary["store_put_bytes_median"] = statistics.median(r["store_put_bytes"] for r in rows)
    return {"store": store, "tail_mib": tail_mib, "rows": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_moves")
    parser.add_argument("--sizes-mib", default="100,1024")
    parser.add_argument("--moves", type=int, default=3)
    parser.add_argument("--store", choices=("file", "s3"), default="s3")
    parser.add_argument("--tail-mib", type=int, default=4)
    parser.add_argument("--out", type=Path, help="write the result's JSON here too")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mib.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-moves-") as tmp:
        result = run(Path(tmp), sizes, args.moves, args.store, args.tail_mib)
    print(json.dumps({"summary": result["summary"]}), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
