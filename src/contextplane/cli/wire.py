"""A blocking Kafka protocol client for what librdkafka does not expose: record batches
fetched as bytes, exactly as the source's log holds them (base offsets, CRCs, control
batches, aborted transactions), and contextplane's own MirrorAppend. Requests are kio's
entities (protocol/codec.py), one connection per broker, with TLS and SASL as
cli/wire_security.py sets them up.

Every response has one deadline, REQUEST_TIMEOUT_S from the request's sending, as
Kafka's clients have request.timeout.ms (a deadline per read alone let a broker trickle
a byte within each one for ever), and is bounded by RESPONSE_BYTES_MAX; a broker that
says otherwise is a WireError naming it.
"""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.serial import entity_reader, entity_writer

from contextplane.cli.wire_security import LoginRefused, Security
from contextplane.clock import SystemClock
from contextplane.protocol.build import build
from contextplane.protocol.codec import request_schema, response_schema
from contextplane.protocol.error_codes import ErrorCode

REQUEST_TIMEOUT_S = 30.0
RESPONSE_BYTES_MAX = 256 * 1024 * 1024
_API_VERSIONS = 18


def error_name(code: int) -> str:
    """Kafka's name of an error code, as the other commands print it."""
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"error {code}"


class WireError(Exception):
    """A broker could not be reached, or answered what no Kafka broker would."""


class BrokerConnection:
    def __init__(
        self,
        address: str,
        side: str = "",
        security: Security | None = None,
        client_id: str = "contextplane-mirror",
    ) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        # Which cluster the broker belongs to ("the source (host:port)"), so that an error
        # says which side of the mirror failed.
        self._side = side
        security = security or Security()
        try:
            sock = socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_S)
        except (OSError, ValueError) as exc:
            raise self._error(f"cannot connect to {address}: {exc}") from None
        try:
            self._sock = security.wrap(sock, host)
        except OSError as exc:  # ssl.SSLError among them
            sock.close()
            raise self._error(f"TLS with {address}: {exc}") from None
        self._client_id = client_id.encode()
        self._clock = SystemClock()
        self._correlation_id = 0
        try:
            security.login(self)
        except LoginRefused as exc:
            self.close()
            raise self._error(f"{address}: {exc}") from None

    def close(self) -> None:
        self._sock.close()

    def request(self, api_key: int, version: int, **fields: Any) -> Any:
        """One request's response entity."""
        schema = request_schema(api_key, version)
        body = build(schema, fields)
        self._correlation_id += 1
        head = struct.pack(">hhih", api_key, version, self._correlation_id, len(self._client_id))
        head += self._client_id + (b"\x00" if schema.__flexible__ else b"")
        buffer = io.BytesIO()
        entity_writer(schema)(buffer, body)
        payload = head + buffer.getvalue()
        deadline_ms = self._clock.monotonic_ms() + REQUEST_TIMEOUT_S * 1000
        try:
            self._sock.settimeout(REQUEST_TIMEOUT_S)
            self._sock.sendall(struct.pack(">i", len(payload)) + payload)
            (size,) = struct.unpack(">i", self._read(4, deadline_ms))
            if not 4 <= size <= RESPONSE_BYTES_MAX:
                raise self._error(f"{self.address} sent a response of {size} bytes")
            frame = self._read(size, deadline_ms)
        except TimeoutError:
            raise self._error(
                f"{self.address}: no complete answer within {REQUEST_TIMEOUT_S:g} s"
            ) from None
        except OSError as exc:
            raise self._error(f"{self.address}: {exc}") from None
        (correlation_id,) = struct.unpack_from(">i", frame, 0)
        if correlation_id != self._correlation_id:
            raise self._error(f"{self.address} answered another request ({correlation_id})")
        response = response_schema(api_key, version)
        position = 4
        if response.__flexible__ and api_key != _API_VERSIONS:  # ApiVersions: header v0
            position += 1  # no tagged fields in the response header
        try:
            return entity_reader(response)(frame, position)[0]
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the broker's
            raise self._error(f"{self.address} sent an unreadable response: {exc}") from None

    def _error(self, text: str) -> WireError:
        return WireError(f"{self._side}: {text}" if self._side else text)

    def _read(self, count: int, deadline_ms: float) -> bytes:
        chunks = []
        while count:
            left_ms = deadline_ms - self._clock.monotonic_ms()
            if left_ms <= 0:
                raise TimeoutError
            self._sock.settimeout(left_ms / 1000)
            chunk = self._sock.recv(min(count, 1 << 20))
            if not chunk:
                raise self._error(f"{self.address} closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)


class Cluster:
    """Connections to a cluster's brokers, found from its metadata; `side` ("source" or
    "target") names the cluster in every error."""

    def __init__(self, bootstrap: str, side: str = "", security: Security | None = None) -> None:
        self.bootstrap = bootstrap
        self.security = security or Security()
        self.side = f"the {side} ({bootstrap})" if side else ""
        self._connections: dict[str, BrokerConnection] = {}
        self._addresses: dict[int, str] = {}

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def connection(self, address: str) -> BrokerConnection:
        if address not in self._connections:
            self._connections[address] = BrokerConnection(address, self.side, self.security)
        return self._connections[address]

    def leaders(self, topics: list[str]) -> dict[tuple[str, int], str]:
        """Each partition's leader's address; WireError naming a topic the cluster lacks."""
        first = self.bootstrap.split(",")[0]
        answer = self.connection(first).request(
            3,
            12,
            topics=[{"name": t, "topic_id": None} for t in topics],
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )
        self._addresses = {b.node_id: f"{b.host}:{b.port}" for b in answer.brokers}
        leaders: dict[tuple[str, int], str] = {}
        for topic in answer.topics:
            if topic.error_code:
                raise WireError(
                    f"topic {topic.name} on {self.side or self.bootstrap}: "
                    f"{error_name(topic.error_code)}"
                )
            for partition in topic.partitions:
                address = self._addresses.get(partition.leader_id)
                if address is not None:
                    leaders[(topic.name, partition.partition_index)] = address
        return leaders
