"""MirrorAppend (contextplane's own API): batches appended at the base offsets they
carry, a gap before one spanned so readers step over it, a batch sent again acknowledged
without a second copy, an overlap refused, and the whole API refused to a principal
without ALTER on the cluster. A real consumer reads the result."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.mirror_append import API_KEY as MIRROR_APPEND
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

API_VERSIONS, CREATE_TOPICS = 18, 19


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("mirror-append") / "broker").start()
    yield running
    running.stop()


def create_topic(client: RawClient) -> str:
    name = f"mirrored-{uuid.uuid4().hex[:8]}"
    created = client.request(
        CREATE_TOPICS,
        7,
        topics=[
            {
                "name": name,
                "num_partitions": 1,
                "replication_factor": 1,
                "assignments": [],
                "configs": [],
            }
        ],
        timeout=5000,
        validate_only=False,
    )
    assert created.topics[0].error_code == ErrorCode.none
    return name


def at(base_offset: int, batch: bytes) -> bytes:
    """`batch` with its base offset set (outside the CRC, as a fetched batch carries it)."""
    return struct.pack(">q", base_offset) + batch[8:]


def mirror(client: RawClient, topic: str, records: bytes) -> Any:
    answer = client.request(
        MIRROR_APPEND,
        0,
        timeout=10_000,
        topics=[{"name": topic, "partitions": [{"index": 0, "records": records}]}],
    )
    return answer.topics[0].partitions[0]


def consumed(bootstrap: str, topic: str, count: int) -> list[tuple[int, bytes | None, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[tuple[int, bytes | None, bytes]] = []
    try:
        for _ in range(200):
            if len(seen) >= count:
                break
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return seen


def test_batches_keep_their_offsets_gaps_and_resends(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        topic = create_topic(client)
        first = at(5, record_batch([b"a", b"b", b"c"], keys=[b"k1", b"k2", b"k3"]))
        second = at(8, record_batch([b"d", b"e"]))
        after_gap = at(20, record_batch([b"f"]))
        # Two batches in one request, then one past a gap of ten offsets.
        both = mirror(client, topic, first + second)
        assert (both.error_code, both.log_end_offset) == (ErrorCode.none, 10)
        gapped = mirror(client, topic, after_gap)
        assert (gapped.error_code, gapped.log_end_offset) == (ErrorCode.none, 21)
        # A resumed mirror sends a batch again: acknowledged, not written twice.
        again = mirror(client, topic, second)
        assert (again.error_code, again.log_end_offset) == (ErrorCode.none, 21)
        overlap = at(9, record_batch([b"x", b"y"]))
        refused = mirror(client, topic, overlap)
        assert refused.error_code == ErrorCode.invalid_record
        assert "ends at 21" in refused.error_message
        unknown = mirror(client, "no-such-topic", first)
        assert unknown.error_code == ErrorCode.unknown_topic_or_partition
        advertised = client.request(
            API_VERSIONS, 3, client_software_name="t", client_software_version="1"
        )
        assert MIRROR_APPEND not in {key.api_key for key in advertised.api_keys}
    assert consumed(broker.bootstrap, topic, 6) == [
        (5, b"k1", b"a"),
        (6, b"k2", b"b"),
        (7, b"k3", b"c"),
        (8, None, b"d"),
        (9, None, b"e"),
        (20, None, b"f"),
    ]


def test_mirrored_batches_and_gaps_outlive_upload_and_restart(tmp_path: Path) -> None:
    """Uploaded to objects (the log cache holds nothing, so reads go there), then read
    after a restart; a resend after the restart is still acknowledged as mirrored."""
    settings = {"upload.interval.ms": "100", "log.cache.bytes": "1"}
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        with RawClient(running.bootstrap) as client:
            topic = create_topic(client)
            first = at(3, record_batch([b"a", b"b"]))
            assert mirror(client, topic, first).log_end_offset == 5
            assert mirror(client, topic, at(9, record_batch([b"c"]))).log_end_offset == 10
        partition = running.broker.storage.partition(topic, 0)  # type: ignore[union-attr]
        wait_until(lambda: partition.object_end_offset == 10, 30, "the upload")
        expected = [(3, None, b"a"), (4, None, b"b"), (9, None, b"c")]
        assert consumed(running.bootstrap, topic, 3) == expected
        running.restart()
        with RawClient(running.bootstrap) as client:
            again = mirror(client, topic, first)
            assert (again.error_code, again.log_end_offset) == (ErrorCode.none, 10)
            after = mirror(client, topic, at(12, record_batch([b"d"])))
            assert (after.error_code, after.log_end_offset) == (ErrorCode.none, 13)
        assert consumed(running.bootstrap, topic, 4) == [*expected, (12, None, b"d")]
    finally:
        running.stop()


def test_batches_the_checks_refuse_are_named(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        topic = create_topic(client)
        corrupt = bytearray(record_batch([b"a"]))
        corrupt[-1] ^= 0xFF  # a record byte, under the CRC
        refused = mirror(client, topic, bytes(corrupt))
        assert (refused.error_code, refused.error_message) == (
            ErrorCode.corrupt_message,
            "record batch CRC mismatch",
        )
        truncated = mirror(client, topic, record_batch([b"a"])[:40])
        assert truncated.error_code == ErrorCode.invalid_record
        internal = mirror(client, "__consumer_offsets", record_batch([b"a"]))
        assert internal.error_code == ErrorCode.invalid_topic_exception
        # Nothing of them was written.
        assert mirror(client, topic, record_batch([b"b"])).log_end_offset == 1


def test_refused_without_alter_on_the_cluster(tmp_path: Path) -> None:
    settings = {
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        with RawClient(running.bootstrap) as client:
            answer = mirror(client, "orders", at(0, record_batch([b"v"])))
        assert answer.error_code == ErrorCode.cluster_authorization_failed
    finally:
        running.stop()
