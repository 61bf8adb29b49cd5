"""The cyclic garbage collector's policy: the long-lived heap is frozen out of its scans.

A gen-2 collection walks every tracked object. A broker's long-lived heap (imported
modules and their protocol schemas, topics, partitions, object ranges, producer tables)
is hundreds of thousands of objects, and every such walk was a pause of the event loop:
~100 ms on a fresh broker, up to 1.5 s with 10,000 partitions, each a produce p99 spike
the disk did not cause. So:

* at start-up, once everything loaded has loaded (`settle_after_start`), a collection
  of the young generations and `gc.freeze()`: what survived goes to the permanent
  generation, which no collection scans again. Start-up's garbage is young: a full
  collection after the young one found 5 more dead objects of ~39,000 tracked, and
  cost 20–35 ms between the listener opening and the first request (RFC 0003 slice 8,
  restart), where the young one costs under a millisecond;
* after any full collection that took longer than `_SLOW_FULL_COLLECTION_NS` (the heap
  grew by a big one-off load: a CreateTopics of thousands of partitions, a large
  metadata load), its survivors are frozen the same way, so the next full collection
  walks only what was allocated since. A full collection that is fast (the usual
  churn of requests and connections) freezes nothing.

The price: cyclic garbage among frozen objects is never collected (reference counting
still frees everything else). A freeze follows only a collection that just ran, so
nothing dead is frozen (but the few dead objects already old at start-up); what leaks
is what was alive then and later dies in a cycle,
and only a large growth of the live heap can cause another freeze. That is the trade
Instagram's and CPython's own documentation describe for `gc.freeze()`.

Thresholds: gen-0 at 700 allocations (CPython's default) already costs well under a
millisecond per collection on a young generation; raising it trades more collections
for longer ones, so only gen-2's are changed by freezing, not by thresholds. Start-up
applies the thresholds explicitly so a change is one edit here.
"""

from __future__ import annotations

import contextlib
import gc
import logging

from contextplane.clock import elapsed_ns

log = logging.getLogger(__name__)

# CPython's defaults: see the module docstring for why they stay.
GC_THRESHOLDS = (700, 10, 10)
# A full collection slower than this means the long-lived heap grew: freeze its survivors.
_SLOW_FULL_COLLECTION_NS = 20_000_000


class HeapFreezer:
    """Freezes the survivors of a slow full collection (installed for the broker's life)."""

    def __init__(self, slow_ns: int = _SLOW_FULL_COLLECTION_NS) -> None:
        self._slow_ns = slow_ns
        self._started_ns = 0
        self.freezes = 0

    def install(self) -> None:
        gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started_ns = elapsed_ns()
        elif elapsed_ns() - self._started_ns > self._slow_ns:
            # The collection has just finished: every tracked object is alive.
            gc.freeze()
            self.freezes += 1


def settle_after_start() -> HeapFreezer:
    """Collect the young generations, freeze what survived, set the thresholds and
    watch for big loads."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.collect(1)
    gc.freeze()
    log.info("garbage collector: %d start-up objects frozen", gc.get_freeze_count())
    freezer = HeapFreezer()
    freezer.install()
    return freezer
