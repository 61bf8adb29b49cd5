"""Records a topic refuses, as real clients see it: keyless records on a compacted topic
and timestamps outside the topic's window fail the whole batch (KIP-467), the records
around them are kept, and message.max.decompression.ratio bounds what a batch may
expand to."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer

from conformance import wire
from conformance.wire import Rec
from contextplane.protocol.decompress import ZSTD
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile import bombs
from tests.hostile.support import consume_values, create_topic, produce
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient


def _deliver(bootstrap: str, topic: str, messages: list[dict[str, object]]) -> list[object]:
    """Produce each message in its own batch; the delivery error code of each (or None)."""
    results: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0})
    for message in messages:
        producer.produce(
            topic, on_delivery=lambda err, _msg: results.append(err and err.code()), **message
        )
        producer.flush(20)
    return results


def test_a_compacted_topic_refuses_keyless_records(hostile_broker: BrokerProcess) -> None:
    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, "compacted", cleanup_policy="compact")
        batch = wire.encode_batch([Rec(b"a", key=b"k"), Rec(b"b"), Rec(b"c", key=b"k")])
        part = wire.produce(client, "compacted", batch)
        assert part.error_code == ErrorCode.invalid_record
        assert [e.batch_index for e in part.record_errors] == [1]
        assert "Compacted topic cannot accept message without key" in part.error_message
    results = _deliver(
        hostile_broker.bootstrap,
        "compacted",
        [{"key": b"k", "value": b"kept"}, {"value": b"refused"}, {"key": b"k", "value": b"too"}],
    )
    assert results == [None, KafkaError.INVALID_RECORD, None]
    assert consume_values(hostile_broker.bootstrap, "compacted", 2) == [b"kept", b"too"]


def test_timestamps_outside_the_topic_window_are_refused(hostile_broker: BrokerProcess) -> None:
    with RawClient(hostile_broker.bootstrap) as client:
        create_topic(client, "windowed", message_timestamp_before_max_ms="60000")
    now = int(time.time() * 1000)
    results = _deliver(
        hostile_broker.bootstrap,
        "windowed",
        [
            {"value": b"now", "timestamp": now},
            {"value": b"an hour old", "timestamp": now - 3_600_000},
            # message.timestamp.after.max.ms: Kafka 4's default allows an hour ahead.
            {"value": b"two hours ahead", "timestamp": now + 7_200_000},
            {"value": b"later", "timestamp": now},
        ],
    )
    assert results == [None, KafkaError.INVALID_TIMESTAMP, KafkaError.INVALID_TIMESTAMP, None]
    assert consume_values(hostile_broker.bootstrap, "windowed", 2) == [b"now", b"later"]


@pytest.fixture(scope="module")
def strict_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data: Path = tmp_path_factory.mktemp("strict") / "broker"
    process = BrokerProcess(data, settings={"message.max.decompression.ratio": "4"}).start()
    yield process
    process.stop()


def test_the_decompression_ratio_is_a_setting(strict_broker: BrokerProcess) -> None:
    with RawClient(strict_broker.bootstrap) as client:
        create_topic(client, "ratio", max_message_bytes="100000")
        # Bound: 4 x 100,000 bytes of records.
        under = bombs.one_huge_record(ZSTD, 390_000)
        over = bombs.one_huge_record(ZSTD, 410_000)
        assert produce(client, "ratio", under)[0] == 0
        assert produce(client, "ratio", over)[0] == ErrorCode.message_too_large
