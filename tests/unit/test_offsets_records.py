"""The `__consumer_offsets` encoder against records Apache Kafka 4.4 wrote.

The golden records were read from a Kafka 4.4 broker's `__consumer_offsets` after a
confluent-kafka consumer (client id `cap-client`, group `cap-group`) consumed
`cap-topic` (2 partitions) and committed offset 2 of each partition, partition 0 with
metadata "meta" (which librdkafka sends with its C string's terminating NUL).
"""

from __future__ import annotations

import uuid

import crc32c
import pytest

from contextplane.protocol.offsets_records import (
    GroupMetadata,
    MemberMetadata,
    decode_group_metadata_value,
    decode_key,
    decode_offset_commit_value,
    encode_batch,
    group_metadata_key,
    group_metadata_value,
    java_string_hash,
    offset_commit_key,
    offset_commit_value,
    partition_for,
)
from contextplane.protocol.records import split_batches

KAFKA_TOPIC_ID = uuid.UUID("ee76a644-17b5-455e-ab8e-bd29852640a2")
KAFKA_COMMIT_KEY_P0 = bytes.fromhex("000100096361702d67726f757000096361702d746f70696300000000")
KAFKA_COMMIT_VALUE_P0 = bytes.fromhex(
    "00040000000000000002ffffffff066d65746100000001a22865fe85010010ee76a64417b5455eab8ebd29852640a2"
)
KAFKA_COMMIT_VALUE_P1 = bytes.fromhex(
    "00040000000000000002ffffffff01000001a22865fe85010010ee76a64417b5455eab8ebd29852640a2"
)
KAFKA_COMMIT_MS = 0x1A22865FE85
KAFKA_GROUP_KEY = bytes.fromhex("000200096361702d67726f7570")
KAFKA_GROUP_VALUE = bytes.fromhex(
    "00030008636f6e73756d657200000001000572616e6765002f6361702d636c69656e742d3465373165356336"
    "2d356661632d343833332d613462342d316566626432323331316365000001a22865fc0000000001002f6361"
    "702d636c69656e742d34653731653563362d356661632d343833332d613462342d3165666264323233313163"
    "65ffff000a6361702d636c69656e74000a2f3132372e302e302e31000493e00000afc80000001f0003000000"
    "0100096361702d746f7069630000000000000000ffffffff00000000002100000000000100096361702d746f"
    "70696300000002000000000000000100000000"
)


def test_java_string_hash_matches_java() -> None:
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("") == 0
    # A character outside the BMP hashes as its two UTF-16 surrogates.
    assert java_string_hash("\U0001f600") == 31 * 0xD83D + 0xDE00
    assert java_string_hash("polygenelubricants") == -(2**31)


def test_partition_is_kafkas_utils_abs_of_the_hash() -> None:
    # Utils.abs(Integer.MIN_VALUE) is 0, where Math.abs would stay negative.
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("cap-group", 50) == (java_string_hash("cap-group") & 0x7FFFFFFF) % 50


def test_offset_commit_record_is_kafkas_bytes() -> None:
    assert offset_commit_key("cap-group", "cap-topic", 0) == KAFKA_COMMIT_KEY_P0
    value = offset_commit_value(2, -1, "meta\x00", KAFKA_COMMIT_MS, KAFKA_TOPIC_ID.bytes)
    assert value == KAFKA_COMMIT_VALUE_P0
    assert offset_commit_value(2, -1, "", KAFKA_COMMIT_MS, KAFKA_TOPIC_ID.bytes) == (
        KAFKA_COMMIT_VALUE_P1
    )
    decoded = decode_offset_commit_value(KAFKA_COMMIT_VALUE_P0)
    assert (decoded.offset, decoded.metadata, decoded.topic_id) == (2, "meta\x00", KAFKA_TOPIC_ID)
    assert decode_key(KAFKA_COMMIT_KEY_P0) == (1, ("cap-group", "cap-topic", 0))


def test_group_metadata_record_decodes_kafkas_bytes_and_encodes_them_again() -> None:
    assert decode_key(KAFKA_GROUP_KEY) == (2, ("cap-group",))
    assert group_metadata_key("cap-group") == KAFKA_GROUP_KEY
    decoded = decode_group_metadata_value(KAFKA_GROUP_VALUE)
    assert decoded.protocol_type == "consumer" and decoded.generation == 1
    assert [(m.client_id, m.client_host) for m in decoded.members] == [("cap-client", "/127.0.0.1")]
    assert decoded.protocol == "range" and decoded.leader == decoded.members[0].member_id
    assert group_metadata_value(decoded) == KAFKA_GROUP_VALUE


def test_round_trips() -> None:
    value = offset_commit_value(7, 3, "x" * 300, 1_800_000_000_000, None)
    decoded = decode_offset_commit_value(value)
    assert (decoded.offset, decoded.leader_epoch, decoded.metadata) == (7, 3, "x" * 300)
    assert decoded.topic_id is None
    group = GroupMetadata(
        "consumer", 4, "range", "m-1", 1_800_000_000_000,
        [MemberMetadata("m-1", "static-1", "c", "/127.0.0.1", 300000, 45000, b"s", b"a" * 200)],
    )  # fmt: skip
    assert decode_group_metadata_value(group_metadata_value(group)) == group
    empty = GroupMetadata("consumer", 5, None, None, 1_800_000_000_000, [])
    assert decode_group_metadata_value(group_metadata_value(empty)) == empty


def test_batch_is_a_valid_uncompressed_batch_without_producer() -> None:
    records = [
        (offset_commit_key("g", "t", p), offset_commit_value(p, -1, "", 1, None)) for p in range(3)
    ]
    records.append((group_metadata_key("g"), None))
    batch = encode_batch(records, 1_800_000_000_000)
    ((header, _),) = split_batches(batch, 1 << 20)
    assert header.records_count == 4 and header.producer_id == -1 and header.compression == 0
    assert header.max_timestamp == 1_800_000_000_000
    assert crc32c.crc32c(batch[21:]) == header.crc
    with pytest.raises(ValueError):
        encode_batch([], 0)


def test_small_varint_table_matches_the_encoder() -> None:
    """The table of small zigzag varints is written out by hand; every entry, and the
    first value past it, encodes as `_varint` does."""
    from contextplane.protocol import offsets_records

    end = offsets_records._SMALL_VARINTS_END
    for value in range(-1, end + 1):
        assert offsets_records._small_varint(value) == offsets_records._varint(value), value
