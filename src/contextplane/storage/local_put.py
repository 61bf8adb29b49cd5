"""A `file://` object written from its parts, durably, with GIL-free system calls.

obstore's LocalStore takes one buffer (joining the parts would copy the whole object on
the caller's thread) and renames its temporary file without fsync. Here, in a worker
thread: `os.writev` of the parts to a temporary file beside the object, `fsync`, rename
over the key, `fsync` of the directory. Readers (obstore's LocalStore) see the object
whole or not at all; a crash leaves at most a temporary file, which the orphan sweep
removes like any object no commit names.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

# writev takes at most this many buffers per call (Linux: 1024).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
TEMPORARY_SUFFIX = ".part"


def write_parts_durably(path: Path, parts: Sequence[bytes | memoryview]) -> None:
    """Write `parts` in order as the file `path` (blocking: run it in a worker thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    unique = f"{os.getpid()}-{threading.get_ident()}"
    temporary = path.with_name(f"{path.name}.{unique}{TEMPORARY_SUFFIX}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            writev_all(fd, parts)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def writev_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write every byte of `parts`, `_IOV_MAX` buffers per call, resuming short writes
    (a view is made only of a part written in half: no per-part objects)."""
    pending = [part for part in parts if len(part)]
    index = 0
    while index < len(pending):
        written = os.writev(fd, pending[index : index + _IOV_MAX])
        while written:
            size = len(pending[index])
            if written >= size:
                written -= size
                index += 1
            else:
                pending[index] = memoryview(pending[index])[written:]
                written = 0
