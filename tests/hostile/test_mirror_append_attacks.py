"""MirrorAppend from a hostile (or broken) client allowed to send it: in the default
no-authorizer setup that is every client. Offsets no log can hold, a gap wider than an
empty batch spans, a batch spanning no offsets and the broker's own or the registry's
topics are refused by name; the connection and the log stay usable, and a real consumer
reads what was accepted."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contextplane.protocol.error_codes import ErrorCode
from contextplane.protocol.mirror_append import API_KEY as MIRROR_APPEND
from contextplane.protocol.records import crc32c, empty_batch
from tests.e2e.test_compaction import BASE_TS, clean_up_to, round_
from tests.e2e.test_retention import create
from tests.protocol.test_mirror_append_wire import at, consumed, create_topic, mirror
from tests.support.inprocess import InProcessBroker
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

CREATE_TOPICS, METADATA = 19, 3
_CRC_START = 21


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessBroker]:
    running = InProcessBroker(tmp_path_factory.mktemp("mirror-attacks") / "broker").start()
    yield running
    running.stop()


def resealed(batch: bytes, *, last_offset_delta: int, records_count: int) -> bytes:
    """`batch` with its header's offset span and record count set, CRC recomputed (a
    client that means it sends a valid CRC)."""
    out = bytearray(batch)
    struct.pack_into(">i", out, 23, last_offset_delta)
    struct.pack_into(">i", out, 57, records_count)
    struct.pack_into(">I", out, 17, crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)


def test_offsets_no_log_can_hold_are_refused(broker: InProcessBroker) -> None:
    with RawClient(broker.bootstrap) as client:
        topic = create_topic(client)
        one = record_batch([b"x"])
        attacks = {
            "a gap of 2^40 offsets": at(2**40, one),
            "offsets past 2^63 - 1": at(2**63 - 2, record_batch([b"x", b"y", b"z"])),
            "a negative base offset": at(-5, one),
            "a batch spanning no offsets": resealed(one, last_offset_delta=-1, records_count=0),
        }
        for attack, records in attacks.items():
            answer = mirror(client, topic, records)
            assert answer.error_code == ErrorCode.invalid_record, attack
            assert f"{topic}-0" in answer.error_message, attack
        # The same connection goes on, and nothing of the refused batches was written.
        accepted = mirror(client, topic, at(0, record_batch([b"kept"])))
        assert (accepted.error_code, accepted.log_end_offset) == (ErrorCode.none, 1)
    assert consumed(broker.bootstrap, topic, 1) == [(0, None, b"kept")]


def test_a_gap_wider_than_one_empty_batch_is_spanned_by_several(
    broker: InProcessBroker,
) -> None:
    """A source whose log starts past 2^31 (an empty batch's offset span): the gap is
    several empty batches, and a consumer steps over them to the record."""
    base = 3 * 2**31 + 5
    with RawClient(broker.bootstrap) as client:
        topic = create_topic(client)
        answer = mirror(client, topic, at(base, record_batch([b"far"])))
        assert (answer.error_code, answer.log_end_offset) == (ErrorCode.none, base + 1)
    assert consumed(broker.bootstrap, topic, 1) == [(base, None, b"far")]


def create_named(client: RawClient, name: str) -> None:
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
    assert created.topics[0].error_code in (ErrorCode.none, ErrorCode.topic_already_exists)


@pytest.mark.parametrize("name", ["_schemas", "__contextplane_masking", "__transaction_state"])
def test_state_topics_are_not_mirror_targets(broker: InProcessBroker, name: str) -> None:
    """Schema ids, masking policies or a mirror's progress written at offsets of the
    client's choosing would pass for this cluster's own."""
    with RawClient(broker.bootstrap) as client:
        create_named(client, name)
        answer = mirror(client, name, at(0, record_batch([b"forged"])))
        assert answer.error_code == ErrorCode.invalid_topic_exception
        assert name in answer.error_message


def test_an_unsupported_version_closes_only_that_connection(broker: InProcessBroker) -> None:
    """Kafka closes a connection that sends a version it does not serve; the key being
    contextplane's own changes nothing (no schema is looked up for it)."""
    with RawClient(broker.bootstrap) as client:
        header = struct.pack(">hhih", MIRROR_APPEND, 1, 7, 3) + b"raw" + b"\x00"
        payload = header + b"\x00" * 16
        client.send_raw(struct.pack(">i", len(payload)) + payload)
        assert client.closed_by_broker()
    with RawClient(broker.bootstrap) as client:
        topic = create_topic(client)
        answer: Any = mirror(client, topic, at(0, record_batch([b"v"])))
        assert answer.error_code == ErrorCode.none


def test_unreadable_mirrored_records_leave_only_their_partition_uncompacted(
    tmp_path: Path,
) -> None:
    """MirrorAppend checks a batch's header and CRC, not its records (a sparse batch's
    offsets need not be dense). A batch whose header counts a record it does not hold,
    mirrored into a compacted topic, cannot be cleaned: that partition is left as it is
    (as Kafka marks a partition uncleanable) and the others are still compacted."""
    settings = {
        "upload.interval.ms": "50",
        "log.cleaner.backoff.ms": "50",
        "log.segment.delete.delay.ms": "100",
    }
    running = InProcessBroker(tmp_path / "broker", settings=settings).start()
    try:
        compacted = {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.01",
            "segment.ms": "1",  # every upload closes its segment
        }
        create(running.bootstrap, "poisoned", **compacted)
        create(running.bootstrap, "healthy", **compacted)
        hollow = resealed(empty_batch(0, 1, BASE_TS), last_offset_delta=0, records_count=1)
        with RawClient(running.bootstrap) as client:
            assert mirror(client, "poisoned", hollow).error_code == ErrorCode.none
            wait_uploaded(running, "poisoned")
            later = at(1, record_batch([b"v"], keys=[b"k"]))
            assert mirror(client, "poisoned", later).error_code == ErrorCode.none
            wait_uploaded(running, "poisoned")
        round_(running, "healthy", [(b"k", b"v1", BASE_TS)])
        round_(running, "healthy", [(b"k", b"v2", BASE_TS + 1)])
        wait_until(lambda: clean_up_to(running, "healthy") == 1, 20, "healthy is cleaned")
        assert clean_up_to(running, "poisoned") == 0
    finally:
        running.stop()


def wait_uploaded(broker: InProcessBroker, topic: str) -> None:
    async def uploaded() -> bool:
        assert broker.broker is not None and broker.broker.storage is not None
        partition = broker.broker.storage.partition(topic, 0)
        ranges = await partition.index.load()
        return bool(len(ranges)) and ranges[-1].end_offset == partition.high_watermark

    wait_until(lambda: broker.call(uploaded()), 20, f"{topic} is uploaded")
    time.sleep(0.002)  # segment.ms=1: the next upload closes a new segment
