"""The trace's producer link is plain Kafka: against Apache Kafka (KRaft, the harness's
reference broker) a raw Fetch of a record's batch names the producer id and epoch Kafka's
transaction coordinator gave the transactional producer that wrote it, a fresh id for an
idempotent producer and -1 for a plain one, and says why for an offset it cannot read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from contextplane.services.actions.txn_epoch import described_epoch
from contextplane.services.trace.producer import BatchProducers
from harness import kafka_reference

TIMEOUT_S = 60
TOPIC = "crm.accounts"


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[kafka_reference.KafkaHandle]:
    handle = kafka_reference.start(data_dir=tmp_path / "kafka", timeout=120)
    admin = AdminClient({"bootstrap.servers": handle.bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        future.result(TIMEOUT_S)
    yield handle
    handle.stop()


def test_the_producer_of_a_record_from_its_batch_on_apache_kafka(
    kafka: kafka_reference.KafkaHandle,
) -> None:
    config = {"bootstrap.servers": kafka.bootstrap}
    landed: dict[bytes, int] = {}

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        landed[message.key()] = message.offset()

    plain = Producer(config)
    plain.produce(TOPIC, key=b"plain", value=b"{}", on_delivery=delivered)
    plain.flush(TIMEOUT_S)
    writer = Producer(config | {"transactional.id": "crm-writer"})
    writer.init_transactions(TIMEOUT_S)
    writer.begin_transaction()
    for key in (b"t1", b"t2", b"t3"):
        writer.produce(TOPIC, key=key, value=b"{}", on_delivery=delivered)
    writer.commit_transaction(TIMEOUT_S)
    idempotent = Producer(config | {"enable.idempotence": True})
    idempotent.produce(TOPIC, key=b"idem", value=b"{}", on_delivery=delivered)
    idempotent.flush(TIMEOUT_S)
    described = described_epoch(config, "crm-writer", TIMEOUT_S)

    producers = BatchProducers(config)
    try:
        assert producers.producer_of(TOPIC, 0, landed[b"plain"]) == {
            "producer_id": -1,
            "producer_epoch": -1,
            "transactional": False,
            "batch": f"{landed[b'plain']}..{landed[b'plain']}",
        }
        for key in (b"t1", b"t2", b"t3"):  # one batch: the middle record's is its batch's
            found = producers.producer_of(TOPIC, 0, landed[key])
            assert isinstance(found, dict), found
            assert (found["producer_id"], found["producer_epoch"]) == tuple(described)
            assert found["transactional"] is True
        found = producers.producer_of(TOPIC, 0, landed[b"idem"])
        assert isinstance(found, dict), found
        assert found["producer_id"] not in (-1, described.producer_id)
        assert found["transactional"] is False
        # The commit marker sits between t3 and idem: no record there, and none past the end.
        marker = landed[b"t3"] + 1
        assert "holds offset" in str(producers.producer_of(TOPIC, 0, marker))
        assert "OFFSET_OUT_OF_RANGE" in str(producers.producer_of(TOPIC, 0, 1_000))
        assert "UNKNOWN_TOPIC" in str(producers.producer_of("no-such-topic", 0, 0))
    finally:
        producers.close()
