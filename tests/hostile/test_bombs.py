"""Decompression bombs against a real broker: each is refused with Kafka's code (or
MESSAGE_TOO_LARGE past message.max.decompression.ratio), from two connections at once,
while another client keeps being answered and the broker's memory stays flat."""

from __future__ import annotations

import time

import pytest

from conformance import wire
from conformance.wire import Rec
from contextplane.protocol.decompress import GZIP, LZ4, SNAPPY, ZSTD
from contextplane.protocol.error_codes import ErrorCode
from tests.hostile import bombs
from tests.hostile.bombs import MIB
from tests.hostile.support import (
    PROBE_ANSWER_S,
    Probe,
    create_topic,
    hostile_round,
    produce,
)
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

GIB = 1024 * MIB
# A liveness bound: a produce queued behind the attack is answered (it took minutes).
LEGIT_ANSWER_S = 15.0
INVALID_RECORD = {int(ErrorCode.invalid_record)}
TOO_LARGE = {int(ErrorCode.message_too_large)}
UNREADABLE = {int(ErrorCode.unknown_server_error)}


@pytest.mark.parametrize(
    ("codec", "zeros", "record"),
    [
        (ZSTD, 1 * GIB, 1 * GIB),
        (GZIP, 512 * MIB, 512 * MIB),
        (LZ4, 200 * MIB, 200 * MIB),
    ],
    ids=["zstd", "gzip", "lz4"],
)
def test_bombs_are_refused_without_stalling_or_swelling(
    hostile_broker: BrokerProcess, codec: int, zeros: int, record: int
) -> None:
    hostile_round(
        hostile_broker,
        f"bombs-{codec}",
        [
            # Zeros: the first 'record' is already invalid (what Kafka 4.4 answers too).
            (f"{zeros // MIB} MiB of zeros", bombs.zeros(codec, zeros), INVALID_RECORD),
            # One valid record of that size: only the decompression bound stops it.
            (f"one {record // MIB} MiB record", bombs.one_huge_record(codec, record), TOO_LARGE),
        ],
        connections=2,
    )


def test_eight_gib_zstd_bomb_does_not_kill_the_broker(hostile_broker: BrokerProcess) -> None:
    # 256 KB of zstd frames that expand to 8 GiB: the broker used to abort on it.
    hostile_round(
        hostile_broker,
        "bombs-8gib",
        [("8 GiB of zeros", bombs.zeros(ZSTD, 8 * GIB), INVALID_RECORD)],
        connections=2,
    )


def test_snappy_blocks_are_checked_before_they_are_decompressed(
    hostile_broker: BrokerProcess,
) -> None:
    hostile_round(
        hostile_broker,
        "bombs-snappy",
        [
            ("16 MiB of zeros", bombs.zeros(SNAPPY, 16 * MIB), INVALID_RECORD),
            # A raw block whose preamble claims 1 GiB, holding 8 bytes.
            ("block declaring 1 GiB", bombs.snappy_block_declaring(1 * GIB), UNREADABLE),
        ],
        connections=2,
    )


def test_a_record_of_millions_of_headers_is_read_at_compiled_speed(
    hostile_broker: BrokerProcess,
) -> None:
    # One record of 4,000,000 empty headers (about 1 KB of zstd, 8 MB decompressed), from
    # three connections: it straddles decompression chunks, and read header by header in
    # Python it held the validation pool and the GIL for minutes. It is a valid record
    # (Kafka accepts it), so it is accepted.
    answers = _sent_while_a_probe_runs(
        hostile_broker, "bombs-headers", {}, bombs.many_headers(4_000_000)
    )
    assert answers == [0, 0, 0], answers


def test_a_million_record_errors_are_found_at_compiled_speed(
    hostile_broker: BrokerProcess,
) -> None:
    # A million keyless records for a compacted topic (under 1 MB of zstd): each one is a
    # record error (KIP-467). Looked for record by record in Python it took ~30 s of the
    # validation pool per batch.
    answers = _sent_while_a_probe_runs(
        hostile_broker,
        "bombs-record-errors",
        {"cleanup.policy": "compact"},
        bombs.keyless_records(1_000_000),
    )
    assert answers == [int(ErrorCode.invalid_record)] * 3, answers


def _sent_while_a_probe_runs(
    broker: BrokerProcess, topic: str, configs: dict[str, str], batch: bytes
) -> list[int]:
    """`batch` sent from three connections at once, then a produce of 2,000 records
    (validated in the same thread pool) that must be answered in time, while a probe on
    another connection runs; the three answers."""
    client = RawClient(broker.bootstrap, "hostile")
    create_topic(client, topic, **configs)
    create_topic(client, f"{topic}-probe")
    probe = Probe(broker, f"{topic}-probe")
    attackers = [RawClient(broker.bootstrap, "attacker") for _ in range(3)]
    partition_data = [{"index": 0, "records": batch}]
    with probe.running():
        for attacker in attackers:
            attacker.sock.settimeout(180)
            attacker.send(
                wire.PRODUCE,
                9,
                transactional_id=None,
                acks=-1,
                timeout=10000,
                topic_data=[{"name": topic, "partition_data": partition_data}],
            )
        legit = wire.encode_batch([Rec(b"v" * 100, key=b"k")] * 2000)
        started = time.monotonic()
        assert produce(client, topic, legit)[0] == 0
        waited = time.monotonic() - started
        answers = [
            int(attacker.receive().responses[0].partition_responses[0].error_code)
            for attacker in attackers
        ]
    for attacker in attackers:
        attacker.close()
    client.close()
    assert broker.process is not None and broker.process.poll() is None, "broker died"
    assert waited < LEGIT_ANSWER_S, f"a 2,000-record produce waited {waited:.1f}s"
    assert not probe.failures, probe.failures
    assert probe.latencies, "the probe never got an answer"
    assert max(probe.latencies) < PROBE_ANSWER_S, f"probe waited {max(probe.latencies):.2f}s"
    return answers
