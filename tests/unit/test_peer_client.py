"""The inter-broker client (cluster/peer_client.py): requests encoded with the protocol
codec and answered by a real broker; a response frame out of bounds drops the
connection before anything is read; an unreachable peer is not dialled again before
its backoff has passed (driven by a manual clock)."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from contextplane import limits
from contextplane.clock import ManualClock
from contextplane.cluster.peer_client import PeerConnection, PeerUnavailable
from contextplane.protocol.error_codes import ErrorCode
from tests.support.inprocess import InProcessBroker


def endpoint(bootstrap: str) -> tuple[str, int]:
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


def test_write_txn_markers_and_metadata_answered_by_a_broker(broker: InProcessBroker) -> None:
    async def run() -> None:
        peer = PeerConnection(2, "broker-2", ManualClock())
        try:
            marker = {
                "producer_id": 7,
                "producer_epoch": 0,
                "transaction_result": True,
                "topics": [{"name": "absent", "partition_indexes": [0]}],
                "coordinator_epoch": 0,
            }
            where = endpoint(broker.bootstrap)
            answers = await asyncio.gather(
                peer.request(where, 27, 1, markers=[marker]),
                peer.request(where, 3, 12, topics=[], allow_auto_topic_creation=False),
            )
            (written, metadata) = answers
            code = written.markers[0].topics[0].partitions[0].error_code
            assert code == ErrorCode.unknown_topic_or_partition
            assert [b.node_id for b in metadata.brokers] == [1]
        finally:
            await peer.close()

    asyncio.run(run())


def test_an_oversized_frame_drops_the_connection_and_a_dead_peer_waits_its_backoff() -> None:
    async def run() -> None:
        connections = 0

        async def answer_huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.read(4)
            # The size, then the correlation id the bound is looked up by (the first).
            writer.write(struct.pack(">ii", limits.PEER_RESPONSE_BYTES_MAX + 1, 1))
            await writer.drain()
            await reader.read()  # until the client drops it
            writer.close()

        server = await asyncio.start_server(answer_huge, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clock = ManualClock()
        peer = PeerConnection(2, "broker-2", clock)
        request = {"topics": [], "allow_auto_topic_creation": False}
        try:
            with pytest.raises(PeerUnavailable):
                await peer.request(("127.0.0.1", port), 3, 12, **request)
            assert connections == 1
            # Within the backoff: refused at once, no connection attempted.
            with pytest.raises(PeerUnavailable, match="reconnecting"):
                await peer.request(("127.0.0.1", port), 3, 12, **request)
            assert connections == 1
            server.close()
            await server.wait_closed()
            clock.advance(int(limits.PEER_BACKOFF_MAX_S * 1000))
            with socket.socket() as free:  # a port nothing listens on
                free.bind(("127.0.0.1", 0))
                dead = free.getsockname()[1]
            with pytest.raises(PeerUnavailable):
                await peer.request(("127.0.0.1", dead), 3, 12, **request)
            with pytest.raises(PeerUnavailable, match="reconnecting"):
                await peer.request(("127.0.0.1", dead), 3, 12, **request)
        finally:
            await peer.close()

    asyncio.run(run())


def test_a_request_queued_behind_busy_slots_fails_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With one request slot held by a call the peer never answers, the next call fails
    "every request slot busy" within its own timeout (before, it waited for the slot
    without bound, then its own timeout on top)."""
    monkeypatch.setattr(limits, "PEER_IN_FLIGHT_MAX", 1)

    async def run() -> None:
        async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()
            writer.close()

        server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
        where = ("127.0.0.1", server.sockets[0].getsockname()[1])
        peer = PeerConnection(2, "broker-2", ManualClock())
        request = {"topics": [], "allow_auto_topic_creation": False}
        monkeypatch.setattr(limits, "PEER_REQUEST_TIMEOUT_S", 30.0)
        holder = asyncio.ensure_future(peer.request(where, 3, 12, **request))
        try:
            await asyncio.sleep(0.1)  # it holds the one slot, waiting for its answer
            monkeypatch.setattr(limits, "PEER_REQUEST_TIMEOUT_S", 0.3)
            with pytest.raises(PeerUnavailable, match="every request slot busy"):
                await asyncio.wait_for(peer.request(where, 3, 12, **request), 5)
            assert not holder.done()
        finally:
            holder.cancel()
            await peer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def test_a_request_that_waited_for_its_slot_has_its_whole_timeout_for_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two slots, a 1 s timeout, a peer answering each request 0.8 s after it: a third
    request waits ~0.8 s for a slot, then is answered 0.8 s after it is sent, and so is a
    fourth sent meanwhile (with one deadline for both waits, the third timed out soon
    after it was sent, and its timeout dropped the connection under the fourth)."""
    monkeypatch.setattr(limits, "PEER_IN_FLIGHT_MAX", 2)
    monkeypatch.setattr(limits, "PEER_REQUEST_TIMEOUT_S", 1.0)

    async def run() -> None:
        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def answer(correlation: int) -> None:
                await asyncio.sleep(0.8)
                body = struct.pack(">ihi", correlation, 0, 0)  # ApiVersions v0, no versions
                writer.write(struct.pack(">i", len(body)) + body)

            try:
                while True:
                    (size,) = struct.unpack(">i", await reader.readexactly(4))
                    frame = await reader.readexactly(size)
                    asyncio.ensure_future(answer(struct.unpack(">i", frame[4:8])[0]))
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(slow, "127.0.0.1", 0)
        where = ("127.0.0.1", server.sockets[0].getsockname()[1])
        peer = PeerConnection(2, "broker-2", ManualClock())
        try:
            first = [asyncio.ensure_future(peer.request(where, 18, 0)) for _ in range(2)]
            await asyncio.sleep(0.01)
            queued = asyncio.ensure_future(peer.request(where, 18, 0))
            await asyncio.gather(*first)
            await asyncio.sleep(0.05)
            later = asyncio.ensure_future(peer.request(where, 18, 0))
            answers = await asyncio.gather(queued, later, return_exceptions=True)
            assert [a.error_code for a in answers] == [0, 0], answers  # type: ignore[union-attr]
        finally:
            await peer.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())
