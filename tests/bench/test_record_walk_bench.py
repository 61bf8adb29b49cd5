"""bench/record_walk.py runs and reports every walk (its figures are never judged here)."""

from __future__ import annotations

from bench import record_walk


def test_the_micro_benchmark_walks_the_batch_with_every_implementation() -> None:
    batch = record_walk.sample_batch()
    assert 1_000_000 < len(batch) < 1_100_000
    walks = record_walk.implementations(batch)
    figures = record_walk.measure(walks, rounds=2, budget_s=0.005)
    assert set(figures) == set(walks) and all(len(v) == 2 for v in figures.values())
    table = record_walk.report(figures)
    assert all(name in table for name in walks)
