"""The orphan sweep: objects in the store that the metadata store does not know.

An upload PUTs its object, then commits its ranges; a crash (kill -9, power loss) between
the two leaves an object nothing references and nothing queued for deletion. So do the
cleaner's and object compaction's rewritten objects when a crash comes before the swap.
The sweep lists the store (`objects/`, in pages of at most `ORPHAN_SWEEP_PAGE_KEYS`), at
start and every `object.store.orphan.sweep.interval.ms`, and deletes an object only when
all of these hold:

1. it is not in flight in this broker (`InFlightKeys`: the uploader, the cleaner and the
   object compactor hold a key from before its PUT until its commit or swap returned,
   whatever the outcome);
2. the metadata store, asked after (1) was checked, knows it neither as a referenced
   object nor as one queued for deletion;
3. the store dated it at least `object.store.orphan.min.age.ms` ago.

The zone writes' proxy objects (`zone-router/`) need only (3): nothing references them.

(1) and (2) alone make the sweep safe for this broker's own uploads: a listed key was
PUT, so it was registered before the PUT; if it is no longer registered when the sweep
looks, its commit has returned, and the metadata query made afterwards (on the same
serialised store) sees the commit if there was one. (3) is the margin for what this
process cannot see: the store's clock dates objects, and an hour (the default) is far
beyond any clock difference between store and broker and any upload of another process
sharing the store (a PUT is bounded by `object.store.request.timeout.ms`, 10 s by
default, and its commit follows at once).
"""

from __future__ import annotations

import asyncio
import logging

from contextplane.clock import Clock
from contextplane.limits import ORPHAN_SWEEP_PAGE_KEYS
from contextplane.metadata.store import MetadataStore
from contextplane.settings import Settings
from contextplane.storage.objectstore import ObjectStore

log = logging.getLogger(__name__)

OBJECTS_PREFIX = "objects/"
# The zone writes' proxy objects (cluster/zone_router.py): deleted by their writer once
# every leader has read them, never referenced by the metadata store; one a crash left
# behind is deleted here once older than the minimum age (its round took seconds).
ZONE_ROUTER_PREFIX = "zone-router/"


class InFlightKeys:
    """Keys whose PUT may have happened and whose commit's outcome is not known yet (a
    commit whose call failed is retried with its key)."""

    def __init__(self) -> None:
        self._keys: set[str] = set()

    def add(self, key: str) -> None:
        self._keys.add(key)

    def discard(self, key: str) -> None:
        self._keys.discard(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


class OrphanSweep:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataStore,
        objects: ObjectStore,
        clock: Clock,
        in_flight: InFlightKeys,
        page_keys: int = ORPHAN_SWEEP_PAGE_KEYS,
    ) -> None:
        self._settings = settings
        self._metadata = metadata
        self._objects = objects
        self._clock = clock
        self._in_flight = in_flight
        self._page_keys = page_keys
        self.deleted = 0
        self.passes = 0

    async def run(self) -> None:
        """Sweep at start, then every `object.store.orphan.sweep.interval.ms`."""
        while True:
            try:
                deleted = await self.sweep()
                if deleted:
                    log.info("orphan sweep: deleted %d objects no metadata references", deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("orphan sweep failed: %s", exc)
            await asyncio.sleep(self._settings.object_store_orphan_sweep_interval_ms / 1000)

    async def sweep(self) -> int:
        """One pass over the store; returns how many objects it deleted."""
        cutoff_ms = self._clock.wall_ms() - self._settings.object_store_orphan_min_age_ms
        deleted = 0
        async for page in self._objects.list_pages(OBJECTS_PREFIX, self._page_keys):
            # In flight is checked before the metadata query, never after (module doc).
            candidates = [
                info.key
                for info in page
                if info.modified_ms <= cutoff_ms and info.key not in self._in_flight
            ]
            if not candidates:
                continue
            known = await self._metadata.known_objects(candidates)
            for key in candidates:
                if key not in known:
                    await self._objects.delete(key)
                    deleted += 1
        async for page in self._objects.list_pages(ZONE_ROUTER_PREFIX, self._page_keys):
            for info in page:
                if info.modified_ms <= cutoff_ms:
                    await self._objects.delete(info.key)
                    deleted += 1
        self.deleted += deleted
        self.passes += 1
        return deleted
