"""Capture the golden request frames in tests/protocol/golden/ from real clients.

    .venv/bin/python -m tests.protocol.capture [--out DIR] [--clients librdkafka,java]

A broker (tests/support/broker.py) runs behind a loopback relay and advertises the
relay's port, so every connection a client opens (bootstrap, then the leader and the
group coordinator) goes through it. The relay keeps what each client sent, cut into
frames; for every (API, version) a client used, its first request is written whole, size
prefix included, as `{api}_request_v{N}_{client}.bin`. Each client creates a topic,
produces three records to it and reads them back in a consumer group (JoinGroup,
SyncGroup, OffsetFetch, Fetch, OffsetCommit, LeaveGroup...).

The tests read the committed files and need no client; re-running this replaces them
with new bytes (timestamps, correlation ids and client versions differ), and
test_golden_frames.py's table must then be checked against the new names.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema

from harness import java_client
from tests.support.broker import BrokerProcess, free_port

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
TOPIC = "golden"
RECORDS = 3
CLIENT_DEADLINE_S = 60.0


class Relay:
    """A loopback TCP relay that records every byte each client connection sends."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sent: list[bytearray] = []  # one per connection, in accept order
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            record = bytearray()
            with self._lock:
                self._sent.append(record)
            threading.Thread(
                target=self._pump, args=(client, upstream, record), daemon=True
            ).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bytearray | None) -> None:
        try:
            while chunk := source.recv(65536):
                if record is not None:
                    with self._lock:
                        record += chunk
                sink.sendall(chunk)
        except OSError:
            pass  # either side closed: the finally closes the other
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def take(self) -> list[bytes]:
        """The bytes each connection sent since the last call (connections in order)."""
        with self._lock:
            taken = [bytes(record) for record in self._sent]
            self._sent = []
        return taken

    def close(self) -> None:
        self._closed = True
        self.listener.close()


def frames(stream: bytes) -> list[bytes]:
    """Whole frames, size prefix included; a trailing partial frame is dropped."""
    out: list[bytes] = []
    position = 0
    while position + 4 <= len(stream):
        (size,) = struct.unpack_from(">i", stream, position)
        end = position + 4 + size
        if end > len(stream):
            break
        out.append(stream[position:end])
        position = end
    return out


def api_file_name(api_key: int, version: int, client: str) -> str | None:
    """`{api}_request_v{N}_{client}.bin` from kio's schema name, None for unknown APIs."""
    try:
        schema = load_request_schema(api_key, version)
    except (UnknownAPIKey, UnknownEntity):
        return None
    name = schema.__name__.removesuffix("Request")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return f"{snake}_request_v{version}_{client}.bin"


def first_frames(streams: list[bytes], client: str) -> dict[str, bytes]:
    """The first frame of each (API, version) over the connections, by file name."""
    chosen: dict[str, bytes] = {}
    for stream in streams:
        for frame in frames(stream):
            api_key, version = struct.unpack_from(">hh", frame, 4)
            name = api_file_name(api_key, version, client)
            if name is not None and name not in chosen:
                chosen[name] = frame
    return chosen


# -- the clients ---------------------------------------------------------------------------


def run_librdkafka(bootstrap: str, topic: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(CLIENT_DEADLINE_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(RECORDS):
        producer.produce(topic, value=f"value-{i}".encode(), key=f"key-{i}".encode())
    if producer.flush(CLIENT_DEADLINE_S):
        raise RuntimeError("librdkafka: records not acknowledged")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received = 0
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    while received < RECORDS and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    if received < RECORDS:
        raise RuntimeError(f"librdkafka: {received} of {RECORDS} records read")


def run_kafka_python(bootstrap: str, topic: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for i in range(RECORDS):
        producer.send(topic, value=f"value-{i}".encode(), key=f"key-{i}".encode())
    producer.flush(CLIENT_DEADLINE_S)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received = 0
    deadline = time.monotonic() + CLIENT_DEADLINE_S
    while received < RECORDS and time.monotonic() < deadline:
        received += sum(len(batch) for batch in consumer.poll(500).values())
    consumer.commit()
    consumer.close()
    if received < RECORDS:
        raise RuntimeError(f"kafka-python: {received} of {RECORDS} records read")


def run_aiokafka(bootstrap: str, topic: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def main() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        for i in range(RECORDS):
            await producer.send(topic, value=f"value-{i}".encode(), key=f"key-{i}".encode())
        await producer.flush()
        await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        received = 0
        deadline = time.monotonic() + CLIENT_DEADLINE_S
        while received < RECORDS and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += sum(len(batch) for batch in batches.values())
        await consumer.commit()
        await consumer.stop()
        return received

    received = asyncio.run(main())
    if received < RECORDS:
        raise RuntimeError(f"aiokafka: {received} of {RECORDS} records read")


def run_java(bootstrap: str, topic: str) -> None:
    timeout = CLIENT_DEADLINE_S * 2
    java_client.run(
        ["admin", "--bootstrap", bootstrap, "create-topic", topic, "1"], timeout, check=True
    )
    java_client.run(
        ["produce", "--bootstrap", bootstrap, "--topic", topic, "--count", str(RECORDS)],
        timeout,
        check=True,
    )
    java_client.run(
        [
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--group",
            f"{topic}-group",
            "--count",
            str(RECORDS),
            "--offset-reset",
            "earliest",
        ],
        timeout,
        check=True,
    )


CLIENTS: dict[str, Callable[[str, str], None]] = {
    "librdkafka": run_librdkafka,
    "kafka-python": run_kafka_python,
    "aiokafka": run_aiokafka,
    "java": run_java,
}


def capture(clients: list[str], out: Path) -> dict[str, bytes]:
    """Run each client through the relay; write and return its first frames."""
    captured: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="golden-capture-") as tmp:
        broker_port = free_port()
        relay = Relay(broker_port)
        broker = BrokerProcess(
            Path(tmp) / "data", port=broker_port, settings={"advertised.port": str(relay.port)}
        ).start()
        try:
            for client in clients:
                relay.take()
                CLIENTS[client](f"127.0.0.1:{relay.port}", f"{TOPIC}-{client}")
                captured.update(first_frames(relay.take(), client.replace("-", "_")))
        finally:
            broker.stop()
            relay.close()
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in sorted(captured.items()):
        (out / name).write_bytes(frame)
    return captured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args(argv)
    clients = [c for c in args.clients.split(",") if c]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {sorted(unknown)}")
    captured = capture(clients, args.out)
    for name, frame in sorted(captured.items()):
        print(f"{len(frame):7d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
