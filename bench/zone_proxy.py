"""Counting TCP forwarders for the three-zone loopback simulation (RFC 0004 §7).

One forwarder per (client zone, broker): a client of zone X (and a broker of zone X
calling a peer) reaches every broker through that broker's zone-X forwarder, which each
broker advertises on its listener `ZX`. The bytes are counted here, outside the broker,
per (client zone, broker zone, direction, flow), so the broker cannot misreport them.

The forwarder reads the Kafka framing (a 4-byte size, then the request header's api key,
version and correlation id), so each frame is counted under its flow: `produce` (api key
0: requests carry the record bytes), `fetch` (api key 1: responses carry them) or
`other` (Metadata, heartbeats, commits, ...); a request whose client id is the
inter-broker client's (`broker-<node id>`) is counted under `peer_<flow>`. A response is
matched to its request by correlation id. Frames are forwarded whole, as
read; a frame larger than `FRAME_MAX` closes the connection (the broker bounds its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections import defaultdict
from dataclasses import dataclass

FRAME_MAX = 256 * 1024 * 1024
PRODUCE, FETCH = 0, 1
FLOWS = {PRODUCE: "produce", FETCH: "fetch"}


@dataclass(frozen=True)
class Route:
    """A forwarder: clients of `client_zone` to the broker of `broker_zone` on
    `target_port` (the broker's listener for that client zone)."""

    client_zone: str
    broker_zone: str
    node_id: int
    target_port: int
    port: int = 0  # where it listens (0 until started)


# (client zone, broker zone, direction "up" | "down", flow) -> bytes
Key = tuple[str, str, str, str]


class ZoneProxy:
    """Forwarders for `routes`, on an event loop thread of their own."""

    def __init__(self) -> None:
        self.counts: dict[Key, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # (client zone, node id) -> the broker's port, when it changed since `listen`
        self._targets: dict[tuple[str, int], int] = {}
        self._thread.start()

    def listen(self, route: Route) -> Route:
        """Start the forwarder of `route` on a free loopback port; returns the route
        with its port."""

        async def start() -> int:
            server = await asyncio.start_server(
                lambda r, w: self._accept(route, r, w), "127.0.0.1", 0
            )
            self._servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return Route(route.client_zone, route.broker_zone, route.node_id, route.target_port, port)

    def retarget(self, client_zone: str, node_id: int, port: int) -> None:
        """Send new connections of that forwarder to `port` (a broker restarted on
        other ports because one was taken)."""
        self._targets[(client_zone, node_id)] = port

    def snapshot(self) -> dict[Key, int]:
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _add(self, route: Route, direction: str, flow: str, size: int) -> None:
        with self._lock:
            self.counts[(route.client_zone, route.broker_zone, direction, flow)] += size

    async def _accept(
        self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            port = self._targets.get((route.client_zone, route.node_id), route.target_port)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        pending: dict[int, str] = {}  # correlation id -> flow of the request
        try:
            await asyncio.gather(
                self._pipe(route, reader, up_writer, "up", pending),
                self._pipe(route, up_reader, writer, "down", pending),
            )
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)

    async def _pipe(
        self,
        route: Route,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: str,
        pending: dict[int, str],
    ) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                (size,) = struct.unpack(">i", head)
                if not 0 <= size <= FRAME_MAX:
                    raise ValueError(f"frame of {size} bytes")
                body = await reader.readexactly(size)
                if direction == "up":
                    flow = _request_flow(body)
                    pending[struct.unpack_from(">i", body, 4)[0]] = flow
                else:
                    (correlation,) = struct.unpack_from(">i", body)
                    flow = pending.pop(correlation, "other")
                self._add(route, direction, flow, 4 + size)
                writer.write(head)
                writer.write(body)
                await writer.drain()
        finally:
            writer.close()  # the other side of the pair sees the end too


def _request_flow(body: bytes) -> str:
    """The flow of a request frame's body: its api key's, `peer_`-prefixed when the
    client id (the header's nullable string after the correlation id) is a broker's."""
    api_key = struct.unpack_from(">h", body)[0]
    flow = FLOWS.get(api_key, "other")
    if len(body) >= 10:
        (length,) = struct.unpack_from(">h", body, 8)
        if 0 < length <= len(body) - 10 and body[10 : 10 + length].startswith(b"broker-"):
            return f"peer_{flow}"
    return flow


def summarize(counts: dict[Key, int]) -> dict[str, int]:
    """Bytes by relation (same / cross zone) and flow: `cross_produce_up` is the produce
    requests' bytes that crossed zones, `cross_fetch_down` the fetch responses', and so on."""
    out: dict[str, int] = defaultdict(int)
    for (client, broker, direction, flow), size in counts.items():
        relation = "same" if client == broker else "cross"
        out[f"{relation}_{flow}_{direction}"] += size
        out[f"{relation}_all"] += size
    return dict(sorted(out.items()))


def by_zone_pair(counts: dict[Key, int]) -> dict[str, int]:
    """Bytes per `client zone->broker zone`, both directions and every flow."""
    out: dict[str, int] = defaultdict(int)
    for (client, broker, _direction, _flow), size in counts.items():
        out[f"{client}->{broker}"] += size
    return dict(sorted(out.items()))
