"""glibc malloc's settings for the broker process: two arenas, large blocks mapped.

The memory budget counts the bytes the broker holds; RSS is what the allocator keeps
for them. Two glibc defaults let the two drift apart under load (RFC 0003 slice 8):

* every thread that allocates gets an arena of its own, up to 8 × cores. The read
  lane, the object workers, the frame decoders and obstore's runtime are threads (25–30
  during a cold read of 1,000 partitions), and each arena keeps the freed chunks of the
  buffers that passed through it. Two arenas (`M_ARENA_MAX`) share those chunks.
* a block of 128 KiB or more is mapped and unmapped on free, but freeing one raises
  the threshold to its size (up to 32 MiB), so after the first 8 MiB object part every
  later one comes from an arena heap, where a single live chunk above freed ones keeps
  them all resident. A fixed `M_MMAP_THRESHOLD` (1 MiB) keeps large blocks mapped:
  freed, they leave RSS at once.

Measured with the standard profile's partitions load (1,000 partitions, 512 MiB, a clean
stop, the cold read back), file://: the read's peak RSS 303 → 214 MiB; once the read
ends 280 → 129 MiB.

Settings given in the environment (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
`GLIBC_TUNABLES`) win: nothing is changed then. Other C libraries: nothing is changed.
"""

from __future__ import annotations

import ctypes
import os

# mallopt parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENA_MAX = 2
# Fixed, no longer raised by frees. Blocks below it (batches, most frames) stay in the
# arenas, where reuse is cheap; object parts and large frames are mapped (a mapping
# costs its page faults: ~2,000 for an 8 MiB part, small beside reading it).
MMAP_THRESHOLD_BYTES = 1024 * 1024

_ENVIRONMENT_SETTINGS = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def apply(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Set the arena count and a fixed mmap threshold; True if glibc took both.

    Call before the process starts threads: a thread keeps the arena it was given."""
    if any(name in environ for name in _ENVIRONMENT_SETTINGS):
        return False
    libc = _glibc()
    if libc is None:
        return False
    arenas = libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
    threshold = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    return bool(arenas and threshold)


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: no library search
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has mallopt as a stub)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
