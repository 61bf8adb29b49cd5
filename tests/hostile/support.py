"""Helpers for fault tests against a real broker process: a small tmpfs, a disk filler,
the broker's memory figures, and reading a topic back against the acknowledgements."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

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
