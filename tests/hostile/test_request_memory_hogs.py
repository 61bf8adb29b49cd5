"""Request memory is earned by bytes sent (issue #8, F4): connections that declare huge
frames and then trickle cannot hold queued.max.request.bytes while a legitimate large
request waits, and large frames that are all half read when the budget runs out still
all complete."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema
from tests.hostile.observe import api_versions, frame_header
from tests.hostile.support import create_topic
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient, record_batch
from tests.support.wait import wait_until

MIB = 1024 * 1024
PRODUCE = 0
# Far below request.receive.timeout.ms (60 s), the time each hog held the budget.
ANSWER_S = 20


def _produce_frame(client: RawClient, topic: str, value: bytes) -> bytes:
    body = build(
        request_schema(PRODUCE, 9),
        transactional_id=None,
        acks=-1,
        timeout=5000,
        topic_data=[
            {"name": topic, "partition_data": [{"index": 0, "records": record_batch([value])}]}
        ],
    )
    return client.frame(PRODUCE, 9, body)


def test_declared_frames_that_trickle_do_not_starve_a_large_produce(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "broker").start()  # default: 100 MiB of request memory
    hogs: list[socket.socket] = []
    try:
        with RawClient(broker.bootstrap) as admin:
            create_topic(admin, "t")
        # Each declares a frame of the whole budget and sends one byte of it.
        for _ in range(10):
            hog = socket.create_connection(("127.0.0.1", broker.port))
            hog.sendall(frame_header(100 * MIB) + b"\0")
            hogs.append(hog)
        with RawClient(broker.bootstrap) as probe:
            api_versions(probe, timeout_s=5)
            probe.sock.settimeout(ANSWER_S)
            started = time.monotonic()
            # Above a connection's 16 KiB free allowance: it needs the budget.
            probe.send_raw(_produce_frame(probe, "t", b"v" * 900_000))
            frame = probe.read_frame()  # TimeoutError: starved by the hogs
            assert time.monotonic() - started < ANSWER_S
            assert len(frame) > 4
    finally:
        for hog in hogs:
            hog.close()
        broker.stop()


def test_large_frames_half_read_when_the_budget_runs_out_all_complete(tmp_path: Path) -> None:
    """Two 60 MiB requests against the 100 MiB budget, sent side by side so both are
    half read when it is spent: both are answered (one finishes past the budget)."""
    broker = BrokerProcess(
        tmp_path / "broker",
        settings={"message.max.bytes": str(61 * MIB), "socket.request.max.bytes": str(100 * MIB)},
    ).start()
    clients: list[RawClient] = []
    try:
        with RawClient(broker.bootstrap) as admin:
            create_topic(admin, "t")
        clients = [RawClient(broker.bootstrap) for _ in range(2)]
        frames = [memoryview(_produce_frame(c, "t", b"v" * (60 * MIB))) for c in clients]
        for client in clients:
            client.sock.setblocking(False)
        sent = [0, 0]
        deadline = time.monotonic() + 120
        while any(s < len(f) for s, f in zip(sent, frames, strict=True)):
            assert time.monotonic() < deadline, f"the broker stopped reading at {sent}"
            progressed = False
            for index, client in enumerate(clients):
                if sent[index] < len(frames[index]):
                    try:
                        sent[index] += client.sock.send(frames[index][sent[index] :][:MIB])
                        progressed = True
                    except BlockingIOError:
                        pass
            if not progressed:  # wait until a socket takes more (or the deadline check)
                busy = zip(clients, sent, frames, strict=True)
                select.select([], [c.sock for c, done, f in busy if done < len(f)], [], 1.0)
        for client in clients:
            client.sock.setblocking(True)
            client.sock.settimeout(60)
            assert len(client.read_frame()) > 4
        with RawClient(broker.bootstrap) as probe:
            api_versions(probe, timeout_s=5)
    finally:
        for client in clients:
            client.close()
        broker.stop()


def test_hogs_are_dropped_and_leave_nothing_counted(tmp_path: Path) -> None:
    """The hogs hold only what they sent: once they have been closed by the receive
    deadline, a further large produce is read at once."""
    broker = BrokerProcess(
        tmp_path / "broker", settings={"request.receive.timeout.ms": "2000"}
    ).start()
    hogs: list[socket.socket] = []
    try:
        with RawClient(broker.bootstrap) as admin:
            create_topic(admin, "t")
        for _ in range(4):
            hog = socket.create_connection(("127.0.0.1", broker.port))
            hog.sendall(frame_header(100 * MIB) + b"\0" * 100)
            hogs.append(hog)

        def all_dropped() -> bool:
            for hog in hogs:
                hog.settimeout(0.05)
                try:
                    if hog.recv(1) != b"":
                        return False
                except TimeoutError:
                    return False
                except OSError:
                    pass
            return True

        wait_until(all_dropped, 30, "every hog closed by request.receive.timeout.ms")
        with RawClient(broker.bootstrap) as client:
            client.sock.settimeout(ANSWER_S)
            client.send_raw(_produce_frame(client, "t", b"v" * 900_000))
            assert len(client.read_frame()) > 4
    finally:
        for hog in hogs:
            hog.close()
        broker.stop()
