"""Acknowledgement batches a hostile share consumer sends: out of order, reversed, with
no types, with a type per offset that does not fit the range, with an unknown type, or
a valid batch before an invalid one. Kafka 4.4 checks every batch of a partition before
it touches a record (KafkaApis.validateAcknowledgementBatches) and answers the partition
INVALID_REQUEST; no record changes state, so the member can still acknowledge them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from kio.schema.errors import ErrorCode

from tests.groups.support import Broker, Wire
from tests.groups.test_share_group_wire import _acquired, _fetch

METADATA, CREATE_TOPICS, SHARE_HEARTBEAT, SHARE_ACK = 3, 19, 76, 79
GAP, ACCEPT, RELEASE, REJECT, RENEW = 0, 1, 2, 3, 4
RECORDS = 6
Batch = tuple[int, int, list[int]]
# Each answered INVALID_REQUEST by Kafka, whatever state the records are in.
HOSTILE: dict[str, list[Batch]] = {
    "descending": [(4, 4, [ACCEPT]), (1, 1, [ACCEPT])],
    "overlapping": [(0, 3, [ACCEPT]), (2, 5, [ACCEPT])],
    "reversed": [(3, 1, [ACCEPT])],
    "no types": [(0, 1, [])],
    "types not fitting": [(0, 3, [ACCEPT, ACCEPT])],
    "unknown type": [(0, 0, [7])],
    "negative type": [(0, 0, [-1])],
    "renew in v1": [(0, 0, [RENEW])],
    # The first batch alone would be applied: nothing of a refused request is.
    "valid then descending": [(2, 2, [ACCEPT]), (0, 0, [REJECT])],
    "valid then unknown type": [(0, 0, [ACCEPT]), (1, 1, [9])],
    # Not acquired (beyond what was fetched) before an invalid batch: still a bad request.
    "unacquired then reversed": [(10**12, 10**12, [ACCEPT]), (5, 4, [ACCEPT])],
    "huge range, types not fitting": [(0, 2**62, [ACCEPT, RELEASE])],
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    process = Broker(tmp_path_factory.mktemp("acks") / "broker").start()
    try:
        yield process
    finally:
        process.stop()


def _batches(topic_id: uuid.UUID, batches: list[Batch]) -> list[dict[str, Any]]:
    return [
        {
            "topic_id": topic_id,
            "partitions": [
                {
                    "partition_index": 0,
                    "acknowledgement_batches": [
                        {"first_offset": f, "last_offset": last, "acknowledge_types": types}
                        for f, last, types in batches
                    ],
                }
            ],
        }
    ]


def test_invalid_batches_are_refused_before_any_record_changes(broker: Broker) -> None:
    with Wire(broker.port) as wire:
        created = wire.call(
            CREATE_TOPICS,
            7,
            topics=[{"name": "acked", "num_partitions": 1, "replication_factor": 1}],
            timeout=10_000,
        )
        assert created.topics[0].error_code == ErrorCode.none
        topics = wire.call(METADATA, 12, topics=None, allow_auto_topic_creation=False).topics
        topic_id = next(t.topic_id for t in topics if t.name == "acked")
        beat = wire.call(
            SHARE_HEARTBEAT,
            1,
            group_id="acks",
            member_id="a",
            member_epoch=0,
            subscribed_topic_names=["acked"],
        )
        assert beat.error_code == ErrorCode.none
        # share.auto.offset.reset=latest: the partition starts at the end, then fills.
        assert _fetch(wire, "acks", "a", 0, _batches(topic_id, [])).error_code == ErrorCode.none
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for index in range(RECORDS):
            producer.produce("acked", value=f"job-{index}".encode(), partition=0)
        assert producer.flush(10) == 0
        assert _acquired(_fetch(wire, "acks", "a", 1, [], wait_ms=5_000)) == [(0, RECORDS - 1, 1)]

        epoch = 2
        answers = {}
        for name, batches in HOSTILE.items():
            fields = {"group_id": "acks", "member_id": "a", "share_session_epoch": epoch}
            acked = wire.call(SHARE_ACK, 1, **fields, topics=_batches(topic_id, batches))
            answers[name] = (acked.error_code, acked.responses[0].partitions[0].error_code)
            epoch += 1
        piggy = _fetch(
            wire, "acks", "a", epoch, _batches(topic_id, HOSTILE["valid then descending"])
        )
        answers["piggybacked"] = (
            piggy.error_code,
            piggy.responses[0].partitions[0].acknowledge_error_code,
        )
        refused = (ErrorCode.none, ErrorCode.invalid_request)
        assert answers == {name: refused for name in answers}

        # Every record is still a's, acquired once: one ordered request settles them all.
        settled = wire.call(
            SHARE_ACK,
            1,
            group_id="acks",
            member_id="a",
            share_session_epoch=epoch + 1,
            topics=_batches(
                topic_id, [(0, 1, [ACCEPT]), (2, 3, [RELEASE, REJECT]), (4, 5, [ACCEPT])]
            ),
        )
        assert settled.responses[0].partitions[0].error_code == ErrorCode.none
        # Only the released record comes back, delivered a second time.
        assert _acquired(_fetch(wire, "acks", "a", epoch + 2, [])) == [(2, 2, 2)]
