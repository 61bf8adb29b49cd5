"""Helpers for adversarial tests against a real broker process.

Storage faults: a small tmpfs, a disk filler, the broker's memory figures, and reading
a topic back against the acknowledgements.

Hostile produce requests (bombs, poison pills): what every such test checks around the
bytes it sends: the broker stays up, another connection is answered within a liveness
bound the whole time, its memory stays under a bound, nothing acknowledged is lost, and
a real consumer reads every valid record past the rejected ones."""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import struct
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cramjam
import crc32c
from confluent_kafka import Consumer, TopicPartition

from conformance import wire
from tests.support.broker import BrokerProcess
from tests.support.rawclient import RawClient

MIB = 1024 * 1024


@contextlib.contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted at `path` (root only), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(directory: Path, between: Callable[[], None] | None = None) -> Path:
    """Write a file until the file system is full (ENOSPC even for one byte); returns
    it. `between` runs after every full-size block (to keep producing while the disk
    fills up). Blocks shrink near the end and grow back when the broker frees space
    (WAL segments trimmed after an upload), so a moving target is filled quickly."""
    filler = directory / f"filler-{uuid.uuid4().hex[:8]}"
    largest = 256 * 1024
    zeros = b"\0" * largest
    size = largest
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                written = os.write(fd, zeros[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if size == 1:
                    break
                size //= 2
                continue
            if written == size == largest and between is not None:
                between()
            size = min(size * 2, largest) if written == size else max(1, size // 2)
    finally:
        os.close(fd)
    return filler


def proc_status_kib(pid: int, field: str) -> int:
    """VmRSS / VmHWM of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def read_partitions(
    bootstrap: str, topic: str, partitions: int, timeout_s: float = 60
) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition from offset 0 to the high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verifier-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "fetch.max.bytes": 8 * MIB,
        }
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
            for p in range(partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        logs: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout_s
        while any(len(logs[p]) < ends[p] for p in logs):
            assert time.monotonic() < deadline, (
                f"read timed out: {[(p, len(logs[p]), ends[p]) for p in logs]}"
            )
            for message in consumer.consume(2000, 0.5):
                assert message.error() is None, message.error()
                logs[message.partition()].append((message.offset(), message.key()))
    finally:
        consumer.close()
    return logs


def assert_acknowledged_exactly_once(
    logs: dict[int, list[tuple[int, bytes]]], acked: dict[bytes, tuple[int, int]]
) -> None:
    """Offsets dense from 0; every acknowledged key once, at its acknowledged offset."""
    for partition, records in logs.items():
        assert [o for o, _ in records] == list(range(len(records))), f"gap in {partition}"
    counts = Counter(key for records in logs.values() for _, key in records)
    duplicated = [k for k, n in counts.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} keys twice, e.g. {duplicated[:3]}"
    located = {key: (p, o) for p, records in logs.items() for o, key in records}
    missing = [k for k in acked if k not in located]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    moved = [k for k in acked if located[k] != acked[k]]
    assert not moved, f"{len(moved)} records not at their acknowledged offset: {moved[:3]}"


# Liveness bounds, not performance claims: a broker that answers at all answers far
# sooner; the code before bounded validation stalled for seconds or died.
PROBE_ANSWER_S = 5.0
# Growth of the broker's peak RSS (VmHWM) over one test. Decompression is streamed, so
# a bomb costs a few chunks and codec buffers per validation thread, never its size.
RSS_GROWTH_MAX_MIB = 192


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM over from the current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def create_topic(client: RawClient, topic: str, **configs: str) -> None:
    result = wire.create_topic(client, topic, 1, **configs)
    assert result.error_code == 0, result
    assert wire.wait_for_topic(client, topic, 1)


def produce(client: RawClient, topic: str, batch: bytes) -> tuple[int, int]:
    """(error code, base offset) of one batch to partition 0."""
    part = wire.produce(client, topic, batch)
    return int(part.error_code), int(part.base_offset)


def batch_around(payload: bytes, count: int, codec: int, timestamp_ms: int | None = None) -> bytes:
    """A v2 batch with a valid CRC around an already-compressed `payload`."""
    timestamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    after_crc = (
        struct.pack(">hiqqqhii", codec, count - 1, timestamp, timestamp, -1, -1, -1, count)
        + payload
    )
    head = struct.pack(">qiib", 0, 4 + 1 + 4 + len(after_crc), -1, 2)
    return head + struct.pack(">I", crc32c.crc32c(after_crc)) + after_crc


def compress(codec: str, payload: bytes) -> bytes:
    """`payload` compressed as real clients frame it (xerial snappy, LZ4 frame)."""
    if codec == "gzip":
        return gzip.compress(payload)
    if codec == "snappy":
        return wire._xerial_snappy(payload)
    if codec == "lz4":
        compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
        compressor.compress(payload)
        return bytes(compressor.finish())
    if codec == "zstd":
        return bytes(cramjam.zstd.compress(payload))
    return payload


@dataclass
class Probe:
    """Another client, asking the broker something the whole time: ApiVersions and a
    small lz4 produce, alternately, each timed."""

    broker: BrokerProcess
    topic: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    peak_rss_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        pid = self.broker.process.pid  # type: ignore[union-attr]
        client = RawClient(self.broker.bootstrap, "probe")
        client.sock.settimeout(PROBE_ANSWER_S * 4)
        try:
            turn = 0
            while not self._stop.is_set():
                started = time.monotonic()
                if turn % 2:
                    batch = wire.encode_batch([b"probe"], compression="lz4")
                    error, _ = produce(client, self.topic, batch)
                    if error:
                        self.failures.append(f"probe produce answered error {error}")
                else:
                    wire.api_versions(client)
                self.latencies.append(time.monotonic() - started)
                self.peak_rss_kib = max(self.peak_rss_kib, proc_status_kib(pid, "VmRSS"))
                turn += 1
                self._stop.wait(0.02)
        except Exception as exc:  # noqa: BLE001 - any failure of the probe is the finding
            self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Probe]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(PROBE_ANSWER_S * 5)


def consume_values(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
    """Values of partition 0 from offset 0 as confluent-kafka (librdkafka) reads them,
    until `expected` arrive or the deadline passes; errors it reports fail the test."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"hostile-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list = []
    errors: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(values) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    errors.append(message.error())
                else:
                    values.append(message.value())
    finally:
        consumer.close()
    assert not errors, errors
    return values


def hostile_round(
    broker: BrokerProcess,
    topic: str,
    attacks: list[tuple[str, bytes, set[int]]],
    *,
    connections: int = 1,
) -> Probe:
    """Good records, then each attack (name, batch, acceptable error codes) sent from
    `connections` connections at once with good records in between, while a probe runs.

    Asserts everything the module docstring lists; returns the probe for more checks.
    """
    assert broker.process is not None
    pid = broker.process.pid
    client = RawClient(broker.bootstrap, "hostile")
    create_topic(client, topic)
    probe_topic = f"{topic}-probe"
    create_topic(client, probe_topic)
    expected = [b"before"]
    assert produce(client, topic, wire.encode_batch(expected))[0] == 0
    reset_peak_rss(pid)
    start_kib = proc_status_kib(pid, "VmRSS")
    probe = Probe(broker, probe_topic)
    with probe.running():
        for name, batch, codes in attacks:
            answers = send_from(broker, topic, batch, connections)
            for answer in answers:
                assert answer in codes, f"{name}: answered {answer}, expected one of {codes}"
            good = f"after {name}".encode()
            assert produce(client, topic, wire.encode_batch([good]))[0] == 0, name
            expected.append(good)
    client.close()
    assert broker.process.poll() is None, f"broker died:\n{broker.log_tail()}"
    assert not probe.failures, probe.failures
    assert probe.latencies, "the probe never got an answer"
    assert max(probe.latencies) < PROBE_ANSWER_S, f"probe waited {max(probe.latencies):.2f}s"
    growth_mib = (proc_status_kib(pid, "VmHWM") - start_kib) / 1024
    assert growth_mib < RSS_GROWTH_MAX_MIB, f"peak RSS grew by {growth_mib:.0f} MiB"
    assert consume_values(broker.bootstrap, topic, len(expected)) == expected
    return probe


def send_from(broker: BrokerProcess, topic: str, batch: bytes, connections: int) -> list[int]:
    """Send `batch` from several connections at once; each one's error code (or -999 if
    the broker closed that connection)."""
    answers: list[int] = []

    def send() -> None:
        with RawClient(broker.bootstrap, "attacker") as client:
            client.sock.settimeout(120)
            try:
                answers.append(produce(client, topic, batch)[0])
            except (ConnectionError, OSError):
                answers.append(-999)

    threads = [threading.Thread(target=send) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return answers


Attack = tuple[str, bytes, set[int]]
BatchFactory = Callable[[], bytes]
