"""The inter-broker client (RFC 0004 §3): the requests a broker sends another broker,
today the transaction coordinator's WriteTxnMarkers to partitions led elsewhere.

One connection per peer, opened on first use on the peer's registered endpoint of the
inter-broker listener (security/inter_broker.py: brokers of one cluster share listener
names), authenticated as this broker there: TLS with its own keystore on SSL and
SASL_SSL, then SaslHandshake v1 and SaslAuthenticate v2 (PLAIN or SCRAM) on a SASL
listener, before any request. A login the peer refuses fails the connection like a
refused connect (logged, backed off). Requests are encoded with the protocol codec and
pipelined on it, at most `PEER_IN_FLIGHT_MAX` at once. Every response frame is bounded
(`PEER_RESPONSE_BYTES_MAX`) before it is read and decoded with the lenient reader, as
requests from clients are. A connection that fails
(refused, reset, a request timed out, a frame out of bounds) fails every request on it;
the next request reconnects, not before a backoff that doubles from
`PEER_BACKOFF_MIN_S` to `PEER_BACKOFF_MAX_S` while the peer stays unreachable: callers
(the coordinator's timer) retry, so a dead peer costs one failed connect per backoff.
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kio.serial import entity_writer

from contextplane import limits
from contextplane.clock import Clock
from contextplane.metadata.records import BrokerRecord
from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema, response_schema, skip_tagged_fields
from contextplane.protocol.lenient import read_entity_lenient
from contextplane.security import inter_broker
from contextplane.security.inter_broker import InterBrokerLogin
from contextplane.security.scram_client import ScramClient, ScramError
from contextplane.security.tls import build_client_context, tls_config
from contextplane.settings import Settings

log = logging.getLogger(__name__)

_INT32 = struct.Struct(">i")
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class PeerUnavailable(ConnectionError):
    """The peer cannot be reached now (or is in its reconnect backoff)."""


class PeerLoginRefused(ConnectionError):
    """The peer refused this broker's SASL login (the message says why)."""


@dataclass(frozen=True)
class PeerSecurity:
    """How to reach peers: the inter-broker listener, its client TLS context (None:
    no TLS) and the SASL login (security/inter_broker.py)."""

    login: InterBrokerLogin
    tls: ssl.SSLContext | None = None


def peer_security(settings: Settings) -> PeerSecurity | None:
    """The inter-broker listener and login of `settings` (checked when they were loaded),
    with its TLS context built now: a keystore or truststore it cannot use stops the
    start (TlsConfigError naming the setting). None: no inter-broker listener."""
    login = inter_broker.login(settings)
    if login is None:
        return None
    tls = build_client_context(tls_config(settings, login.listener)) if login.tls else None
    return PeerSecurity(login, tls)


class PeerConnection:
    """One connection to one peer, reconnected on demand."""

    def __init__(
        self, node_id: int, client_id: str, clock: Clock, security: PeerSecurity | None = None
    ) -> None:
        self.node_id = node_id
        self._clock = clock
        self._security = security
        self._client_id = client_id.encode()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, tuple[asyncio.Future[bytes], int]] = {}  # answer, bound
        self._correlation = 0
        self._slots = asyncio.Semaphore(limits.PEER_IN_FLIGHT_MAX)
        self._connecting = asyncio.Lock()
        self._backoff_s = 0.0
        self._retry_at_ms = 0

    async def request(
        self,
        endpoint: tuple[str, int],
        api_key: int,
        version: int,
        response_bytes_max: int = limits.PEER_RESPONSE_BYTES_MAX,
        **fields: Any,
    ) -> Any:
        """Send one request, return its decoded response (a frame of at most
        `response_bytes_max`); PeerUnavailable on failure, and when none of the bounded
        request slots freed within the request timeout. Once sent, the request has the
        whole timeout for its answer: one not answered in it drops the connection, so it
        must not be cut short by the time spent waiting for a slot."""
        try:
            async with asyncio.timeout(limits.PEER_REQUEST_TIMEOUT_S):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise PeerUnavailable(f"node {self.node_id}: every request slot busy") from exc
        try:
            writer = await self._connected(endpoint)
            self._correlation = (self._correlation + 1) & 0x7FFFFFFF
            correlation = self._correlation
            answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._waiting[correlation] = (answer, response_bytes_max)
            try:
                writer.write(self._frame(api_key, version, correlation, fields))
                async with asyncio.timeout(limits.PEER_REQUEST_TIMEOUT_S):
                    frame = await answer
            except (OSError, TimeoutError) as exc:
                self._fail(exc)
                raise PeerUnavailable(f"node {self.node_id}: {exc!r}") from exc
            finally:
                self._waiting.pop(correlation, None)
        finally:
            self._slots.release()
        try:
            return _decode(api_key, version, frame)
        except Exception as exc:  # noqa: BLE001 - a peer that answers garbage is dropped
            self._fail(exc)
            raise PeerUnavailable(f"node {self.node_id}: malformed response ({exc!r})") from exc

    def _frame(self, api_key: int, version: int, correlation: int, fields: Any) -> bytes:
        schema = request_schema(api_key, version)
        buffer = io.BytesIO()
        buffer.write(b"\0\0\0\0")
        buffer.write(struct.pack(">hhih", api_key, version, correlation, len(self._client_id)))
        buffer.write(self._client_id)
        if schema.__flexible__:
            buffer.write(b"\0")  # no tagged fields in the header
        entity_writer(schema)(buffer, build(schema, fields))
        frame = buffer.getbuffer()
        _INT32.pack_into(frame, 0, len(frame) - 4)
        return bytes(frame)

    async def _connected(self, endpoint: tuple[str, int]) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            if self._clock.monotonic_ms() < self._retry_at_ms:
                raise PeerUnavailable(f"node {self.node_id}: reconnecting after a failure")
            tls = self._security.tls if self._security is not None else None
            writer = None
            try:
                async with asyncio.timeout(limits.PEER_REQUEST_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(
                        *endpoint, ssl=tls, server_hostname=endpoint[0] if tls else None
                    )
                    await self._log_in(reader, writer)
            except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError) as exc:
                if writer is not None:
                    writer.close()
                self._back_off()
                if isinstance(exc, (PeerLoginRefused, ssl.SSLError)):
                    log.warning("login to node %d at %s: %s", self.node_id, endpoint, exc)
                raise PeerUnavailable(f"node {self.node_id} at {endpoint}: {exc!r}") from exc
            self._backoff_s = 0.0
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader), name=f"peer-{self.node_id}")
            return writer

    async def _log_in(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """SASL on a fresh connection, before any request is pipelined on it."""
        login = self._security.login if self._security is not None else None
        if login is None or not login.mechanism:
            return

        async def call(api_key: int, version: int, **fields: Any) -> Any:
            writer.write(self._frame(api_key, version, 0, fields))
            (size,) = _INT32.unpack(await reader.readexactly(4))
            if not 4 <= size <= limits.PEER_RESPONSE_BYTES_MAX:
                raise ConnectionError(f"a response frame of {size} bytes")
            return _decode(api_key, version, await reader.readexactly(size))

        async def authenticate(token: bytes) -> bytes:
            answer = await call(SASL_AUTHENTICATE, 2, auth_bytes=token)
            if answer.error_code:
                raise PeerLoginRefused(
                    f"{login.mechanism} login as {login.username!r} refused (error"
                    f" {answer.error_code}: {answer.error_message})"
                )
            return bytes(answer.auth_bytes)

        handshake = await call(SASL_HANDSHAKE, 1, mechanism=login.mechanism)
        if handshake.error_code:
            raise PeerLoginRefused(
                f"{login.mechanism} is not enabled there (enabled: "
                f"{', '.join(handshake.mechanisms)}): sasl.mechanism.inter.broker.protocol"
            )
        if login.mechanism == "PLAIN":
            await authenticate(f"\0{login.username}\0{login.password}".encode())
            return
        scram = ScramClient(_SCRAM_HASHES[login.mechanism], login.username, login.password)
        try:
            final = scram.final(await authenticate(scram.first()))
        except ScramError as exc:
            raise PeerLoginRefused(str(exc)) from None
        if not scram.verify(await authenticate(final)):
            raise PeerLoginRefused("the peer's SCRAM signature does not verify")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = _INT32.unpack(await reader.readexactly(4))
                if size < 4:
                    raise ConnectionError(f"a response frame of {size} bytes")
                head = await reader.readexactly(4)
                (correlation,) = _INT32.unpack(head)
                waiting = self._waiting.get(correlation)
                bound = limits.PEER_RESPONSE_BYTES_MAX if waiting is None else waiting[1]
                if size > bound:  # before the rest is read
                    raise ConnectionError(f"a response frame of {size} bytes")
                frame = head + await reader.readexactly(size - 4)
                if waiting is not None and not waiting[0].done():
                    waiting[0].set_result(frame)
        except (OSError, EOFError, asyncio.IncompleteReadError) as exc:
            self._fail(exc)

    def _back_off(self) -> None:
        self._backoff_s = min(
            max(self._backoff_s * 2, limits.PEER_BACKOFF_MIN_S), limits.PEER_BACKOFF_MAX_S
        )
        self._retry_at_ms = self._clock.monotonic_ms() + int(self._backoff_s * 1000)

    def _fail(self, exc: BaseException) -> None:
        """Drop the connection: every request waiting on it fails."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._back_off()
        for answer, _ in self._waiting.values():
            if not answer.done():
                answer.set_exception(ConnectionError(f"connection to node {self.node_id} lost"))
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
        self._reader_task = None
        log.info("connection to node %d dropped (%r)", self.node_id, exc)

    async def close(self) -> None:
        task = self._reader_task
        self._fail(ConnectionError("closed"))
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


def _decode(api_key: int, version: int, frame: bytes) -> Any:
    schema = response_schema(api_key, version)
    position = 4
    if schema.__flexible__ and api_key != 18:  # ApiVersions keeps header v0
        position = skip_tagged_fields(frame, position)
    body, _ = read_entity_lenient(schema, frame, position)
    return body


class Peers:
    """A connection per peer broker, found in the registry's live brokers."""

    def __init__(
        self,
        brokers: Callable[[], list[BrokerRecord]],
        security: PeerSecurity | None,
        node_id: int,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._brokers = brokers
        self._security = security  # None: no inter-broker listener (calls fail)
        self._client_id = f"broker-{node_id}"
        self._connections: dict[int, PeerConnection] = {}

    def endpoint(self, node_id: int) -> tuple[str, int] | None:
        if self._security is None:
            return None
        for broker in self._brokers():
            if broker.node_id == node_id and broker.bound:  # (port 0: not yet bound)
                found = broker.endpoint(self._security.login.listener)
                return (found.host, found.port) if found is not None else None
        return None

    async def request(
        self,
        node_id: int,
        api_key: int,
        version: int,
        response_bytes_max: int = limits.PEER_RESPONSE_BYTES_MAX,
        **fields: Any,
    ) -> Any:
        endpoint = self.endpoint(node_id)
        if endpoint is None:
            if self._security is None:
                raise PeerUnavailable(
                    f"node {node_id}: no inter-broker listener (no PLAINTEXT listener; set"
                    " inter.broker.listener.name)"
                )
            raise PeerUnavailable(
                f"node {node_id} is not a live broker with a {self._security.login.listener}"
                " listener (inter.broker.listener.name)"
            )
        connection = self._connections.get(node_id)
        if connection is None:
            connection = self._connections[node_id] = PeerConnection(
                node_id, self._client_id, self._clock, self._security
            )
        return await connection.request(endpoint, api_key, version, response_bytes_max, **fields)

    async def close(self) -> None:
        for connection in self._connections.values():
            await connection.close()
        self._connections.clear()
