"""A consumer that asks for a large fetch and never reads its socket: the response it
leaves in the broker is counted in the memory budget (RFC 0003, "4. Memory": bytes
referenced by responses), at most its own size, and the broker's RSS settles below the
budget plus its idle RSS plus a margin. Another client is answered meanwhile, and the
bytes are released when the slow consumer goes away."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import wire
from tests.hostile.observe import api_versions
from tests.hostile.support import MIB, create_topic, proc_status_kib
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient
from tests.support.wait import wait_until

FETCH = 1
# In-flight share 24 MiB: the held response alone is more, so the other client's object
# read must proceed anyway (a single read never waits for held responses).
BUDGET_BYTES = 48 * MIB
VALUE_BYTES = 900 * 1024  # one record per batch, under max.message.bytes
BATCHES = 40  # ~35 MiB in the topic, all asked for by one fetch
# Allocator slack and the probes' own lines: a liveness bound on memory, not a figure.
RSS_MARGIN_BYTES = 48 * MIB
ANSWER_S = 30


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(
        tmp_path / "broker",
        settings={
            "memory.budget.bytes": str(BUDGET_BYTES),
            "debug.probe.file": str(tmp_path / "probes.jsonl"),
        },
    ).start()
    yield process
    process.stop()


def _probes(broker: BrokerProcess) -> list[dict[str, Any]]:
    path = broker.data_dir.parent / "probes.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _rss_bytes(broker: BrokerProcess) -> int:
    assert broker.process is not None
    return proc_status_kib(broker.process.pid, "VmRSS") * 1024


def _send_large_fetch(client: RawClient, topic: str) -> None:
    client.send(
        FETCH,
        12,
        cluster_id=None,
        replica_id=-1,
        replica_state={"replica_id": -1, "replica_epoch": -1},
        max_wait=0,
        min_bytes=0,
        max_bytes=BUDGET_BYTES,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": BUDGET_BYTES,
                    }
                ],
            }
        ],
        forgotten_topics_data=[],
        rack_id="",
    )


def _fill(broker: BrokerProcess, topic: str) -> None:
    """`topic` with BATCHES batches of one VALUE_BYTES record each."""
    with RawClient(broker.bootstrap) as client:
        create_topic(client, topic)
        value = b"v" * VALUE_BYTES
        for _ in range(BATCHES):
            part = wire.produce(client, topic, wire.encode_batch([value]))
            assert part.error_code == 0, part


def test_a_consumer_that_never_reads_holds_at_most_its_response(broker: BrokerProcess) -> None:
    topic = "never-read"
    idle_rss = _rss_bytes(broker)
    _fill(broker, topic)
    response_max = BATCHES * (VALUE_BYTES + 128) + 4096  # batch headers, response framing

    # Every batch in objects first: a fetch arriving while the oldest batches have left
    # the log cache but the newest are not uploaded yet is answered with the uploaded
    # objects' batches only (a legitimately short response, too small to hold here).
    def uploaded() -> bool:
        lines = _probes(broker)
        counts = lines[-1].get("object_store", {}) if lines else {}
        return counts.get("upload_object_bytes", 0) >= BATCHES * VALUE_BYTES

    wait_until(uploaded, ANSWER_S, "every produced batch uploaded")

    slow = RawClient(broker.bootstrap)
    try:
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        _send_large_fetch(slow, topic)

        # The unsent response is counted, and never more than the response itself.
        def counted() -> dict[str, Any] | None:
            lines = _probes(broker)
            last = lines[-1] if lines else {}
            # At most half the budget (24 MiB) is answered, less what TCP took of it.
            return last if last.get("budget_response_bytes", 0) > 8 * MIB else None

        line = wait_until(counted, ANSWER_S, "the held response counted in the budget")
        assert line["budget_response_bytes"] <= response_max, line
        assert line["budget_used_bytes"] >= line["budget_response_bytes"], line

        # Another client is answered, and reads the topic, while the response is held.
        with RawClient(broker.bootstrap) as other:
            other.sock.settimeout(ANSWER_S)
            api_versions(other, timeout_s=ANSWER_S)
            read = wire.fetch_one(other, topic, 0, partition_max_bytes=MIB)
            assert read.error_code == 0 and read.records, read

        # The broker's memory settles within the budget, its idle RSS and a margin.
        bound = BUDGET_BYTES + idle_rss + RSS_MARGIN_BYTES
        wait_until(
            lambda: _rss_bytes(broker) <= bound,
            ANSWER_S,
            f"RSS below budget + idle RSS ({idle_rss // MIB} MiB) + margin",
        )
        for line in _probes(broker)[-3:]:
            assert line["budget_response_bytes"] <= response_max, line
    finally:
        slow.close()

    # Gone: nothing of its response is counted any more.
    wait_until(
        lambda: (lines := _probes(broker)) and lines[-1]["budget_response_bytes"] == 0,
        ANSWER_S,
        "the slow consumer's response released",
    )


PIPELINED = 12  # Fetches one connection sends without reading any answer
SLOW_CONNECTIONS = 6  # connections that each send one Fetch and read nothing


def test_fetches_nobody_reads_stay_within_the_budget(broker: BrokerProcess) -> None:
    """Each unread Fetch answered whole pinned its response: one connection pipelining a
    dozen of them, or a few connections one each, held several times the budget (RSS
    with it). Now a connection holding more than 1 MiB its client has not read starts no
    further request, and past half the budget a Fetch gets its first batch only."""
    topic = "never-read-many"
    _fill(broker, topic)
    slow = [RawClient(broker.bootstrap) for _ in range(1 + SLOW_CONNECTIONS)]
    try:
        for client in slow:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(PIPELINED):
            _send_large_fetch(slow[0], topic)
        for client in slow[1:]:
            _send_large_fetch(client, topic)

        def held() -> int:
            lines = _probes(broker)
            return int(lines[-1].get("budget_response_bytes", 0)) if lines else 0

        # Every slow connection's first answer is held (the rest wait unread in TCP).
        wait_until(lambda: held() > 8 * MIB, ANSWER_S, "the held responses counted")
        seen = []
        for _ in range(6):  # the probe lines of the next seconds: nothing more is taken
            seen.append(held())
            time.sleep(0.5)
        # Half the budget for the first answers, then one batch each at most.
        bound = BUDGET_BYTES // 2 + len(slow) * (MIB + VALUE_BYTES + 4096)
        assert max(seen) <= bound < BUDGET_BYTES * 2, (seen, bound)

        with RawClient(broker.bootstrap) as other:  # the broker still answers others
            other.sock.settimeout(ANSWER_S)
            api_versions(other, timeout_s=ANSWER_S)
            read = wire.fetch_one(other, topic, 0, partition_max_bytes=MIB)
            assert read.error_code == 0 and read.records, read
    finally:
        for client in slow:
            client.close()
    wait_until(lambda: _probes(broker)[-1]["budget_response_bytes"] == 0, ANSWER_S, "released")
