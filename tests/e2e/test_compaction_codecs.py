"""Survivors of a cleaning keep their batch's codec (Kafka's MemoryRecords.filterTo
rewrites with the original compression type): a producer's lz4, snappy, gzip and zstd
batches, partly overwritten, are rewritten in the same codec and a real client
(librdkafka) reads them."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from conformance import wire
from tests.e2e.test_compaction import clean_up_to, cleaning_broker, read_all, round_
from tests.e2e.test_retention import create
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

__all__ = ["cleaning_broker"]  # the fixture

BASE_TS = 1_700_000_000_000
CODECS = ("lz4", "snappy", "gzip", "zstd")


def produce_compressed(
    bootstrap: str, topic: str, codec: str, records: list[tuple[bytes, bytes]]
) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50, "compression.type": codec}
    )
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=0, timestamp=BASE_TS)
    assert producer.flush(10) == 0


@pytest.mark.parametrize("codec", CODECS)
def test_a_rewritten_batch_keeps_its_codec_and_clients_read_it(
    cleaning_broker: InProcessBroker, codec: str
) -> None:
    broker = cleaning_broker
    topic = f"codec-{codec}"
    create(
        broker.bootstrap,
        topic,
        **{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "segment.ms": "1"},
    )
    keys = [b"k%d" % i for i in range(20)]
    # One compressed batch (linger), then an overwrite of half its keys, then the active segment.
    produce_compressed(broker.bootstrap, topic, codec, [(k, b"v1-" + k * 20) for k in keys])
    round_(broker, topic, [])
    round_(broker, topic, [(k, b"v2-" + k, BASE_TS) for k in keys[:10]])
    round_(broker, topic, [(b"z", b"active", BASE_TS)])
    wait_until(lambda: clean_up_to(broker, topic) == 30, 20, "the log cleaned up to 30")

    with RawClient(broker.bootstrap, "codec-check") as client:
        first = wire.decode_batches(wire.fetch_one(client, topic, 0).records)[0]
    assert first.codec == codec and first.crc_ok
    assert [r["offset"] for r in first.records] == list(range(10, 20))
    expected = [(10 + i, keys[10 + i], b"v1-" + keys[10 + i] * 20) for i in range(10)]
    expected += [(20 + i, keys[i], b"v2-" + keys[i]) for i in range(10)] + [(30, b"z", b"active")]
    assert read_all(broker.bootstrap, topic) == expected
