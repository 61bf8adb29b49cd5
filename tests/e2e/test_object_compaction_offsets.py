"""Object compaction changes no answer: ListOffsets (earliest, latest and by timestamp, as
confluent-kafka's offsets_for_times asks) and the records read are the same before and
after eight uploads of four partitions were merged into one range per partition."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.broker import BrokerProcess
from tests.support.wait import wait_until

TOPIC = "compacted-offsets"
PARTITIONS = 4
ROUNDS = 8
PER_ROUND = 20
BASE_TS = 1_700_000_000_000
SETTINGS = {"upload.interval.ms": "20", "object.compaction.enable": "false"}
COMPACTING = {
    "upload.interval.ms": "20",
    "object.compaction.interval.ms": "200",
    "object.compaction.min.age.ms": "0",
}


def timestamp(round_: int, index: int) -> int:
    # Within a round one record goes back in time, so a range's largest timestamp is not
    # its last record's.
    back = 500 if index == PER_ROUND // 2 else 0
    return BASE_TS + round_ * 1_000 + index * 10 - back


def ranges_per_partition(data_dir: Path) -> dict[int, list[tuple[int, int]]]:
    db = sqlite3.connect(f"file:{data_dir / 'metadata.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT p.partition, r.base_offset, r.end_offset FROM ranges r JOIN partitions p"
            " ON p.stream_id = r.stream_id WHERE p.topic = ? ORDER BY p.partition, r.base_offset",
            (TOPIC,),
        ).fetchall()
    finally:
        db.close()
    result: dict[int, list[tuple[int, int]]] = {p: [] for p in range(PARTITIONS)}
    for partition, base, end in rows:
        result[partition].append((base, end))
    return result


def produce_rounds(broker: BrokerProcess, data_dir: Path) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for round_ in range(ROUNDS):
        for partition in range(PARTITIONS):
            for index in range(PER_ROUND):
                producer.produce(
                    TOPIC,
                    value=b"%d-%d-%d" % (partition, round_, index),
                    partition=partition,
                    timestamp=timestamp(round_, index),
                )
        assert producer.flush(10) == 0
        end = (round_ + 1) * PER_ROUND

        def uploaded(end: int = end) -> bool:
            ranges = ranges_per_partition(data_dir)
            return all(ranges[p] and ranges[p][-1][1] == end for p in range(PARTITIONS))

        wait_until(uploaded, 20, f"round {round_} uploaded")


def answers(bootstrap: str) -> tuple[list[tuple[int, int]], dict[int, list[tuple[int, bytes]]]]:
    """(offset, partition) for every probed timestamp, with the watermarks; and every
    partition's records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "times"})
    try:
        probes = [BASE_TS - 1, BASE_TS + ROUNDS * 1_000 + 1]
        probes += [
            timestamp(r, i) + d for r in range(ROUNDS) for i in (0, 9, 10, 19) for d in (-1, 0, 1)
        ]
        found = consumer.offsets_for_times(
            [TopicPartition(TOPIC, p, ts) for p in range(PARTITIONS) for ts in probes], timeout=10
        )
        offsets = [(tp.partition, tp.offset) for tp in found]
        for p in range(PARTITIONS):
            offsets += [consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)]
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        records: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 30
        while any(len(records[p]) < ROUNDS * PER_ROUND for p in records):
            assert time.monotonic() < deadline, "not every record read within 30 s"
            for message in consumer.consume(1000, 0.2):
                assert message.error() is None, message.error()
                records[message.partition()].append((message.offset(), message.value()))
        return offsets, records
    finally:
        consumer.close()


def test_list_offsets_answers_are_the_same_after_compaction(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    broker = BrokerProcess(data_dir, settings=SETTINGS).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS)])[TOPIC].result(15)
        produce_rounds(broker, data_dir)
        assert all(len(r) >= ROUNDS for r in ranges_per_partition(data_dir).values())
        before = answers(broker.bootstrap)
        broker.stop()
        broker.settings = COMPACTING
        broker.start()
        wait_until(
            lambda: all(len(r) == 1 for r in ranges_per_partition(data_dir).values()),
            30,
            "every partition compacted into one range",
        )
        after = answers(broker.bootstrap)
    finally:
        broker.stop()
    assert after[0] == before[0]
    assert after[1] == before[1]
    assert any(offset > 0 for _, offset in before[0]), "the probes found offsets"
