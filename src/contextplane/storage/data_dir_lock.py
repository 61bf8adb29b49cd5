"""One broker per data directory: Kafka's `.lock` file in each log directory. Two brokers
writing one WAL and one metadata store would corrupt both; the second refuses to start.
`contextplane cluster up --dir` holds one on its directory the same way: a second `up`
there would take the first one's PostgreSQL for a leftover and stop it.

The lock is an exclusive `flock` held for the broker's lifetime, so the operating system
drops it when the process dies, kill -9 included: a stale `.lock` file never blocks a
restart. `contextplane users` checks it too, since a running broker reads the store's
users only when it starts.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class DataDirInUse(OSError):
    """Another process holds the data directory's lock."""


class DataDirLock:
    def __init__(self, data_dir: Path, holder: str = "broker") -> None:
        self.path = data_dir / LOCK_NAME
        self._holder = holder  # what holds such a directory, for the refusal
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(
                f"the data directory {self.path.parent} is in use by another "
                f"{self._holder} (it holds {self.path}): stop that {self._holder} first"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def in_use(data_dir: Path) -> bool:
    """Does a running broker hold `data_dir`'s lock?"""
    try:
        fd = os.open(data_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
