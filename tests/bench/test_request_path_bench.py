"""bench/request_path.py runs end to end on a tiny workload (its figures are never judged
here): pipelined requests answered in order, produce acknowledged, a summary per tree."""

from __future__ import annotations

from pathlib import Path

from bench import request_path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_the_micro_benchmark_runs_every_workload_on_one_connection(tmp_path: Path) -> None:
    sizes = request_path.Sizes(small_requests=50, produce_requests=4, records_per_batch=5)
    results = request_path.run({"current": str(SRC)}, rounds=1, sizes=sizes, root=tmp_path)
    ((figures,),) = results.values()
    assert set(figures) == set(request_path.METRICS)
    # CPU time comes in 10 ms ticks: a tiny workload may cost none of them.
    assert all(figures[m] > 0 for m in request_path.METRICS if m.endswith("_per_s"))
    assert all(figures[m] >= 0 for m in request_path.METRICS if m.endswith("_cpu_us"))


def test_the_summary_is_the_median_and_the_ratio_to_the_first_tree() -> None:
    def figures(scale: float) -> dict[str, float]:
        return {metric: scale for metric in request_path.METRICS}

    summary = request_path.summarise(
        {"before": [figures(1), figures(3), figures(2)], "after": [figures(3), figures(6)]}
    )
    assert summary["before"] == figures(2)
    assert summary["after"]["metadata_per_s"] == 4.5
    assert summary["after"]["metadata_per_s_ratio"] == 2.25
