"""Disk space set aside for the metadata store, so uploads can drain a full disk.

When the disk is full, the only way to free it is to upload WAL data and trim the WAL,
and an upload ends with a metadata commit, which needs disk (SQLite's WAL journal grows,
and after a restart its -wal and -shm files must be created again). So the broker keeps
a preallocated file of `metadata.reserved.bytes` beside the database: when a metadata
write fails for lack of space (or the broker starts on a nearly full disk) the file is
deleted and the write retried in the space it held. It is allocated again once the
disk has room, and produce stays refused until it is (see storage/admission.py), so the
WAL cannot take the space back first.

A disk that is still full when the broker stops would leave the next start nothing to
release: so a stop allocates what it can of a missing reserve (`hold_what_fits`) from the
space free at that moment (SQLite's files just closed, WAL segments trimmed while
produce was refused), before anything else on the volume takes it.

(Pre-growing SQLite's own files was the alternative; it does not survive a restart:
SQLite deletes the -wal file when the last connection closes, and the next start has to
create it again.)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
_SMALLEST_HELD_BYTES = 64 * 1024  # below this a partial reserve is not worth a file


class SpaceReserve:
    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes

    @property
    def present(self) -> bool:
        if self.size_bytes <= 0:
            return True
        try:
            return self.path.stat().st_size >= self.size_bytes
        except FileNotFoundError:
            return False

    def ensure(self) -> bool:
        """Allocate the reserve if it is missing; False if the disk has no room for it."""
        if self.present:
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, self.size_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            log.debug("metadata space reserve not allocated yet: %s", exc)
            return False
        log.info("metadata space reserve of %d bytes allocated", self.size_bytes)
        return True

    def release(self) -> bool:
        """Give the reserved space back to the file system; False if there was none."""
        if self.size_bytes <= 0 or not self.path.exists():
            return False
        self.path.unlink(missing_ok=True)
        log.warning("disk full: released %d reserved bytes for the metadata store", self.size_bytes)
        return True

    def hold_what_fits(self) -> int:
        """Allocate as much of a missing reserve as the disk has room for (a stop frees
        SQLite's files on a full disk: this keeps that space); the bytes held."""
        if self.size_bytes <= 0 or self.present:
            return 0
        size = self.size_bytes
        while size >= _SMALLEST_HELD_BYTES:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    os.ftruncate(fd, 0)
                    os.posix_fallocate(fd, 0, size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                size //= 2
                continue
            log.info("kept %d bytes of the metadata space reserve across the stop", size)
            return size
        self.path.unlink(missing_ok=True)
        return 0
