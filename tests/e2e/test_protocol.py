"""Protocol-level behaviour with a raw client: versions, bad input, idempotence, admin errors.

Each case checks the exact Kafka error code, and that the broker keeps serving (and keeps
earlier acknowledged data) afterwards.
"""

from __future__ import annotations

import struct
import time

import pytest
from kio.schema.errors import ErrorCode

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
API_VERSIONS, CREATE_TOPICS, DELETE_RECORDS, INIT_PRODUCER_ID = 18, 19, 21, 22


def create(client: RawClient, name: str, partitions: int = 1, **configs: str):
    response = client.request(
        CREATE_TOPICS,
        7,
        topics=[
            {
                "name": name,
                "num_partitions": partitions,
                "replication_factor": -1,
                "assignments": [],
                "configs": [{"name": k.replace("_", "."), "value": v} for k, v in configs.items()],
            }
        ],
        timeout=5000,
        validate_only=False,
    )
    return response.topics[0]


def produce(client: RawClient, topic: str, batch: bytes, partition: int = 0, acks: int = -1):
    response = client.request(
        PRODUCE,
        9,
        transactional_id=None,
        acks=acks,
        timeout=5000,
        topic_data=[{"name": topic, "partition_data": [{"index": partition, "records": batch}]}],
    )
    return response.responses[0].partition_responses[0]


def fetch_partitions(
    client: RawClient, topic: str, offsets: dict[int, int], partition_max_bytes: int = 1 << 20
):
    response = client.request(
        FETCH,
        12,
        replica_id=-1,
        max_wait=0,
        min_bytes=0,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": p,
                        "current_leader_epoch": -1,
                        "fetch_offset": o,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": partition_max_bytes,
                    }
                    for p, o in offsets.items()
                ],
            }
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    return response.responses[0].partitions


def fetch(client: RawClient, topic: str, offset: int, partition: int = 0):
    return fetch_partitions(client, topic, {partition: offset})[0]


@pytest.fixture
def client(shared_broker: InProcessBroker):
    with RawClient(shared_broker.bootstrap) as raw:
        yield raw


def test_api_versions_advertises_only_implemented_apis(client: RawClient) -> None:
    response = client.request(
        API_VERSIONS, 3, client_software_name="t", client_software_version="1"
    )
    keys = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert response.error_code == ErrorCode.none
    assert keys[PRODUCE] == (3, 13) and keys[FETCH][0] == 4
    # AddPartitionsToTxn up to v5 (v4+ is the KIP-890 broker form); transactions v2's
    # EndTxn 5; TxnOffsetCommit 6 (topic ids, KIP-1319); WriteTxnMarkers and the
    # transaction admin APIs at Kafka 4.4's versions.
    assert keys[24] == keys[26] == (0, 5) and keys[28] == (0, 6) and keys[27] == (1, 2)
    assert keys[61] == keys[65] == (0, 0) and keys[66] == (0, 2)
    # The ACL APIs, at the versions Kafka 4.4 keeps (KIP-896 removed v0).
    assert keys[29] == keys[30] == keys[31] == (1, 3)


def test_api_versions_finalizes_transaction_version_2_as_kafka_4(client: RawClient) -> None:
    """Clients choose transactions v2 (KIP-890) from the finalized transaction.version;
    the supported range (0-2) is listed from ApiVersions v4 only, as Kafka 4.4 does
    (below v4 it leaves out features whose minimum is 0)."""
    for version, supported in ((3, []), (4, [(0, 2)])):
        response = client.request(
            API_VERSIONS, version, client_software_name="t", client_software_version="1"
        )
        assert [
            (f.min_version, f.max_version)
            for f in response.supported_features
            if f.name == "transaction.version"
        ] == supported
        assert [
            (f.min_version_level, f.max_version_level)
            for f in response.finalized_features
            if f.name == "transaction.version"
        ] == [(2, 2)]


def test_api_versions_answers_each_version_alike_with_its_own_correlation_id(
    client: RawClient,
) -> None:
    """The response is encoded once per version and reused: each request still gets its
    own correlation id, and every version lists the same APIs."""
    listings = set()
    for version in (0, 1, 2, 3, 4, 3, 0):
        fields = {"client_software_name": "t", "client_software_version": "1"}
        response = client.request(API_VERSIONS, version, **(fields if version >= 3 else {}))
        assert response.error_code == ErrorCode.none
        listings.add(tuple((k.api_key, k.min_version, k.max_version) for k in response.api_keys))
    assert len(listings) == 1


def test_unknown_api_versions_version_gets_v0_error_with_list(client: RawClient) -> None:
    frame = struct.pack(">hhih", API_VERSIONS, 99, 7, 1) + b"x"
    client.send_raw(struct.pack(">i", len(frame)) + frame)
    body = client.read_frame()
    correlation, error = struct.unpack_from(">ih", body, 0)
    assert (correlation, error) == (7, ErrorCode.unsupported_version.value)


def test_unknown_api_key_closes_connection(client: RawClient) -> None:
    frame = struct.pack(">hhih", 9999, 0, 1, 0)
    client.send_raw(struct.pack(">i", len(frame)) + frame)
    assert client.closed_by_broker()


def test_truncated_frame_closes_connection_and_broker_keeps_serving(
    shared_broker: InProcessBroker, client: RawClient
) -> None:
    frame = struct.pack(">hhih", METADATA, 12, 1, 0) + b"\x00\x05"  # body cut short
    client.send_raw(struct.pack(">i", len(frame)) + frame)
    assert client.closed_by_broker()
    with RawClient(shared_broker.bootstrap) as fresh:
        response = fresh.request(API_VERSIONS, 0)
        assert response.error_code == ErrorCode.none


def test_oversized_frame_closes_connection(client: RawClient) -> None:
    client.send_raw(struct.pack(">i", 200 * 1024 * 1024))  # over socket.request.max.bytes
    assert client.closed_by_broker()


def test_bad_crc_magic_and_size_get_kafka_codes_and_lose_nothing(client: RawClient) -> None:
    assert create(client, "badinput").error_code == ErrorCode.none
    good = record_batch([b"kept"])
    assert produce(client, "badinput", good).error_code == ErrorCode.none
    corrupt = bytearray(good)
    corrupt[-1] ^= 0xFF
    assert produce(client, "badinput", bytes(corrupt)).error_code == ErrorCode.corrupt_message
    bad_magic = bytearray(good)
    bad_magic[16] = 7
    assert produce(client, "badinput", bytes(bad_magic)).error_code == ErrorCode.corrupt_message
    legacy = bytearray(good)
    legacy[16] = 1
    assert produce(client, "badinput", bytes(legacy)).error_code == ErrorCode.invalid_record
    two = produce(client, "badinput", good + good)
    assert two.error_code == ErrorCode.invalid_record  # one batch per partition (v3+)
    truncated = good[:40]
    assert produce(client, "badinput", truncated).error_code == ErrorCode.invalid_record
    huge = record_batch([b"x" * (1_100_000)])
    assert produce(client, "badinput", huge).error_code == ErrorCode.message_too_large
    assert produce(client, "no-such-topic", good).error_code == (
        ErrorCode.unknown_topic_or_partition
    )
    assert produce(client, "badinput", good, partition=5).error_code == (
        ErrorCode.unknown_topic_or_partition
    )
    assert produce(client, "badinput", good, acks=2).error_code == ErrorCode.invalid_required_acks
    result = fetch(client, "badinput", 0)
    assert result.error_code == ErrorCode.none and result.high_watermark == 1
    assert b"kept" in result.records


def test_fetch_out_of_range_and_unknown_topic(client: RawClient) -> None:
    create(client, "ranges")
    produce(client, "ranges", record_batch([b"a", b"b"]))
    assert fetch(client, "ranges", 3).error_code == ErrorCode.offset_out_of_range
    assert fetch(client, "ranges", 2).records in (b"", None)
    assert fetch(client, "nope", 0).error_code == ErrorCode.unknown_topic_or_partition


def test_invalid_topic_names_and_partition_counts(client: RawClient) -> None:
    assert create(client, "bad name!").error_code == ErrorCode.invalid_topic_exception
    assert create(client, "x" * 250).error_code == ErrorCode.invalid_topic_exception
    assert create(client, "zero", 0).error_code == ErrorCode.invalid_partitions
    assert create(client, "dupe").error_code == ErrorCode.none
    assert create(client, "dupe").error_code == ErrorCode.topic_already_exists
    assert (
        create(client, "cfg", 1, **{"retention.ms": "abc"}).error_code == ErrorCode.invalid_config
    )
    assert (
        create(client, "cfg", 1, **{"no.such.config": "1"}).error_code == ErrorCode.invalid_config
    )


def test_idempotent_retry_is_deduplicated_gap_rejected_old_epoch_fenced(client: RawClient) -> None:
    create(client, "idem")
    pid = client.request(
        INIT_PRODUCER_ID,
        4,
        transactional_id=None,
        transaction_timeout=60000,
        producer_id=-1,
        producer_epoch=-1,
    )
    assert pid.error_code == ErrorCode.none
    producer = {"producer_id": pid.producer_id, "producer_epoch": pid.producer_epoch}
    first = record_batch([b"a", b"b"], base_sequence=0, **producer)
    assert produce(client, "idem", first).base_offset == 0
    assert (
        produce(client, "idem", record_batch([b"c"], base_sequence=2, **producer)).base_offset == 2
    )
    retried = produce(client, "idem", first)  # a retry of an already written batch
    assert (retried.error_code, retried.base_offset) == (ErrorCode.none, 0)
    gap = produce(client, "idem", record_batch([b"d"], base_sequence=9, **producer))
    assert gap.error_code == ErrorCode.out_of_order_sequence_number
    newer = {"producer_id": pid.producer_id, "producer_epoch": pid.producer_epoch + 1}
    assert produce(client, "idem", record_batch([b"e"], base_sequence=0, **newer)).base_offset == 3
    stale = produce(client, "idem", record_batch([b"f"], base_sequence=3, **producer))
    assert stale.error_code == ErrorCode.invalid_producer_epoch
    assert fetch(client, "idem", 0).high_watermark == 4


def test_list_offsets_by_time_and_delete_records(client: RawClient) -> None:
    create(client, "times")
    for base in (1000, 2000, 3000):
        produce(client, "times", record_batch([b"x", b"y"], timestamp_ms=base))

    def lookup(timestamp: int):
        response = client.request(
            LIST_OFFSETS,
            7,
            replica_id=-1,
            isolation_level=0,
            topics=[
                {
                    "name": "times",
                    "partitions": [
                        {"partition_index": 0, "current_leader_epoch": -1, "timestamp": timestamp}
                    ],
                }
            ],
        )
        entry = response.topics[0].partitions[0]
        return entry.offset, entry.timestamp

    assert lookup(-2)[0] == 0
    assert lookup(-1)[0] == 6
    assert lookup(2001) == (3, 2001)
    assert lookup(2500) == (4, 3000)
    assert lookup(-3) == (5, 3001)
    assert lookup(9999) == (-1, -1)
    response = client.request(
        DELETE_RECORDS,
        2,
        timeout=5000,
        topics=[{"name": "times", "partitions": [{"partition_index": 0, "offset": 3}]}],
    )
    assert response.topics[0].partitions[0].low_watermark == 3
    assert lookup(-2)[0] == 3
    assert fetch(client, "times", 1).error_code == ErrorCode.offset_out_of_range


def test_missing_object_fails_only_its_partition(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broker = InProcessBroker(
        tmp_path / "b", settings={"upload.interval.ms": "50", "log.cache.bytes": "1"}
    ).start()
    try:
        objects = broker.data_dir / "objects"
        with RawClient(broker.bootstrap) as raw:
            create(raw, "split", 2)
            produce(raw, "split", record_batch([b"first"]), partition=0)
            first = wait_until(lambda: set(objects.rglob("*.obj")), 10, "the first upload")
            produce(raw, "split", record_batch([b"second"]), partition=1)
            wait_until(lambda: set(objects.rglob("*.obj")) != first, 10, "the second upload")
        broker.restart()  # empty caches: reads must go to the objects
        for path in first:
            path.unlink()
        with RawClient(broker.bootstrap) as raw:
            assert fetch(raw, "split", 0, partition=0).error_code == ErrorCode.kafka_storage_error
            healthy = fetch(raw, "split", 0, partition=1)
            assert healthy.error_code == ErrorCode.none and b"second" in healthy.records
    finally:
        broker.stop()


def _compressed_batch(codec: int, payload: bytes) -> bytes:
    """A batch whose attributes name `codec` but whose payload is `payload`, CRC valid."""
    import crc32c

    plain = record_batch([b"x"])
    after_crc = bytearray(plain[21:61]) + payload
    struct.pack_into(">h", after_crc, 0, codec)
    crc = crc32c.crc32c(bytes(after_crc))
    return struct.pack(">qiibI", 0, 9 + len(after_crc), -1, 2, crc) + bytes(after_crc)


def test_unreadable_compressed_payload_is_rejected(client: RawClient) -> None:
    create(client, "badzip")
    for codec in (1, 4):  # gzip, zstd
        response = produce(client, "badzip", _compressed_batch(codec, b"not compressed at all"))
        assert response.error_code == ErrorCode.unknown_server_error
    assert fetch(client, "badzip", 0).high_watermark == 0


def test_first_batch_of_an_unknown_producer_is_accepted_at_any_sequence(
    client: RawClient,
) -> None:
    create(client, "lateproducer")
    batch = record_batch([b"a"], producer_id=999_999, producer_epoch=0, base_sequence=7)
    assert produce(client, "lateproducer", batch).error_code == ErrorCode.none
    gap = record_batch([b"b"], producer_id=999_999, producer_epoch=0, base_sequence=9)
    assert produce(client, "lateproducer", gap).error_code == (
        ErrorCode.out_of_order_sequence_number
    )


def test_rejected_acks_zero_produce_closes_the_connection(client: RawClient) -> None:
    body = client.frame(
        PRODUCE,
        9,
        build(
            request_schema(PRODUCE, 9),
            transactional_id=None,
            acks=0,
            timeout=5000,
            topic_data=[
                {
                    "name": "no-such-topic-acks0",
                    "partition_data": [{"index": 0, "records": record_batch([b"x"])}],
                }
            ],
        ),
    )
    client.send_raw(body)
    assert client.closed_by_broker()


def test_only_the_first_partition_may_exceed_fetch_limits(client: RawClient) -> None:
    create(client, "kip74", 2)
    for partition in (0, 1):
        produce(client, "kip74", record_batch([b"x" * 100]), partition=partition)
    first, second = fetch_partitions(client, "kip74", {0: 0, 1: 0}, partition_max_bytes=1)
    assert len(first.records or b"") > 100 and not second.records


def test_log_append_time_topic_stamps_broker_time(client: RawClient) -> None:
    created = create(client, "appendtime", 1, **{"message.timestamp.type": "LogAppendTime"})
    assert created.error_code == ErrorCode.none
    before = int(time.time() * 1000)
    response = produce(client, "appendtime", record_batch([b"a", b"b"], timestamp_ms=1000))
    assert response.error_code == ErrorCode.none
    stamped = int(response.log_append_time.timestamp() * 1000)
    assert before - 1000 <= stamped <= int(time.time() * 1000) + 1000
    records = fetch(client, "appendtime", 0).records
    attributes, max_timestamp = struct.unpack_from(">hxxxxxxxxxxxxq", records, 21)
    assert attributes & 0x08 and max_timestamp == stamped


def test_duplicate_topic_in_one_create_request_gets_one_answer(client: RawClient) -> None:
    response = client.request(
        CREATE_TOPICS,
        7,
        topics=[
            {
                "name": "twice-in-one",
                "num_partitions": 1,
                "replication_factor": -1,
                "assignments": [],
                "configs": [],
            }
        ]
        * 2,
        timeout=5000,
        validate_only=False,
    )
    assert [(t.name, t.error_code) for t in response.topics] == [
        ("twice-in-one", ErrorCode.invalid_request)
    ]


def test_a_topic_config_change_applies_to_the_next_produce(
    shared_broker: InProcessBroker, client: RawClient
) -> None:
    """A partition's record policy is built once per config texts: a change must reach
    the very next batch, and a change back must too."""
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
    )

    assert create(client, "policychange", 1).error_code == ErrorCode.none
    old_batch = record_batch([b"a"], timestamp_ms=1000)  # 1970: any window refuses it
    admin = AdminClient({"bootstrap.servers": shared_broker.bootstrap})

    def set_config(name: str, value: str) -> None:
        op = AlterConfigOpType.SET
        entry = ConfigEntry(name, value, incremental_operation=op)
        resource = ConfigResource(ConfigResource.Type.TOPIC, "policychange")
        resource.add_incremental_config(entry)
        admin.incremental_alter_configs([resource])[resource].result(10)

    assert produce(client, "policychange", old_batch).error_code == ErrorCode.none
    set_config("message.timestamp.before.max.ms", "3600000")
    refused = produce(client, "policychange", old_batch)
    assert refused.error_code == ErrorCode.invalid_timestamp
    set_config("message.timestamp.type", "LogAppendTime")
    stamped = produce(client, "policychange", old_batch)
    assert stamped.error_code == ErrorCode.none and stamped.log_append_time is not None
    set_config("message.timestamp.type", "CreateTime")
    assert produce(client, "policychange", old_batch).error_code == ErrorCode.invalid_timestamp
    set_config("message.timestamp.before.max.ms", str(2**63 - 1))
    accepted = produce(client, "policychange", old_batch)
    assert accepted.error_code == ErrorCode.none and accepted.log_append_time is None
