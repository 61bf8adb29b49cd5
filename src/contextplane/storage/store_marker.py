"""Which cluster an object store belongs to: checked at every start, before any upload.

A broker given another store than its cluster's (a typo in `object.store.url`, another
cluster's bucket) would otherwise start, upload its WAL there, commit ranges the other
brokers cannot read and, worse, share a prefix with another cluster whose orphan sweep
deletes every object its own metadata does not know. So the store carries a marker, the
empty object `cluster/<cluster id>`, written by the first broker that finds none, and a
start is refused when:

* the store's marker names another cluster (two clusters on one store), or
* the store has no marker and does not hold an object the metadata store references (a
  different or emptied store). A store without a marker that does hold it is a cluster
  from before markers: it is marked and the start goes on.

The `cluster/` prefix is read whole, up to `_LISTED_MAX` keys: a marker is a key right
under it; deeper keys are junk, except `cluster/<this cluster id>/...` on a store without
this cluster's marker, which is refused (on a file system that folder stands where the
marker goes). A prefix holding more keys than that without this cluster's marker is
refused too, saying so. Names found in the store are escaped in the messages.

Not caught: two brokers of a new cluster, given different empty stores, before either has
uploaded anything (nothing distinguishes the stores yet). A store that cannot be listed
is a warning, not a refusal: the broker then fails its uploads as it would anyway, and the
next start checks again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from contextplane.logsafe import escape
from contextplane.metadata.store import MetadataStore
from contextplane.storage.objectstore import ObjectStore, ObjectStoreError

log = logging.getLogger(__name__)

MARKER_PREFIX = "cluster/"
_LISTED_PAGE = 1_000
_LISTED_MAX = 10_000  # keys read under MARKER_PREFIX (one is expected)
_NAMED_MAX = 5  # other clusters named in a refusal
_NAME_CHARS_MAX = 100  # of each
_LISTED_IN_FOLDER = 1_000


class ObjectStoreMismatch(RuntimeError):
    """The object store is not this cluster's: the broker must not start on it."""


@dataclass
class _Markers:
    ours: bool = False
    ours_is_folder: bool = False  # keys under cluster/<our id>/
    others: list[str] = field(default_factory=list)  # the first _NAMED_MAX, escaped
    other_count: int = 0
    complete: bool = True  # every key under the prefix was read


async def check_store_marker(
    objects: ObjectStore, metadata: MetadataStore, cluster_id: str, store_url: str
) -> None:
    """Return when the store is this cluster's (marking it if it has no marker yet);
    raise ObjectStoreMismatch, naming the store and what was found, when it is not."""
    ours = MARKER_PREFIX + cluster_id
    try:
        found = await _markers(objects, cluster_id)
        if found.ours:
            return
        if not found.complete:
            raise ObjectStoreMismatch(
                f"The object store {store_url} holds more than {_LISTED_MAX:,} keys under"
                f" {MARKER_PREFIX} and not this cluster's marker {ours}: not a store a"
                " cluster marked (check object.store.url, or clear that prefix)."
            )
        if found.ours_is_folder:
            raise _folder_in_the_way(store_url, ours)
        if found.other_count:
            more = found.other_count - len(found.others)
            others = ", ".join(found.others) + (f" and {more} more" if more > 0 else "")
            raise ObjectStoreMismatch(
                f"The object store {store_url} belongs to cluster {others}, the metadata"
                f" store to cluster {cluster_id}: each cluster needs its own store or prefix."
            )
        sample = await metadata.any_object()
        if sample is not None and not await _holds(objects, sample):
            raise ObjectStoreMismatch(
                f"The object store {store_url} has no cluster marker and does not hold"
                f" {sample}, which the metadata store references: a different or emptied"
                " store (check object.store.url)."
            )
        try:
            await objects.put(ours, [b""])
        except ObjectStoreError as exc:
            # An empty folder lists as nothing, but a file cannot replace it.
            if isinstance(exc.__cause__, IsADirectoryError):
                raise _folder_in_the_way(store_url, ours) from exc
            raise
        log.info("object store %s marked as cluster %s's", store_url, cluster_id)
    except ObjectStoreError as exc:
        log.warning(
            "could not check which cluster object store %s belongs to (%s);"
            " the next start checks again",
            store_url,
            exc,
        )


def _folder_in_the_way(store_url: str, ours: str) -> ObjectStoreMismatch:
    return ObjectStoreMismatch(
        f"The object store {store_url} holds a folder {ours}/ where this cluster's"
        " marker, an empty object, belongs: remove the folder."
    )


async def _markers(objects: ObjectStore, cluster_id: str) -> _Markers:
    """What the marker prefix holds, read up to _LISTED_MAX keys."""
    found = _Markers()
    listed = 0
    async for page in objects.list_pages(MARKER_PREFIX, _LISTED_PAGE):
        for info in page:
            name = info.key.removeprefix(MARKER_PREFIX)
            if name == cluster_id:
                found.ours = True
            elif name.startswith(cluster_id + "/"):
                found.ours_is_folder = True
            elif name and "/" not in name:
                found.other_count += 1
                if len(found.others) < _NAMED_MAX:
                    found.others.append(escape(name[:_NAME_CHARS_MAX]))
        listed += len(page)
        if found.ours:
            return found
        if listed >= _LISTED_MAX:
            found.complete = False
            return found
    found.others.sort()
    return found


async def _holds(objects: ObjectStore, key: str) -> bool:
    """The store lists `key` (listings go by folder: its folder's first page is read;
    object keys are spread over hashed folders of about one object each)."""
    folder = key.rpartition("/")[0] + "/"
    return key in await _listed(objects, folder, _LISTED_IN_FOLDER)


async def _listed(objects: ObjectStore, prefix: str, limit: int) -> set[str]:
    """Keys under `prefix`, at most about `limit` (one page)."""
    async for page in objects.list_pages(prefix, limit):
        return {info.key for info in page}
    return set()
