"""Snapshots of the context service's store, the starting points of point-in-time reads
(RFC 0006 §1, "Point in time").

A snapshot is a consistent copy of the local store (`LocalStore.copy_to`: entities and
the source positions they reflect, from one read transaction), taken on its own thread
once the sources advanced `every_records` offsets past the newest snapshot. Files live in
`<data dir>/snapshots/`, named by the sum of their positions; the newest `kept` stay.
They only shorten the log an `as_of` read folds: losing them (a new machine) makes reads
slower or, where retention deleted the log, refused, never different.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from contextplane.services.context.freshness import Position, TopicPartition
from contextplane.services.context.store import LocalStore, read_copy

log = logging.getLogger("contextplane.context")

# How often the snapshot thread compares the store's positions with the newest snapshot.
CHECK_S = 1.0
# After a snapshot failed (a full disk), the next attempt waits this long.
FAILED_PAUSE_S = 60.0
_SUFFIX = ".db"
_PARTIAL = ".partial"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    positions: dict[TopicPartition, Position]

    @property
    def total(self) -> int:
        return sum(at.position for at in self.positions.values())


@dataclass(frozen=True)
class SnapshotRead:
    """An entity as a snapshot holds it, and the positions of the snapshot."""

    raw: bytes | None
    positions: dict[TopicPartition, Position]


class Snapshots:
    """The snapshots on disk. Reading one and deleting one take the same lock, so a
    snapshot chosen by a read is never deleted under it."""

    def __init__(self, directory: Path, kept: int) -> None:
        self._dir = directory
        self._kept = kept
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        for partial in directory.glob(f"*{_PARTIAL}"):  # a copy a crash interrupted
            partial.unlink()
        found = []
        for path in sorted(directory.glob(f"snapshot-*{_SUFFIX}")):
            try:
                _, positions = read_copy(path, "", "")
            except Exception as exc:  # noqa: BLE001 - an unreadable copy is only dropped
                log.warning("dropping snapshot %s: %s", path.name, exc)
                path.unlink()
                continue
            found.append(Snapshot(path, positions))
        self._snapshots = sorted(found, key=lambda snapshot: snapshot.total)

    def newest(self) -> Snapshot | None:
        with self._lock:
            return self._snapshots[-1] if self._snapshots else None

    def all(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snapshots)

    def take(self, store: LocalStore) -> Snapshot:
        """Copy the store, name the copy by its positions, keep the newest `kept`."""
        partial = self._dir / f"snapshot{_PARTIAL}"
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        store.copy_to(partial)
        _, positions = read_copy(partial, "", "")
        total = sum(at.position for at in positions.values())
        snapshot = Snapshot(self._dir / f"snapshot-{total:020d}{_SUFFIX}", positions)
        partial.rename(snapshot.path)
        with self._lock:
            self._snapshots = [s for s in self._snapshots if s.path != snapshot.path]
            self._snapshots.append(snapshot)
            self._snapshots.sort(key=lambda s: s.total)
            dropped, self._snapshots = (
                self._snapshots[: -self._kept],
                self._snapshots[-self._kept :],
            )
            for old in dropped:
                old.path.unlink(missing_ok=True)
        return snapshot

    def read(
        self, view: str, entity: str, usable: list[Snapshot]
    ) -> tuple[Snapshot, SnapshotRead] | None:
        """The entity from the newest of `usable` still on disk (None when none is)."""
        with self._lock:
            present = {s.path for s in self._snapshots}
            for snapshot in sorted(usable, key=lambda s: s.total, reverse=True):
                if snapshot.path in present:
                    raw, positions = read_copy(snapshot.path, view, entity)
                    return snapshot, SnapshotRead(raw, positions)
        return None


class Snapshotter:
    """The thread that takes a snapshot every `every_records` source offsets."""

    def __init__(self, snapshots: Snapshots, store_path: Path, every_records: int) -> None:
        self._snapshots = snapshots
        self._store_path = store_path
        self._every = every_records
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="context-snapshots", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        store = LocalStore(self._store_path)
        pause_s = CHECK_S
        try:
            while not self._stopping.wait(pause_s):
                pause_s = CHECK_S
                newest = self._snapshots.newest()
                done = 0 if newest is None else newest.total
                applied = sum(at.position for at in store.positions().values())
                if applied - done < self._every:
                    continue
                try:
                    snapshot = self._snapshots.take(store)
                except Exception:  # a full disk: reads go on from older snapshots or the log
                    log.exception("taking a snapshot failed; trying again in %g s", FAILED_PAUSE_S)
                    pause_s = FAILED_PAUSE_S
                    continue
                log.info("snapshot %s taken", snapshot.path.name)
        finally:
            store.close()

    def stop(self, timeout_s: float) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
