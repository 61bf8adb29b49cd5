"""Request bytes a client sends cannot take the broker's memory: unfinished frames are
bounded by queued.max.request.bytes (read only once admitted, and only as they arrive),
and a frame trickled in too slowly is dropped after request.receive.timeout.ms."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.hostile.observe import api_versions, frame_header, status_kib, wait_until
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient, record_batch

MIB = 1024 * 1024
PRODUCE, CREATE_TOPICS = 0, 19


def _push_until_stalled(socks: list[socket.socket], remaining: list[int]) -> int:
    """Send to every socket as much as the broker reads, until it has read nothing more
    for a second (or everything is sent); returns the bytes sent."""
    chunk = b"\0" * MIB
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
        else:
            time.sleep(0.01)
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
        start_kib = status_kib(pid, "VmRSS")
        size = 100 * MIB
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", broker.port))
            sock.setblocking(False)
            sock.send(frame_header(size))
            attackers.append(sock)
        _push_until_stalled(attackers, [size - 1] * len(attackers))
        grown_mib = (status_kib(pid, "VmHWM") - start_kib) / 1024
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
