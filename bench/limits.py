"""The machine's own limits, measured in the same run as the brokers.

- sequential write bandwidth with fdatasync: 4 MiB appends, each followed by fdatasync
  (and the same with 1 MiB appends, for reference);
- fdatasync latency for 64 KiB appends (write + fdatasync, as a WAL group commit does);
- sequential read bandwidth of a file evicted from the page cache (posix_fadvise DONTNEED);
- loopback TCP bandwidth: one sender and one receiver thread, 1 MiB send/recv calls.

All files go under the directory given (the same filesystem the brokers write to).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from bench.stats import percentile

MB = 1_000_000


def evict_file(path: Path) -> None:
    """Write back and drop a file's pages from the page cache (nothing else is touched)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def evict_tree(root: Path) -> int:
    """Evict every regular file under `root`; returns the bytes covered."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                total += path.stat().st_size
            except OSError:
                continue
            evict_file(path)
    return total


def seq_write_fdatasync(directory: Path, total: int, chunk: int) -> float:
    """MB/s writing `total` bytes in `chunk`-sized appends, fdatasync after each."""
    path = directory / f"seqwrite-{chunk}.bin"
    buf = os.urandom(chunk)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        t0 = time.perf_counter()
        written = 0
        while written < total:
            view = memoryview(buf)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
            written += chunk
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
    return written / seconds / MB


def seq_read_uncached(path: Path, chunk: int = 4 * 1024 * 1024) -> float:
    evict_file(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        total = 0
        while True:
            data = os.read(fd, chunk)
            if not data:
                break
            total += len(data)
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
    return total / seconds / MB


def fdatasync_latency(directory: Path, count: int, size: int = 64 * 1024) -> dict[str, float]:
    """Latency (ms) of `count` 64 KiB appends, each write + fdatasync."""
    path = directory / "fsync-latency.bin"
    buf = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    samples: list[float] = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, buf)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    samples.sort()
    return {
        "p50_ms": percentile(samples, 50),
        "p99_ms": percentile(samples, 99),
        "p999_ms": percentile(samples, 99.9),
        "count": count,
    }


def loopback_tcp(total: int, chunk: int = 1024 * 1024) -> float:
    """MB/s through one loopback TCP connection (sender and receiver threads)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    received = [0]

    def receive() -> None:
        conn, _ = server.accept()
        buf = bytearray(chunk)
        with conn:
            while True:
                n = conn.recv_into(buf)
                if not n:
                    break
                received[0] += n

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    payload = os.urandom(chunk)
    client = socket.create_connection(("127.0.0.1", port))
    t0 = time.perf_counter()
    sent = 0
    with client:
        while sent < total:
            client.sendall(payload)
            sent += chunk
        client.shutdown(socket.SHUT_WR)
        thread.join(120)
    seconds = time.perf_counter() - t0
    server.close()
    return received[0] / seconds / MB


def measure(directory: Path, write_bytes: int, fsyncs: int, tcp_bytes: int) -> dict[str, object]:
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    out: dict[str, object] = {}
    out["seq_write_fdatasync_4mib_MBps"] = seq_write_fdatasync(directory, write_bytes, 4 << 20)
    out["seq_read_uncached_MBps"] = seq_read_uncached(directory / f"seqwrite-{4 << 20}.bin")
    (directory / f"seqwrite-{4 << 20}.bin").unlink(missing_ok=True)
    out["seq_write_fdatasync_1mib_MBps"] = seq_write_fdatasync(directory, write_bytes, 1 << 20)
    (directory / f"seqwrite-{1 << 20}.bin").unlink(missing_ok=True)
    # The limit is the best the disk did with either append size.
    out["seq_write_fdatasync_MBps"] = max(
        out["seq_write_fdatasync_4mib_MBps"], out["seq_write_fdatasync_1mib_MBps"]
    )
    out["fdatasync_64kib"] = fdatasync_latency(directory, fsyncs)
    out["loopback_tcp_MBps"] = loopback_tcp(tcp_bytes)
    out["seconds"] = time.monotonic() - t0
    out["directory"] = str(directory)
    return out
