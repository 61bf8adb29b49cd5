"""The collector's policy: the long-lived heap is frozen at start-up and after a slow full
collection, never after a young one or a fast full one."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from contextplane.broker.gc_policy import HeapFreezer, settle_after_start


@pytest.fixture(name="unfrozen")
def unfrozen_fixture() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's heap stays collectable


def _freezer(slow_ns: int) -> Iterator[HeapFreezer]:
    freezer = HeapFreezer(slow_ns)
    freezer.install()
    try:
        yield freezer
    finally:
        freezer.uninstall()


def test_a_slow_full_collection_freezes_its_survivors(unfrozen: None) -> None:
    for freezer in _freezer(slow_ns=-1):  # every full collection counts as slow
        survivor = [object() for _ in range(100)]
        gc.collect(0)
        assert freezer.freezes == 0 and gc.get_freeze_count() == 0
        gc.collect()
        assert freezer.freezes == 1
        assert gc.get_freeze_count() >= len(survivor)


def test_a_fast_full_collection_freezes_nothing(unfrozen: None) -> None:
    for freezer in _freezer(slow_ns=60_000_000_000):
        gc.collect()
        assert freezer.freezes == 0 and gc.get_freeze_count() == 0


class _Node:
    cycle: _Node


def test_start_up_collects_its_young_garbage_and_freezes_the_rest(unfrozen: None) -> None:
    gc.collect()  # what the test process holds is old now; what follows is young
    garbage = _Node()
    garbage.cycle = garbage  # only the collector frees a cycle
    dead = weakref.ref(garbage)
    del garbage
    alive = _Node()
    freezer = settle_after_start()
    try:
        assert dead() is None
        assert gc.get_freeze_count() > 0
        assert alive not in gc.get_objects(generation=0)  # frozen with the rest
    finally:
        freezer.uninstall()
