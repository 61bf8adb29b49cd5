"""`writev_all` writes every part in order through short writes and the iovec limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from contextplane.storage import local_put


def test_short_writes_and_many_buffers_write_every_byte_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[bytes | memoryview]) -> int:
        calls.append(len(buffers))
        # At most 1,000 bytes a call: parts are cut in the middle.
        taken, budget = [], 1000
        for buffer in buffers:
            if budget <= 0:
                break
            taken.append(memoryview(buffer)[:budget])
            budget -= len(taken[-1])
        return real_writev(fd, taken)

    monkeypatch.setattr(local_put.os, "writev", short_writev)
    monkeypatch.setattr(local_put, "_IOV_MAX", 7)
    parts: list[bytes | memoryview] = [os.urandom(n % 333) for n in range(300)]
    parts[5] = memoryview(parts[5])
    path = tmp_path / "objects" / "x.obj"
    local_put.write_parts_durably(path, parts)
    assert path.read_bytes() == b"".join(parts)
    assert max(calls) <= 7
    assert [p.name for p in path.parent.iterdir()] == ["x.obj"]
