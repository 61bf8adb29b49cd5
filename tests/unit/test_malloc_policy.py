"""The broker's glibc malloc settings (`broker/malloc_policy.py`), observed through
glibc's own `malloc_info` in a fresh interpreter, with and without the policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from contextplane.broker import malloc_policy

# Runs in a fresh interpreter: a thread keeps its arena, so the policy must come first.
_PROBE = r"""
import ctypes, json, re, sys, threading
from contextplane.broker import malloc_policy

applied = malloc_policy.apply() if sys.argv[1] == "on" else False
libc = ctypes.CDLL(None)

def info():
    size = ctypes.c_size_t()
    buf = ctypes.c_char_p()
    stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    return ctypes.string_at(buf, size.value).decode()

libc.open_memstream.restype = ctypes.c_void_p
def mapped_blocks():
    return int(re.search(r'<total type="mmap" count="(\d+)"', info()).group(1))

# A freed 4 MiB block raises glibc's default mmap threshold to 4 MiB ...
block = bytearray(4 << 20)
del block
# ... so this 2 MiB block comes from an arena heap by default, mapped under the policy.
before = mapped_blocks()
kept = bytearray(2 << 20)
mmapped = mapped_blocks() - before

ready = threading.Barrier(9)
def allocate():
    data = [bytes(1000) for _ in range(1000)]  # small blocks: from the thread's arena
    ready.wait()
    ready.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for t in threads:
    t.start()
ready.wait()
heaps = len(re.findall(r'<heap nr=', info()))
ready.wait()
for t in threads:
    t.join()
print(json.dumps({"applied": applied, "mmapped": mmapped, "heaps": heaps}))
"""


def _probe(mode: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in malloc_policy._ENVIRONMENT_SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or malloc_policy._glibc() is None, reason="glibc only"
)


def test_two_arenas_and_large_blocks_mapped() -> None:
    default, policy = _probe("off"), _probe("on")
    # The control shows each effect exists without the policy.
    assert default["heaps"] > malloc_policy.ARENA_MAX
    assert default["mmapped"] == 0
    assert policy["applied"] is True
    assert policy["heaps"] <= malloc_policy.ARENA_MAX
    assert policy["mmapped"] == 1


def test_environment_settings_win() -> None:
    assert malloc_policy.apply({"MALLOC_ARENA_MAX": "4"}) is False
    assert malloc_policy.apply({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}) is False
