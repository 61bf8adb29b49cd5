"""Request bytes a client sends cannot take the broker's memory: unfinished frames are
bounded by queued.max.request.bytes (read only once admitted, and only as they arrive),
and a frame trickled in too slowly is dropped after request.receive.timeout.ms."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from typing import Any

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from tests.hostile.observe import (
    api_versions,
    descriptors,
    frame_header,
)
from tests.hostile.support import proc_status_kib
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

MIB = 1024 * 1024
PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19


def _push_until_stalled(socks: list[socket.socket], remaining: list[int]) -> int:
    """Send zeros to every socket as long as the broker reads them, until it has read
    nothing more for a second or everything is sent; returns the bytes sent."""
    chunk = memoryview(b"\0" * MIB)
    sent = 0
    last_progress = time.monotonic()
    deadline = last_progress + 60
    while time.monotonic() - last_progress < 1.0 and time.monotonic() < deadline:
        progressed = False
        for index, sock in enumerate(socks):
            if remaining[index] <= 0:
                continue
            try:
                count = sock.send(chunk[: remaining[index]])
            except BlockingIOError:
                continue
            remaining[index] -= count
            sent += count
            progressed = True
        if progressed:
            last_progress = time.monotonic()
        elif all(r <= 0 for r in remaining):
            break
        else:  # wait until a socket takes more; a second without that is a stall
            waiting = [sock for sock, left in zip(socks, remaining, strict=True) if left > 0]
            select.select([], waiting, [], 1.0)
    return sent


def test_unfinished_large_frames_keep_memory_bounded(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()  # default: one 100 MiB frame
    attackers: list[socket.socket] = []
    try:
        assert broker.process is not None
        pid = broker.process.pid
        with RawClient(broker.bootstrap) as admin:
            created = admin.request(
                CREATE_TOPICS,
                7,
                topics=[
                    {
                        "name": "t",
                        "num_partitions": 1,
                        "replication_factor": -1,
                        "assignments": [],
                        "configs": [],
                    }
                ],
                timeout=5000,
                validate_only=False,
            )
            assert created.topics[0].error_code == 0
        start_kib = proc_status_kib(pid, "VmRSS")
        size = 100 * MIB
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", broker.port))
            sock.setblocking(False)
            sock.send(frame_header(size))
            attackers.append(sock)
        _push_until_stalled(attackers, [size - 1] * len(attackers))
        grown_mib = (proc_status_kib(pid, "VmHWM") - start_kib) / 1024
        # 8 unfinished frames took 800 MB before queued.max.request.bytes: one is admitted.
        assert grown_mib < 300, f"broker grew by {grown_mib:.0f} MiB"
        with RawClient(broker.bootstrap) as probe:
            assert api_versions(probe, timeout_s=5) < 5
            # A produce larger than a connection's free allowance waits for request
            # memory, and gets it once the unfinished frames are gone.
            probe.send(
                PRODUCE,
                9,
                transactional_id=None,
                acks=-1,
                timeout=5000,
                topic_data=[
                    {
                        "name": "t",
                        "partition_data": [{"index": 0, "records": record_batch([b"v" * 200_000])}],
                    }
                ],
            )
            for sock in attackers:
                sock.close()
            attackers.clear()
            response = probe.receive()
            assert response.responses[0].partition_responses[0].error_code == 0
    finally:
        for sock in attackers:
            sock.close()
        broker.stop()


def test_trickled_frame_is_dropped_after_the_receive_deadline(tmp_path: Path) -> None:
    broker = BrokerProcess(
        tmp_path / "broker", settings={"request.receive.timeout.ms": "1000"}
    ).start()
    try:
        trickler = socket.create_connection(("127.0.0.1", broker.port))
        trickler.settimeout(0.2)
        trickler.sendall(frame_header(1000))
        started = time.monotonic()

        def dropped() -> bool:
            try:
                trickler.sendall(b"\0")  # one byte every 200 ms keeps it from being idle
                return trickler.recv(1) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        wait_until(dropped, 15, "the trickled frame's connection is closed")
        assert time.monotonic() - started >= 1.0
        assert "request.receive.timeout.ms" in broker.log_tail(), broker.log_tail()
        with RawClient(broker.bootstrap) as probe:
            api_versions(probe)
    finally:
        broker.stop()


def test_large_requests_from_many_connections_all_complete_within_a_small_budget(
    tmp_path: Path,
) -> None:
    """Frames wait for request memory in turn and never for each other (no deadlock):
    four connections pipelining 900 KB produce requests through a 1 MiB budget."""
    broker = BrokerProcess(
        tmp_path / "broker", settings={"queued.max.request.bytes": str(MIB)}
    ).start()
    try:
        with RawClient(broker.bootstrap) as admin:
            admin.request(
                CREATE_TOPICS,
                7,
                topics=[{"name": "t", "num_partitions": 4, "replication_factor": -1}],
                timeout=5000,
                validate_only=False,
            )
        clients = [RawClient(broker.bootstrap) for _ in range(4)]
        batch = record_batch([b"v" * 900_000])
        for index, client in enumerate(clients):
            for _ in range(3):
                client.send(
                    PRODUCE,
                    9,
                    transactional_id=None,
                    acks=-1,
                    timeout=5000,
                    topic_data=[
                        {"name": "t", "partition_data": [{"index": index, "records": batch}]}
                    ],
                )
        for client in clients:
            for _ in range(3):
                response = client.receive()
                assert response.responses[0].partition_responses[0].error_code == 0
            client.close()
    finally:
        broker.stop()


def test_requests_are_held_to_the_memory_budgets_share_and_none_is_dropped(
    tmp_path: Path,
) -> None:
    """With queued.max.request.bytes at its 100 MiB default, a 48 MiB memory budget holds
    requests to its 12 MiB share: four connections pipelining five 900 KB produce
    requests each (18 MB) and one request of 12.6 MB (fourteen partitions' batches:
    larger than the whole share) are all acknowledged in turn, and every record is there
    to fetch."""
    broker = BrokerProcess(tmp_path / "broker", settings={"memory.budget.bytes": str(48 * MIB)})
    broker.start()
    batch = record_batch([b"v" * 900_000])
    large = [{"index": index, "records": batch} for index in range(4, 18)]
    requests = [[[{"index": index, "records": batch}]] * 5 for index in range(4)] + [[large]]
    try:
        with RawClient(broker.bootstrap) as admin:
            admin.request(
                CREATE_TOPICS,
                7,
                topics=[{"name": "t", "num_partitions": 18, "replication_factor": -1}],
                timeout=5000,
                validate_only=False,
            )
        clients = [RawClient(broker.bootstrap) for _ in requests]
        for client, sends in zip(clients, requests, strict=True):
            for partition_data in sends:
                client.send(
                    PRODUCE,
                    9,
                    transactional_id=None,
                    acks=-1,
                    timeout=5000,
                    topic_data=[{"name": "t", "partition_data": partition_data}],
                )
        for client, sends in zip(clients, requests, strict=True):
            for _ in sends:
                response = client.receive()
                errors = [p.error_code for p in response.responses[0].partition_responses]
                assert errors == [0] * len(errors), response.responses[0].partition_responses
            client.close()
        with RawClient(broker.bootstrap) as reader:
            for index in range(18):
                assert _high_watermark(reader, index) == (5 if index < 4 else 1), index
    finally:
        broker.stop()


def _high_watermark(client: RawClient, partition: int) -> int:
    fetched = client.request(
        FETCH,
        12,
        cluster_id=None,
        replica_id=-1,
        replica_state={"replica_id": -1, "replica_epoch": -1},
        max_wait=0,
        min_bytes=0,
        max_bytes=64 * MIB,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            {
                "topic": "t",
                "partitions": [
                    {
                        "partition": partition,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": 64 * MIB,
                    }
                ],
            }
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    result = fetched.responses[0].partitions[0]
    assert result.error_code == 0
    return int(result.high_watermark)


def test_a_client_that_does_not_read_cannot_pile_up_responses(tmp_path: Path) -> None:
    """Small requests with large responses, pipelined by a client that never reads: the
    broker keeps at most 64 responses queued and writes only up to the transport's
    high-water mark, and closes the connection once it is idle."""
    broker = BrokerProcess(tmp_path / "broker", settings={"connections.max.idle.ms": "2000"})
    broker.start()
    try:
        assert broker.process is not None
        pid = broker.process.pid
        with RawClient(broker.bootstrap) as client:
            _create_topic(client, "t")
            produced = _produce(client, record_batch([b"v" * 900_000]))
            assert produced.error_code == 0
            fetch = client.frame(FETCH, 12, _fetch_body())
        baseline_sockets = descriptors(pid)[1]
        start_kib = proc_status_kib(pid, "VmRSS")
        greedy = socket.create_connection(("127.0.0.1", broker.port))
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        greedy.sendall(fetch * 400)  # 40 KB of requests for 360 MB of responses
        rss: list[int] = []

        def settled() -> bool:
            rss.append(proc_status_kib(pid, "VmRSS"))
            return len(rss) > 20 and abs(rss[-1] - rss[-21]) < 1024

        wait_until(settled, 60, "the broker stops growing")
        grown_mib = (proc_status_kib(pid, "VmHWM") - start_kib) / 1024
        # Unbounded, the broker answered all 400 fetches into its write buffer.
        assert grown_mib < 150, f"broker grew by {grown_mib:.0f} MiB"
        wait_until(
            lambda: descriptors(pid)[1] <= baseline_sockets, 20, "the stuck connection is closed"
        )
        greedy.close()
        with RawClient(broker.bootstrap) as probe:
            api_versions(probe)
    finally:
        broker.stop()


def _create_topic(client: RawClient, name: str, partitions: int = 1) -> None:
    created = client.request(
        CREATE_TOPICS,
        7,
        topics=[{"name": name, "num_partitions": partitions, "replication_factor": -1}],
        timeout=5000,
        validate_only=False,
    )
    assert created.topics[0].error_code == 0


def _produce(client: RawClient, batch: bytes, partition: int = 0) -> Any:
    response = client.request(
        PRODUCE,
        9,
        transactional_id=None,
        acks=-1,
        timeout=5000,
        topic_data=[{"name": "t", "partition_data": [{"index": partition, "records": batch}]}],
    )
    return response.responses[0].partition_responses[0]


def _fetch_body() -> Any:
    return build(
        request_schema(FETCH, 12),
        replica_id=-1,
        max_wait=0,
        min_bytes=0,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=[
            {
                "topic": "t",
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "last_fetched_epoch": -1,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
